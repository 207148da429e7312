"""FrameReport -> the monitor's output messages (OccupancyGrids, colour BEV images, rviz markers,
DecompositionSummary, AlertArray, DiagnosticArray). Pure functions over a message-types adapter
(ros2_lmd.messages.types): the live node passes RclpyTypes, the offline tools RosbagsTypes, and both get
the same messages. No ROS import here.

Value scales (what rviz shows):
- `bev/fused`: occupancy probability sigmoid(logit) * 100, rounded, 0..100.
- `bev/<camera|radar|lidar|bias>`: the signed LMD logit contribution c of that component, mapped
  linearly to 0..100 with 50 = no contribution: value = round(50 + 50 * clip(c / R, -1, 1)),
  R = `component_logit_range` (logits). 100 means "pushes the cell towards occupied by R logits or
  more", 0 "towards free by R or more". Every cell is decomposed; -1 (unknown) marks only a NaN
  (a broken model), while an infinite logit is as certain as a value can be: 0 or 100.
- `bev_image` (rgb8): camera red, radar green, LiDAR blue; each channel's intensity is that
  modality's positive contribution, 255 at R logits or more. Cells whose fused probability reaches
  the detection threshold are outlined in white. The image is turned so that x forward (REP-103)
  points up and y left points left: row 0 is the grid's largest x, column 0 its largest y.
- `bev_image/<camera|radar|lidar|bias>` (rgb8, turned like `bev_image`; one pixel per cell, as
  viewers scale images and `analyze` writes every one to its bag): the signed contribution c on a
  blue-white-red diverging scale with the grids' fixed range R, so colours compare across frames
  and modalities: t = clip(c / R, -1, 1); t >= 0 is
  (255, 255 (1 - t), 255 (1 - t)), t < 0 is (255 (1 + t), 255 (1 + t), 255), rounded: white no
  contribution, full red towards occupied by R or more, full blue towards free by R or more.
  A non-finite contribution (a broken model) is black, a colour the scale never takes. rviz's Map
  display has no diverging colour scheme (its `costmap` reads 50 as a cost), hence these images.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from ros2_lmd.messages.types import MessageTypes, header_msg_ns, time_msg_ns
from ros2_lmd.monitor.detections import sigmoid
from ros2_lmd.monitor.report import SEVERITY_NAMES, Detection, FrameReport
from ros2_lmd.monitor.status import StatusRecord
from ros2_lmd.sensors.stamps import seconds_to_ns

BEV_LAYERS = ("fused", "camera", "radar", "lidar", "bias")
DEFAULT_COMPONENT_LOGIT_RANGE = 4.0
# Colour of a non-finite contribution in the signed images: off the blue-white-red scale.
NON_FINITE_RGB = (0, 0, 0)

# One colour per modality (r, g, b in 0..1), shared by the image and the markers.
MODALITY_COLOURS: dict[str, tuple[float, float, float]] = {
    "camera": (1.0, 0.2, 0.2),
    "radar": (0.2, 1.0, 0.2),
    "lidar": (0.3, 0.5, 1.0),
}
_IMAGE_CHANNEL = {"camera": 0, "radar": 1, "lidar": 2}
SEVERITY_COLOURS = {0: (1.0, 1.0, 1.0), 1: (1.0, 0.85, 0.1), 2: (1.0, 0.15, 0.15)}

# --- Common pieces ----------------------------------------------------------------------------------


def map_metadata(report: FrameReport, types: MessageTypes, stamp_ns: int) -> Any:
    """nav_msgs/MapMetaData of the report's BEVGrid: cell (0, 0) at (x_min, y_min), no rotation."""
    grid = report.grid
    origin = types.new(
        "geometry_msgs/msg/Pose",
        position=types.new("geometry_msgs/msg/Point", x=float(grid.x_min), y=float(grid.y_min), z=0.0),
        orientation=types.new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0),
    )
    return types.new(
        "nav_msgs/msg/MapMetaData",
        map_load_time=time_msg_ns(types, stamp_ns),
        resolution=float(grid.resolution),
        width=grid.nx,
        height=grid.ny,
        origin=origin,
    )


