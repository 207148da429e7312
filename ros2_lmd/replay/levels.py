"""What `analyze --outputs` writes into the output bag at each level. The CSVs, summary.json,
report.html and the incidents do not depend on the level; only the output bag does:

  summary   /lmd/alerts, /lmd/incidents, /diagnostics: what happened, under 1 MB an hour
            (/diagnostics once a second) (fleet's default: the fleet report reads the CSVs and summary.json)
  standard  every frame: /lmd/decomposition, /lmd/bev/fused (OccupancyGrid), /lmd/markers, alerts,
            incidents; "pictures" (the component grids /lmd/bev/<modality|bias> and the BEV images
            as PNG sensor_msgs/CompressedImage on /lmd/bev_image/compressed and
            /lmd/bev_image/<layer>/compressed) every INCIDENT_PICTURE_PERIOD_S (2 s) while
            an incident is open, at the first frame with an alert or an incident change that
            comes INCIDENT_PICTURE_PERIOD_S after the last pictures, and every PICTURE_PERIOD_S
            (5 s) otherwise; never two picture frames closer than INCIDENT_PICTURE_PERIOD_S, so
            at most 1800 an hour however many alerts (analyze's default)
  full      every topic the live node publishes, every frame: the five grids, the raw rgb8 images,
            markers (what Foxglove and rviz need to replay every view at full rate)

Why not all grids at full rate in `standard`: zstd leaves the camera and bias grids at ~20 kB a
frame each (they are noisy), 4.8 GB an hour at 20 Hz for the five; the fused grid alone is 8 kB.
A picture frame is ~0.33 MB (PNG images, the four component grids), and what is written at every
frame 0.69-0.79 GB an hour at 20 Hz (measured: README), so the cap bounds an hour of `standard`
by construction at 0.79 GB + 1800 x 0.33 MB = 1.38 GB even with an incident open throughout
(measured on 200 s of 20 Hz: 1.04 GB an hour quiet, 1.34 GB with incidents open 88 % of the
time; `summary` 0.8 MB). At a 1 s cap the worst case would be 1.97 GB, and before the cap (every
alert frame had pictures) it had no bound. `test/replay/test_levels.py` checks the cap.
Every level's bag is MCAP in zstd chunks with CRCs (replay.bag.BagWriter)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

OUTPUT_LEVELS = ("summary", "standard", "full")
PICTURE_PERIOD_S = 5.0  # standard, quiet driving: the component grids and BEV images every 5 s
# ... and every 2 s at an alert or while an incident is open: never closer together, so a standard
# bag holds at most 3600 / INCIDENT_PICTURE_PERIOD_S = 1800 picture frames an hour, whatever happens
INCIDENT_PICTURE_PERIOD_S = 2.0


@dataclass
class OutputLevel:
    """Which of a processed frame's messages (keys relative to the output prefix, as
    messages.outputs.frame_messages) go into the output bag at `name`; `standard` thins the
    pictures, so it keeps the stamp of the last frame that had them."""

    name: str
    last_picture: float = -float("inf")

    def __post_init__(self) -> None:
        if self.name not in OUTPUT_LEVELS:
            raise ValueError(f"outputs level must be one of {', '.join(OUTPUT_LEVELS)}, got {self.name!r}")

    @property
    def png_images(self) -> bool:
        return self.name == "standard"

    def skip_views(
        self, stamp: float, components: Collection[str], event: bool, incident_open: bool
    ) -> set[str]:
        """The views (messages.outputs.is_view keys) not to build for the frame at `stamp`;
        `event`: it has an alert or an incident change; `incident_open`: an incident is open. Picture
        frames are never closer than INCIDENT_PICTURE_PERIOD_S of bag time (events included), so
        their number per hour is bounded whatever the drive."""
        pictures = {f"bev/{layer}" for layer in components} | {"bev_image"}
        pictures |= {f"bev_image/{layer}" for layer in components}
        if self.name == "full":
            return set()
        if self.name == "summary":
            return pictures | {"bev/fused", "markers"}
        period = INCIDENT_PICTURE_PERIOD_S if event or incident_open else PICTURE_PERIOD_S
        # a stamp before the last picture's (a bag that loops, a /clock reset) starts afresh
        if stamp < self.last_picture or stamp - self.last_picture >= period - 1e-6:
            self.last_picture = stamp
            return set()
        return pictures

    def keeps(self, key: str) -> bool:
        """Whether a record (non-view) message goes into the bag: summary keeps alerts and incidents
        only (and /diagnostics, written separately), the others everything."""
        return self.name != "summary" or key in ("alerts", "incidents")
