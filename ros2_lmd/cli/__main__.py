"""`python -m ros2_lmd.cli`: the `ros2-lmd` command without its console script."""

import sys

from ros2_lmd.cli import main

sys.exit(main())
