# The two commands of README.md, and the set-up they share.
#   make demo   the main job (for now: the ROS 2 smoke check and `ros2-lmd --help`)
#   make test   the test suite (CI runs exactly this: .ci/run)
# Both bootstrap first (tools/bootstrap.sh: idempotent, a few seconds when nothing changed).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
ENV := source .venv/lmd_env.sh

.PHONY: bootstrap test demo

bootstrap:
	bash tools/bootstrap.sh

test: bootstrap
	$(ENV) && python -m pytest -q test/

demo: bootstrap
	@echo "== ros2_lmd demo. The monitor demo on a simulated drive is not implemented yet; for now"
	@echo "== this runs the ROS 2 smoke check and shows the command-line interface."
	$(ENV) && ros2-lmd smoke
	$(ENV) && ros2-lmd --help
