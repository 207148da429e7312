"""The records a fleet run and its report share: a bag of the fleet and how its analysis ended.
Apart from fleet.py (the Ray run) so that the report reads them without importing the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ANALYSED, REUSED, PARTIAL, FAILED = "analysed", "reused", "partial", "failed"


@dataclass(frozen=True)
class FleetBag:
    """One rosbag2 of the fleet: its folder (absolute) and the name of its output folder."""

    path: Path
    name: str


@dataclass
class BagOutcome:
    """How one bag ended: ANALYSED, REUSED (complete outputs of an earlier run), PARTIAL (the bag
    broke off part-way: outputs for the frames read, and the error) or FAILED (no outputs)."""

    name: str
    bag: str
    status: str
    error: str = ""
    seconds: float = 0.0  # the analysis inside its worker
    worker: str = ""  # host:pid of the worker that analysed it

    @property
    def has_outputs(self) -> bool:
        return self.status in (ANALYSED, REUSED, PARTIAL)


__all__ = ["FleetBag", "BagOutcome", "ANALYSED", "REUSED", "PARTIAL", "FAILED"]