def _layer(report: FrameReport, layer: str) -> np.ndarray:
    if layer == "fused":
        return report.fused
    if layer not in report.components:
        raise KeyError(f"BEV layer {layer!r} not in this report; it has {['fused', *report.components]}")
    return report.components[layer]


# --- BEV grids --------------------------------------------------------------------------------------


def signed_scale(values: np.ndarray, component_logit_range: float) -> np.ndarray:
    """Signed logit contributions on the fixed scale every component view shares:
    clip(c / R, -1, 1), R = `component_logit_range` (NaN stays NaN)."""
    if component_logit_range <= 0:
        raise ValueError(f"component_logit_range must be > 0, got {component_logit_range}")
    return np.clip(np.asarray(values, dtype=np.float64) / component_logit_range, -1.0, 1.0)


def occupancy_values(
    report: FrameReport, layer: str, component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE
) -> np.ndarray:
    """(ny, nx) int8 cell values of one layer, on the scales of the module docstring."""
    values = np.asarray(_layer(report, layer), dtype=np.float64)
    if layer == "fused":
        scaled = sigmoid(values) * 100.0
    else:
        scaled = 50.0 + 50.0 * signed_scale(values, component_logit_range)
    # NaN (a broken model) shows as unknown rather than as a plausible value; +-inf clips to 0/100.
    cells = np.where(np.isfinite(scaled), np.rint(scaled), -1)
    return cells.astype(np.int8)


def occupancy_grid(
    report: FrameReport,
    layer: str,
    types: MessageTypes,
    frame_id: str,
    stamp: float | None = None,
    component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE,
) -> Any:
    """nav_msgs/OccupancyGrid of `layer` (fused, camera, radar, lidar or bias). The arrays are
    [iy, ix], so row-major flattening is OccupancyGrid's order (y rows of x cells)."""
    stamp_ns = report.stamp_ns if stamp is None else seconds_to_ns(stamp)
    values = occupancy_values(report, layer, component_logit_range)
    return types.new(
        "nav_msgs/msg/OccupancyGrid",
        header=header_msg_ns(types, stamp_ns, frame_id),
        info=map_metadata(report, types, stamp_ns),
        data=values.reshape(-1),
    )


# --- Colour BEV image -------------------------------------------------------------------------------


def bev_rgb(
    report: FrameReport,
    scale: int = 1,
    component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE,
    detection_threshold: float = 0.5,
) -> np.ndarray:
    """(nx*scale, ny*scale, 3) uint8 RGB view from above, x forward up (module docstring)."""
    if scale < 1:
        raise ValueError(f"bev image scale must be >= 1, got {scale}")
    ny, nx = report.grid.shape
    image = np.zeros((ny, nx, 3), np.float64)
    for modality, channel in _IMAGE_CHANNEL.items():
        if modality in report.components:
            positive = np.clip(np.nan_to_num(report.components[modality]), 0.0, None)
            image[..., channel] = np.minimum(positive / component_logit_range, 1.0)
    rgb = np.rint(image * 255.0).astype(np.uint8)
    occupied = sigmoid(np.nan_to_num(report.fused)) >= detection_threshold
    rgb[_outline(occupied)] = 255
    rgb = _seen_from_above(rgb)
    if scale > 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(rgb)


