# The two commands of README.md, and the set-up they share.
#   make demo   the main job: the monitor on a simulated drive with sensor faults (ros2-lmd demo)
#   make test   lint (ruff.toml), type check (mypy.ini), then the test suite (CI runs exactly this: .ci/run)
# Both bootstrap first (tools/bootstrap.sh: idempotent, a few seconds when nothing changed).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
ENV := source .venv/lmd_env.sh

.PHONY: bootstrap test demo

bootstrap:
	bash tools/bootstrap.sh

test: bootstrap
	$(ENV) && ruff check . && ruff format --check . && mypy && python -m pytest -q test/

demo: bootstrap
	$(ENV) && ros2-lmd demo
