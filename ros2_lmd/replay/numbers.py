"""Numbers as the analysis and fleet outputs write them: a value that was not measured (NaN, or
None once read back from JSON) is null in JSON, an empty CSV or table cell, and left out of a mean.
Pure: the summaries and tables of replay/ share these, so that "not measured" reads one way."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a value that was not measured is null."""
    return float(value) if math.isfinite(value) else None


def finite_values(values: Iterable[float | None]) -> list[float]:
    """The measured values: None, NaN and infinities left out."""
    return [v for v in values if v is not None and math.isfinite(v)]


def finite_mean(values: Iterable[float | None]) -> float | None:
    """The mean of the measured values; None when there are none."""
    values = finite_values(values)
    return float(np.mean(values)) if values else None


def format_number(value: Any, spec: str = ".4f") -> str:
    """A cell: `value` formatted with `spec`, empty when it was not measured (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec)


__all__ = ["finite_or_none", "finite_values", "finite_mean", "format_number"]