def _seen_from_above(cells: np.ndarray) -> np.ndarray:
    """[iy, ix, ...] grid cells -> image rows and columns, x forward up and y left left: [ix, iy]
    with both axes reversed, so row 0 is the largest x and column 0 the largest y."""
    return cells.swapaxes(0, 1)[::-1, ::-1]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Cells of `mask` with a 4-neighbour outside it (or on the grid border)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def bev_image(
    report: FrameReport,
    types: MessageTypes,
    frame_id: str,
    scale: int = 1,
    stamp: float | None = None,
    component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE,
    detection_threshold: float = 0.5,
) -> Any:
    """sensor_msgs/Image (rgb8) of `bev_rgb`."""
    stamp_ns = report.stamp_ns if stamp is None else seconds_to_ns(stamp)
    return _rgb8_image(
        types, stamp_ns, frame_id, bev_rgb(report, scale, component_logit_range, detection_threshold)
    )


def _rgb8_image(types: MessageTypes, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> Any:
    height, width = rgb.shape[:2]
    return types.new(
        "sensor_msgs/msg/Image",
        header=header_msg_ns(types, stamp_ns, frame_id),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(rgb).reshape(-1),
    )


# --- Signed BEV images ------------------------------------------------------------------------------


def diverging_rgb(
    values: np.ndarray, component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE
) -> np.ndarray:
    """(..., 3) uint8 blue-white-red colours of signed logit contributions, on the fixed scale of
    the module docstring (white at 0, full red at +range, full blue at -range; black if not finite)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    t = np.where(finite, signed_scale(values, component_logit_range), 0.0)
    fade = 255.0 * (1.0 - np.abs(t))  # the two channels that leave white
    rgb = np.empty((*values.shape, 3), np.float64)
    rgb[..., 0] = np.where(t >= 0, 255.0, fade)
    rgb[..., 1] = fade
    rgb[..., 2] = np.where(t >= 0, fade, 255.0)
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[~finite] = NON_FINITE_RGB
    return rgb


def bev_signed_rgb(
    report: FrameReport, layer: str, component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE
) -> np.ndarray:
    """(nx, ny, 3) uint8 view from above of one component (camera, radar, lidar or bias), one
    pixel per cell: `diverging_rgb` of its signed contribution."""
    if layer == "fused":
        raise KeyError("the signed BEV images are of components; the fused layer is bev/fused")
    return np.ascontiguousarray(_seen_from_above(diverging_rgb(_layer(report, layer), component_logit_range)))


def bev_signed_image(
    report: FrameReport,
    layer: str,
    types: MessageTypes,
    frame_id: str,
    stamp: float | None = None,
    component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE,
) -> Any:
    """sensor_msgs/Image (rgb8) of `bev_signed_rgb`."""
    stamp_ns = report.stamp_ns if stamp is None else seconds_to_ns(stamp)
    return _rgb8_image(types, stamp_ns, frame_id, bev_signed_rgb(report, layer, component_logit_range))


# --- rviz markers -----------------------------------------------------------------------------------

MARKER_LINE_WIDTH = 0.15
MARKER_SINGLE_SENSOR_LINE_WIDTH = 0.45
MARKER_TEXT_HEIGHT = 0.8


def _colour(types: MessageTypes, rgb: tuple[float, float, float], alpha: float = 1.0) -> Any:
    return types.new(
        "std_msgs/msg/ColorRGBA", r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha)
    )


def _point(types: MessageTypes, x: float, y: float, z: float = 0.0) -> Any:
    return types.new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z))


def _pose(types: MessageTypes, x: float, y: float, z: float) -> Any:
    return types.new(
        "geometry_msgs/msg/Pose",
        position=_point(types, x, y, z),
        orientation=types.new("geometry_msgs/msg/Quaternion", w=1.0),
    )


def detection_label(detection: Detection) -> str:
    """One-line text of a detection: id, score, per-modality shares, single-sensor flag."""
    shares = " ".join(f"{m} {s:.2f}" for m, s in detection.shares.items())
    text = f"#{detection.id} p={detection.score:.2f} | {shares}"
    if detection.single_sensor:
        text += f" | {detection.dominant.upper()} ONLY"
    return text


def markers(report: FrameReport, types: MessageTypes, frame_id: str, stamp: float | None = None) -> Any:
    """visualization_msgs/MarkerArray: a DELETEALL first (stale markers of the previous frame
    vanish), then per detection a closed LINE_STRIP footprint (ns `detections`) and a TEXT label
    (ns `detection_labels`) coloured by the dominant modality, single-sensor ones drawn with a
    thicker line, then one TEXT per alert (ns `alerts`, coloured by severity) stacked above
    base_link's origin, or above its detection when it has one."""
    stamp_ns = report.stamp_ns if stamp is None else seconds_to_ns(stamp)
    marker_class = types.cls("visualization_msgs/msg/Marker")
    header = header_msg_ns(types, stamp_ns, frame_id)

    def marker(**fields: Any) -> Any:
        fields.setdefault("pose", _pose(types, 0.0, 0.0, 0.0))
        return types.new("visualization_msgs/msg/Marker", header=header, action=marker_class.ADD, **fields)

    items = [types.new("visualization_msgs/msg/Marker", header=header, action=marker_class.DELETEALL)]
    for det in report.detections:
        colour = MODALITY_COLOURS.get(det.dominant, (1.0, 1.0, 1.0))
        corners = np.asarray(det.footprint, dtype=np.float64)
        outline = [_point(types, x, y, 0.1) for x, y in (*corners, corners[0])]
        width = MARKER_SINGLE_SENSOR_LINE_WIDTH if det.single_sensor else MARKER_LINE_WIDTH
        items.append(
            marker(
                ns="detections",
                id=det.id,
                type=marker_class.LINE_STRIP,
                points=outline,
                scale=types.new("geometry_msgs/msg/Vector3", x=width),
                color=_colour(types, colour),
            )
        )
        items.append(
            marker(
                ns="detection_labels",
                id=det.id,
                type=marker_class.TEXT_VIEW_FACING,
                pose=_pose(types, det.centroid[0], det.centroid[1], 1.5),
                scale=types.new("geometry_msgs/msg/Vector3", z=MARKER_TEXT_HEIGHT),
                color=_colour(types, colour),
                text=detection_label(det),
            )
        )
    stacked = 0
    for index, alert in enumerate(report.alerts):
        if alert.detection is not None:
            x, y = alert.detection.centroid
            z = 2.5 + MARKER_TEXT_HEIGHT * 1.2 * sum(
                1 for a in report.alerts[:index] if a.detection is alert.detection
            )
        else:
            x, y, z = 0.0, 0.0, 3.0 + MARKER_TEXT_HEIGHT * 1.2 * stacked
            stacked += 1
        items.append(
            marker(
                ns="alerts",
                id=index,
                type=marker_class.TEXT_VIEW_FACING,
                pose=_pose(types, x, y, z),
                scale=types.new("geometry_msgs/msg/Vector3", z=MARKER_TEXT_HEIGHT),
                color=_colour(types, SEVERITY_COLOURS.get(alert.severity, (1.0, 1.0, 1.0))),
                text=f"{SEVERITY_NAMES.get(alert.severity, alert.severity)} {alert.kind}: {alert.message}",
            )
        )
    return types.new("visualization_msgs/msg/MarkerArray", markers=items)


# --- Project messages -------------------------------------------------------------------------------


def _ccw(corners: np.ndarray) -> np.ndarray:
    """The polygon's corners in counter-clockwise order (Detection.msg's footprint contract)."""
    x, y = corners[:, 0], corners[:, 1]
    signed_area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    return corners[::-1] if signed_area < 0 else corners


def detection_msg(detection: Detection, types: MessageTypes) -> Any:
    """ros2_lmd/msg/Detection of a monitor Detection."""
    corners = _ccw(np.asarray(detection.footprint, dtype=np.float64))
    footprint = types.new(
        "geometry_msgs/msg/Polygon",
        points=[types.new("geometry_msgs/msg/Point32", x=float(x), y=float(y), z=0.0) for x, y in corners],
    )
    modalities = list(detection.shares)
    return types.new(
        "ros2_lmd/msg/Detection",
        id=int(detection.id),
        position=_point(types, detection.centroid[0], detection.centroid[1]),
        footprint=footprint,
        area_m2=float(detection.area_m2),
        score=float(detection.score),
        modalities=modalities,
        shares=[float(detection.shares[m]) for m in modalities],
        dominant_modality=detection.dominant,
        supporting_modalities=list(detection.supporting),
        single_sensor=bool(detection.single_sensor),
    )


def decomposition_summary(
    report: FrameReport,
    types: MessageTypes,
    frame_id: str,
    frames_processed: int,
    frames_dropped: int,
    latency_ms: float | None = None,
    frame_index: int | None = None,
    stamp: float | None = None,
    sensor_messages: Mapping[str, tuple[int, int]] | None = None,
) -> Any:
    """ros2_lmd/msg/DecompositionSummary. `latency_ms` defaults to the pipeline's own timings (the
    node passes arrival-to-ready); `frame_index` to the report's. `sensor_messages`: sensor ->
    (messages received, messages lost before us)."""
    sensor_messages = dict(sensor_messages or {})
    stamp_ns = report.stamp_ns if stamp is None else seconds_to_ns(stamp)
    modalities = list(report.modalities)
    return types.new(
        "ros2_lmd/msg/DecompositionSummary",
        header=header_msg_ns(types, stamp_ns, frame_id),
        frame_index=int(report.frame_index if frame_index is None else frame_index),
        grid=map_metadata(report, types, stamp_ns),
        modalities=modalities,
        shares=[float(report.shares.get(m, 0.0)) for m in modalities],
        present=[bool(report.present.get(m, True)) for m in modalities],
        detections=[detection_msg(d, types) for d in report.detections],
        conservation_error=float(report.conservation_error),
        decomposition_error=float(report.decomposition_error),
        latency_ms=float(report.latency_ms if latency_ms is None else latency_ms),
        frames_processed=int(frames_processed),
        frames_dropped=int(frames_dropped),
        sensors=list(sensor_messages),
        messages_received=[int(received) for received, _ in sensor_messages.values()],
        messages_lost=[int(lost) for _, lost in sensor_messages.values()],
    )


def alert_array(report: FrameReport, types: MessageTypes, frame_id: str, stamp: float | None = None) -> Any:
    """ros2_lmd/msg/AlertArray of the report's alerts, in the order raised (may be empty)."""
    stamp_ns = report.stamp_ns if stamp is None else seconds_to_ns(stamp)
    header = header_msg_ns(types, stamp_ns, frame_id)
    alerts = []
    for alert in report.alerts:
        fields: dict[str, Any] = dict(
            header=header,
            kind=alert.kind,
            severity=int(alert.severity),
            modality=alert.modality,
            sensor=alert.sensor,
            message=alert.message,
            has_detection=alert.detection is not None,
        )
        if alert.detection is not None:
            fields["detection"] = detection_msg(alert.detection, types)
        alerts.append(types.new("ros2_lmd/msg/Alert", **fields))
    return types.new("ros2_lmd/msg/AlertArray", header=header, alerts=alerts)


# --- Everything for one frame ---------------------------------------------------------------------


def is_view(key: str) -> bool:
    """Outputs that are pictures of the frame (BEV grids, the BEV images, markers), for people and
    rviz: built only for subscribers. The decomposition summary, alerts and incidents are the
    record and always go out."""
    return key.startswith("bev") or key == "markers"


def frame_messages(
    report: FrameReport,
    types: MessageTypes,
    frame_id: str,
    frames_processed: int,
    frames_dropped: int,
    latency_ms: float | None = None,
    bev_image_scale: int = 1,
    component_logit_range: float = DEFAULT_COMPONENT_LOGIT_RANGE,
    detection_threshold: float = 0.5,
    sensor_messages: Mapping[str, tuple[int, int]] | None = None,
    skip_views: Collection[str] = (),
) -> list[tuple[str, str, Any]]:
    """Everything published for one processed frame, as (topic relative to the output prefix,
    message type, message): the live node and the offline analysis publish exactly this.
    `sensor_messages`: sensor -> (received, lost before us), for the DecompositionSummary.
    `skip_views`: views (`is_view`) not to build; the live node names those nobody subscribes to
    (building them is most of the time spent on outputs, the markers alone ~8 ms a frame)."""
    messages = [
        (
            f"bev/{layer}",
            "nav_msgs/msg/OccupancyGrid",
            occupancy_grid(report, layer, types, frame_id, component_logit_range=component_logit_range),
        )
        for layer in ("fused", *report.components)
        if f"bev/{layer}" not in skip_views
    ]
    if "bev_image" not in skip_views:
        messages.append(
            (
                "bev_image",
                "sensor_msgs/msg/Image",
                bev_image(
                    report,
                    types,
                    frame_id,
                    bev_image_scale,
                    component_logit_range=component_logit_range,
                    detection_threshold=detection_threshold,
                ),
            )
        )
    messages += [
        (
            f"bev_image/{layer}",
            "sensor_msgs/msg/Image",
            bev_signed_image(report, layer, types, frame_id, component_logit_range=component_logit_range),
        )
        for layer in report.components
        if f"bev_image/{layer}" not in skip_views
    ]
    if "markers" not in skip_views:
        messages.append(("markers", "visualization_msgs/msg/MarkerArray", markers(report, types, frame_id)))
    messages.append(
        (
            "decomposition",
            "ros2_lmd/msg/DecompositionSummary",
            decomposition_summary(
                report,
                types,
                frame_id,
                frames_processed=frames_processed,
                frames_dropped=frames_dropped,
                latency_ms=latency_ms,
                frame_index=frames_processed - 1,
                sensor_messages=sensor_messages,
            ),
        )
    )
    if report.alerts:  # published only when there is something to say
        messages.append(("alerts", "ros2_lmd/msg/AlertArray", alert_array(report, types, frame_id)))
    for change in report.incidents:
        messages.append(("incidents", "ros2_lmd/msg/Incident", incident_msg(change, report, types, frame_id)))
    return messages


def incident_msg(change: Any, report: FrameReport, types: MessageTypes, frame_id: str) -> Any:
    """ros2_lmd/msg/Incident of a monitor.incidents.IncidentChange, stamped with its frame."""
    incident = change.incident
    return types.new(
        "ros2_lmd/msg/Incident",
        header=header_msg_ns(types, report.stamp_ns, frame_id),
        change=change.change,
        id=int(incident.id),
        sensor=incident.sensor,
        modality=incident.modality,
        sensors=list(incident.sensors),
        evidence_kinds=list(incident.kinds),
        evidence=incident.evidence,
        severity=int(incident.peak_severity),
        start=time_msg_ns(types, incident.start_ns),
        end=time_msg_ns(types, incident.end_ns or 0),
    )


def diagnostic_array(records: Sequence[StatusRecord], types: MessageTypes, stamp: float) -> Any:
    """diagnostic_msgs/DiagnosticArray of status records (sensors, modalities, the monitor)."""
    statuses = []
    for record in records:
        values = [
            types.new("diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v))
            for k, v in record.values.items()
        ]
        statuses.append(
            types.new(
                "diagnostic_msgs/msg/DiagnosticStatus",
                level=int(record.level),
                name=record.name,
                message=record.message,
                hardware_id=record.hardware_id,
                values=values,
            )
        )
    return types.new(
        "diagnostic_msgs/msg/DiagnosticArray",
        header=header_msg_ns(types, seconds_to_ns(stamp), ""),
        status=statuses,
    )
