"""FrameReport -> the monitor's output messages (OccupancyGrids, colour BEV images, rviz markers,
DecompositionSummary, AlertArray, DiagnosticArray). Pure functions over a message-types adapter
(ros2_lmd.messages.types): the live node passes RclpyTypes, the offline tools RosbagsTypes, and both get
the same messages. No ROS import here. The pixels and cell values of the BEV grids and images, and
their scales, are drawn by ros2_lmd.messages.drawing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from ros2_lmd.messages.drawing import (
    DEFAULT_COMPONENT_LOGIT_RANGE,
    MODALITY_COLOURS,
    SEVERITY_COLOURS,
    bev_rgb,
    bev_signed_rgb,
    occupancy_values,
)
from ros2_lmd.messages.types import MessageTypes, header_msg_ns, time_msg_ns
from ros2_lmd.monitor.report import SEVERITY_NAMES, Detection, FrameReport
from ros2_lmd.monitor.status import StatusRecord
from ros2_lmd.sensors.image import make_compressed_image
from ros2_lmd.sensors.stamps import seconds_to_ns

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


# --- BEV grids --------------------------------------------------------------------------------------


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


def png_image(image: Any, types: MessageTypes) -> Any:
    """sensor_msgs/CompressedImage (PNG: lossless, so the colour scales still read exactly) of an
    rgb8 sensor_msgs/Image, with its header."""
    rgb = np.asarray(image.data, dtype=np.uint8).reshape(image.height, image.width, 3)
    return make_compressed_image(types, image.header, rgb, fmt="png")


# --- Signed BEV images ------------------------------------------------------------------------------


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
    png_images: bool = False,
) -> list[tuple[str, str, Any]]:
    """Everything published for one processed frame, as (topic relative to the output prefix,
    message type, message): the live node and the offline analysis publish exactly this.
    `sensor_messages`: sensor -> (received, lost before us), for the DecompositionSummary.
    `skip_views`: views (`is_view`) not to build; the live node names those nobody subscribes to
    (building them is most of the time spent on outputs, the markers alone ~8 ms a frame).
    `png_images`: the BEV images as sensor_msgs/CompressedImage PNG on `<image topic>/compressed`
    (image_transport's name; Foxglove and rviz show them), about a tenth of the raw rgb8 bytes."""
    messages = [
        (
            f"bev/{layer}",
            "nav_msgs/msg/OccupancyGrid",
            occupancy_grid(report, layer, types, frame_id, component_logit_range=component_logit_range),
        )
        for layer in ("fused", *report.components)
        if f"bev/{layer}" not in skip_views
    ]
    images = [
        (
            "bev_image",
            lambda: bev_image(
                report,
                types,
                frame_id,
                bev_image_scale,
                component_logit_range=component_logit_range,
                detection_threshold=detection_threshold,
            ),
        )
    ]
    images += [
        (
            f"bev_image/{layer}",
            lambda layer=layer: bev_signed_image(
                report, layer, types, frame_id, component_logit_range=component_logit_range
            ),
        )
        for layer in report.components
    ]
    for key, image in images:
        if key in skip_views:
            continue
        if png_images:
            compressed = png_image(image(), types)
            messages.append((f"{key}/compressed", "sensor_msgs/msg/CompressedImage", compressed))
        else:
            messages.append((key, "sensor_msgs/msg/Image", image()))
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
