"""Property-test budgets: each test states how many examples it needs in CI, and the Hypothesis
profile in use (test/conftest.py: `ci` by default, `dev` for the edit-test loop) scales that."""

from __future__ import annotations

import os

EXAMPLE_SCALE = {"ci": 1.0, "dev": 0.1}


def profile() -> str:
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if name not in EXAMPLE_SCALE:
        raise ValueError(f"HYPOTHESIS_PROFILE={name!r}: expected one of {sorted(EXAMPLE_SCALE)}")
    return name


def examples(n: int) -> int:
    """The max_examples of a property test that needs `n` under the CI profile."""
    return max(5, round(n * EXAMPLE_SCALE[profile()]))
