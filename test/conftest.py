"""What every test shares: the markers of the test tiers, the Hypothesis profiles, and a private
torch RNG per test.

Tiers (markers registered in pytest.ini; `make test` runs everything, `make test-fast` leaves out
`slow`, `ros`, `ray`, `packaging` and `launch`):
- a test file under `test/ros/` is `ros` (real rclpy and middleware), under `test/packaging/` is
  `packaging` (install tree, CMake, package metadata); `slow` marks what takes more than a few
  seconds on 2 cores (the shipped model over drives, training, the fleet); `ray` starts Ray.
- Hypothesis runs the `ci` profile unless HYPOTHESIS_PROFILE says otherwise (`dev`: a tenth of the
  examples, for the edit-test loop); each test's own `max_examples` is scaled by the profile
  through `support.properties.examples(n)`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support.properties import profile

TEST_ROOT = Path(__file__).parent

# Folder -> marker for every test below it.
FOLDER_MARKERS = {"ros": "ros", "packaging": "packaging"}

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(profile())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).relative_to(TEST_ROOT).parts[0]
        marker = FOLDER_MARKERS.get(folder)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(autouse=True)
def _private_global_rng():
    """Every test starts from the same torch global RNG state (layer initialisation draws from it)
    and leaves it as it found it: results depend neither on the order of tests nor on what ran
    before, and nothing leaks between tests."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
