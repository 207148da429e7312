# The two commands of README.md, and the set-up they share.
#   make demo       the main job: the monitor on a simulated drive with sensor faults (ros2-lmd demo)
#   make test       lint (ruff.toml), type check (mypy.ini), then the whole test suite (CI runs
#                   exactly this: .ci/run)
#   make test-fast  the edit-test loop: lint, type check, and the tests that need neither ROS 2
#                   middleware, Ray, the install tree nor more than a few seconds each, with a tenth
#                   of the property-test examples (test/conftest.py: tiers)
# All bootstrap first (tools/bootstrap.sh: idempotent, a few seconds when nothing changed).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
ENV := source .venv/lmd_env.sh
FAST := not slow and not ros and not ray and not packaging and not launch

.PHONY: bootstrap lint test test-fast demo

bootstrap:
	bash tools/bootstrap.sh

lint: bootstrap
	$(ENV) && ruff check . && ruff format --check . && mypy

test: lint
	$(ENV) && python -m pytest -q test/

test-fast: lint
	$(ENV) && HYPOTHESIS_PROFILE=dev python -m pytest -q -m "$(FAST)" test/

demo: bootstrap
	$(ENV) && ros2-lmd demo
