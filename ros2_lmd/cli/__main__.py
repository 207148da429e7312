"""`python -m ros2_lmd.cli`: the `ros2-lmd` command without its console script."""

import sys

from ros2_lmd.cli import main

if __name__ == "__main__":  # run by `python -m`, not when imported (the architecture test imports all)
    sys.exit(main())
