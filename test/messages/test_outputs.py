"""FrameReport -> output messages (ros2_lmd.messages.outputs) and their pixels (messages.drawing) on
a hand-made report, built with both message libraries: rclpy's generated classes and rosbags'
dataclasses must give the same messages (same CDR bytes), with exact grid geometry and cell values.
Also the per-sensor diagnostics bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test`")
pytestmark = pytest.mark.ros  # rclpy message classes (test/conftest.py, tiers)

from rclpy.serialization import serialize_message  # noqa: E402

from ros2_lmd.geometry.grid import BEVGrid  # noqa: E402
from ros2_lmd.messages import drawing, outputs  # noqa: E402
from ros2_lmd.messages.types import RclpyTypes, as_int, rosbags_types, type_name_of  # noqa: E402
from ros2_lmd.monitor import status  # noqa: E402
from ros2_lmd.monitor.report import (
    ERROR,
    INFO,
    SENSOR_FAILED,
    SINGLE_SENSOR_SUPPORT,  # noqa: E402
    WARN,
    Alert,
    Detection,
    FrameReport,
)
from ros2_lmd.monitor.sensor_health import SensorHealthTracker, SensorInfo  # noqa: E402

GRID = BEVGrid(-2.0, 2.0, -1.0, 2.0, 0.5)  # nx = 8, ny = 6
NX, NY = 8, 6
R = 4.0  # component_logit_range
STAMP = 1700000000.25

RCLPY = RclpyTypes()
ROSBAGS = rosbags_types()
ADAPTERS = pytest.mark.parametrize("types", [RCLPY, ROSBAGS], ids=["rclpy", "rosbags"])


def _report() -> FrameReport:
    shape = (NY, NX)
    fused = np.full(shape, -9.0)
    camera, radar, lidar = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    bias = np.full(shape, -1.0)
    fused[1, 6] = 0.0  # probability 0.5 -> 50
    fused[2, 3] = 12.0  # -> 100
    fused[3, 1] = np.log(0.3 / 0.7)  # -> 30
    camera[1, 6] = 1.2  # -> 50 + 50 * 0.3 = 65
    camera[0, 0] = -8.0  # clipped -> 0
    camera[5, 7] = 9.0  # clipped -> 100
    camera[0, 4] = 1.2  # image red 255 * 0.3 = 76.5 -> 76
    radar[2, 3] = 2.0  # -> 75 ; image green 127.5 -> 128
    lidar[4, 2] = -2.0  # -> 25
    radar_only = Detection(
        id=0,
        centroid=(1.25, -0.25),
        footprint=np.array([[1.0, -0.5], [1.0, 0.0], [1.5, 0.0], [1.5, -0.5]]),  # clockwise on purpose
        area_m2=0.25,
        score=0.5,
        shares={"camera": 0.1, "radar": 0.85, "lidar": 0.05},
        dominant="radar",
        supporting=("radar",),
        single_sensor=True,
        cells=1,
        label=1,
    )
    mixed = Detection(
        id=1,
        centroid=(-0.25, 0.25),
        footprint=np.array([[-0.5, 0.0], [0.0, 0.0], [0.0, 0.5], [-0.5, 0.5]]),
        area_m2=0.25,
        score=0.99,
        shares={"camera": 0.5, "radar": 0.25, "lidar": 0.25},
        dominant="camera",
        supporting=("camera", "radar", "lidar"),
        single_sensor=False,
        cells=1,
        label=2,
    )
    alerts = [
        Alert(SINGLE_SENSOR_SUPPORT, WARN, "radar", "seen by radar alone", detection=radar_only),
        Alert(SENSOR_FAILED, ERROR, "lidar", "lidar failing"),
        Alert("SENSOR_RECOVERED", INFO, "camera", "camera back", sensor="/cam_front"),
    ]
    return FrameReport(
        stamp=STAMP,
        frame_index=7,
        grid=GRID,
        fused=fused,
        components={"camera": camera, "radar": radar, "lidar": lidar, "bias": bias},
        shares={"camera": 0.5, "radar": 0.375, "lidar": 0.125},
        energy={"camera": 1.0, "radar": 0.5, "lidar": 0.25},
        present={"camera": True, "radar": True, "lidar": False},
        detections=[radar_only, mixed],
        alerts=alerts,
        timings_ms={"prepare": 1.0, "encode": 2.0, "decompose": 3.0, "postprocess": 0.5},
        conservation_error=1e-7,
    )


def _cell(grid_msg, iy: int, ix: int) -> int:
    return int(grid_msg.data[iy * grid_msg.info.width + ix])


def _serialized(message) -> bytes:
    """CDR bytes, through rosbags either way: rclpy leaves alignment padding uninitialised."""
    store, name = ROSBAGS.typestore, type_name_of(message)
    if isinstance(message, RCLPY.cls(name)):
        message = store.deserialize_cdr(bytes(serialize_message(message)), name)
    return bytes(store.serialize_cdr(message, name))


# --- Grids -------------------------------------------------------------------------------------------


@ADAPTERS
def test_occupancy_grid_geometry(types):
    grid = outputs.occupancy_grid(_report(), "fused", types, "base_link")
    assert grid.header.frame_id == "base_link"
    assert (grid.header.stamp.sec, grid.header.stamp.nanosec) == (1700000000, 250000000)
    info = grid.info
    assert (info.width, info.height, info.resolution) == (NX, NY, 0.5)
    assert (info.origin.position.x, info.origin.position.y, info.origin.position.z) == (-2.0, -1.0, 0.0)
    assert (
        info.origin.orientation.x,
        info.origin.orientation.y,
        info.origin.orientation.z,
        info.origin.orientation.w,
    ) == (0.0, 0.0, 0.0, 1.0)
    assert len(grid.data) == NX * NY


@ADAPTERS
def test_fused_grid_is_probability_percent(types):
    grid = outputs.occupancy_grid(_report(), "fused", types, "base_link")
    assert _cell(grid, 1, 6) == 50 and _cell(grid, 2, 3) == 100 and _cell(grid, 3, 1) == 30
    assert _cell(grid, 0, 0) == 0  # logit -9: 0.012 % rounds to 0
    assert min(grid.data) >= 0 and max(grid.data) <= 100


@ADAPTERS
def test_component_grids_map_signed_logits_around_50(types):
    report = _report()
    camera = outputs.occupancy_grid(report, "camera", types, "base_link", component_logit_range=R)
    assert (_cell(camera, 1, 6), _cell(camera, 0, 0), _cell(camera, 5, 7)) == (65, 0, 100)
    assert _cell(camera, 2, 2) == 50 and _cell(camera, 0, 4) == 65  # none; 1.2 logits
    assert _cell(outputs.occupancy_grid(report, "radar", types, "base_link"), 2, 3) == 75
    assert _cell(outputs.occupancy_grid(report, "lidar", types, "base_link"), 4, 2) == 25
    bias = outputs.occupancy_grid(report, "bias", types, "base_link")
    assert set(bias.data) == {38}  # -1 logit: 50 - 12.5 -> 38 (rint: half to even)
    expected = drawing.occupancy_values(report, "radar", R).reshape(-1)
    assert list(outputs.occupancy_grid(report, "radar", types, "x").data) == expected.tolist()


def test_unknown_layer_is_named():
    with pytest.raises(KeyError, match="sonar"):
        outputs.occupancy_grid(_report(), "sonar", RCLPY, "base_link")


def test_non_finite_logits_are_unknown():
    report = _report()
    report.fused[0, 1] = np.nan
    assert drawing.occupancy_values(report, "fused")[0, 1] == -1


# --- Image -------------------------------------------------------------------------------------------


@ADAPTERS
def test_bev_image_size_orientation_and_colours(types):
    scale = 2
    image = outputs.bev_image(_report(), types, "base_link", scale=scale, component_logit_range=R)
    assert (image.height, image.width, image.encoding, image.step) == (
        NX * scale,
        NY * scale,
        "rgb8",
        NY * scale * 3,
    )
    rgb = np.asarray(image.data, dtype=np.uint8).reshape(image.height, image.width, 3)

    def pixel(iy, ix):  # x forward is up (row 0 = largest x), y left is left (col 0 = largest y)
        return tuple(rgb[(NX - 1 - ix) * scale + 1, (NY - 1 - iy) * scale + 1])

    assert pixel(5, 7) == (255, 0, 0)  # camera at full scale, top-left corner
    assert pixel(0, 4) == (76, 0, 0)  # camera 1.2 logits of 4: 76.5, rint half to even
    assert pixel(4, 2) == (0, 0, 0)  # negative LiDAR contribution shows nothing
    assert pixel(0, 0) == (0, 0, 0)
    # Cells with fused probability >= 0.5 are outlined in white (both have no occupied neighbour).
    assert pixel(2, 3) == (255, 255, 255) and pixel(1, 6) == (255, 255, 255)
    assert pixel(3, 1) != (255, 255, 255)  # probability 0.3


def test_bev_rgb_blue_is_lidar():
    report = _report()
    report.components["lidar"][0, 0] = 2.0
    rgb = drawing.bev_rgb(report, 1, component_logit_range=R)
    assert tuple(rgb[NX - 1, NY - 1]) == (0, 0, 128)  # 255 * 2/4 = 127.5 -> 128


# --- Signed images ------------------------------------------------------------------------------------


def _diverging_oracle(c: float, r: float) -> tuple[int, int, int]:
    """The blue-white-red scale, one value at a time: white at 0, full red at +r, full blue at -r,
    black when not finite (Python's round, like np.rint, rounds halves to even)."""
    if not math.isfinite(c):
        return (0, 0, 0)
    t = max(-1.0, min(1.0, c / r))
    if t >= 0:
        return (255, round(255 * (1 - t)), round(255 * (1 - t)))
    return (round(255 * (1 + t)), round(255 * (1 + t)), 255)


def test_diverging_colours_match_the_formula():
    assert tuple(drawing.diverging_rgb(np.array(0.0), R)) == (255, 255, 255)
    assert tuple(drawing.diverging_rgb(np.array(R), R)) == (255, 0, 0)
    assert tuple(drawing.diverging_rgb(np.array(-R), R)) == (0, 0, 255)
    assert tuple(drawing.diverging_rgb(np.array(R / 2), R)) == (255, 128, 128)  # 127.5: half to even
    rng = np.random.default_rng(7)
    for r in (0.5, R, 37.0):
        values = np.concatenate(
            [rng.normal(0.0, r, 300), r * rng.uniform(-3, 3, 300), [0.0, -0.0, r, -r, 5 * r, -5 * r]]
        )
        values = np.concatenate([values, [np.nan, np.inf, -np.inf]])
        rgb = drawing.diverging_rgb(values, r)
        assert rgb.dtype == np.uint8 and rgb.shape == (len(values), 3)
        assert [tuple(int(v) for v in px) for px in rgb] == [_diverging_oracle(c, r) for c in values]
    # nothing on the scale is black: a non-finite contribution cannot be mistaken for a value
    assert not np.any(np.all(drawing.diverging_rgb(np.linspace(-2 * R, 2 * R, 1001), R) == 0, axis=-1))
    with pytest.raises(ValueError, match="component_logit_range"):
        drawing.diverging_rgb(np.zeros(3), 0.0)


@ADAPTERS
def test_signed_images_one_pixel_per_cell_seen_from_above(types):
    report = _report()
    report.components["radar"][3, 5] = np.nan
    images = {
        layer: outputs.bev_signed_image(report, layer, types, "base_link", component_logit_range=R)
        for layer in ("camera", "radar", "lidar", "bias")
    }
    for layer, image in images.items():
        assert (image.height, image.width, image.encoding, image.step) == (NX, NY, "rgb8", NY * 3), layer
        assert image.header.frame_id == "base_link"
        assert (image.header.stamp.sec, image.header.stamp.nanosec) == (1700000000, 250000000)
        rgb = np.asarray(image.data, dtype=np.uint8).reshape(NX, NY, 3)
        # x forward is up (row 0 = largest x), y left is left (column 0 = largest y), as bev_image
        expected = [
            [_diverging_oracle(report.components[layer][iy, ix], R) for iy in range(NY - 1, -1, -1)]
            for ix in range(NX - 1, -1, -1)
        ]
        assert rgb.tolist() == [[list(px) for px in row] for row in expected], layer

    def pixel(layer, iy, ix):
        data = np.asarray(images[layer].data, dtype=np.uint8).reshape(NX, NY, 3)
        return tuple(int(v) for v in data[NX - 1 - ix, NY - 1 - iy])

    assert pixel("camera", 5, 7) == (255, 0, 0)  # +9 logits: beyond +R, full red, top-left corner
    assert pixel("camera", 0, 0) == (0, 0, 255)  # -8: beyond -R, full blue
    assert pixel("camera", 1, 6) == (255, 178, 178)  # +1.2 = 0.3 R: 255 * 0.7 = 178.5 -> 178
    assert pixel("camera", 2, 2) == (255, 255, 255)  # no contribution
    assert pixel("lidar", 4, 2) == (128, 128, 255)  # -2 = -0.5 R: 127.5 -> 128
    assert pixel("bias", 0, 0) == (191, 191, 255)  # -1 = -0.25 R: 191.25 -> 191
    assert pixel("radar", 3, 5) == (0, 0, 0)  # NaN: black, off the scale


def test_signed_images_are_views_of_the_components_only():
    report = _report()
    keys = [key for key, _type, _msg in outputs.frame_messages(report, ROSBAGS, "base_link", 1, 0)]
    signed = [key for key in keys if key.startswith("bev_image/")]
    assert signed == ["bev_image/camera", "bev_image/radar", "bev_image/lidar", "bev_image/bias"]
    assert all(outputs.is_view(key) for key in signed)  # built only when someone subscribes
    skipped = outputs.frame_messages(report, ROSBAGS, "base_link", 1, 0, skip_views=set(signed))
    assert [key for key, _type, _msg in skipped] == [key for key in keys if key not in signed]
    # a model without LiDAR has no LiDAR component, so no LiDAR image
    del report.components["lidar"]
    keys = [key for key, _type, _msg in outputs.frame_messages(report, ROSBAGS, "base_link", 1, 0)]
    assert "bev_image/lidar" not in keys and "bev_image/radar" in keys
    with pytest.raises(KeyError, match="bev/fused"):
        drawing.bev_signed_rgb(report, "fused")
    with pytest.raises(KeyError, match="lidar"):
        drawing.bev_signed_rgb(report, "lidar")


# --- Markers -----------------------------------------------------------------------------------------


@ADAPTERS
def test_markers(types):
    report = _report()
    array = outputs.markers(report, types, "base_link")
    marker_class = types.cls("visualization_msgs/msg/Marker")
    items = list(array.markers)
    assert len(items) == 1 + 2 * len(report.detections) + len(report.alerts)
    assert items[0].action == marker_class.DELETEALL
    assert all(m.action == marker_class.ADD for m in items[1:])
    assert all(m.header.frame_id == "base_link" for m in items)
    outlines = [m for m in items if m.ns == "detections"]
    assert [m.type for m in outlines] == [marker_class.LINE_STRIP] * 2
    for marker, det in zip(outlines, report.detections):
        points = [(p.x, p.y) for p in marker.points]
        assert len(points) == 5 and points[0] == points[-1]  # closed
        assert points[:4] == [tuple(c) for c in det.footprint]
        expected = drawing.MODALITY_COLOURS[det.dominant]
        assert (marker.color.r, marker.color.g, marker.color.b) == pytest.approx(expected)
    assert outlines[0].scale.x > outlines[1].scale.x  # the single-sensor one stands out
    labels = [m for m in items if m.ns == "detection_labels"]
    assert "radar 0.85" in labels[0].text and "RADAR ONLY" in labels[0].text
    assert "ONLY" not in labels[1].text
    alert_texts = [m for m in items if m.ns == "alerts"]
    assert [m.type for m in alert_texts] == [marker_class.TEXT_VIEW_FACING] * 3
    assert "SENSOR_FAILED" in alert_texts[1].text and alert_texts[1].color.r == pytest.approx(1.0)
    assert len({(m.ns, m.id) for m in items[1:]}) == len(items) - 1  # unique ids per namespace


# --- Project messages ---------------------------------------------------------------------------------


@ADAPTERS
def test_decomposition_summary(types):
    report = _report()
    summary = outputs.decomposition_summary(
        report, types, "base_link", frames_processed=8, frames_dropped=3, latency_ms=12.5, frame_index=7
    )
    assert (summary.frame_index, summary.frames_processed, summary.frames_dropped) == (7, 8, 3)
    assert summary.latency_ms == 12.5
    assert list(summary.modalities) == ["camera", "radar", "lidar"]
    assert list(summary.shares) == [0.5, 0.375, 0.125]
    assert [bool(p) for p in summary.present] == [True, True, False]
    assert (summary.grid.width, summary.grid.height, summary.grid.resolution) == (NX, NY, 0.5)
    assert summary.conservation_error == pytest.approx(1e-7)
    first = summary.detections[0]
    assert (first.id, first.dominant_modality, first.single_sensor) == (0, "radar", True)
    assert list(first.supporting_modalities) == ["radar"]
    assert list(first.shares) == pytest.approx([0.1, 0.85, 0.05])
    corners = np.array([(p.x, p.y) for p in first.footprint.points])
    x, y = corners[:, 0], corners[:, 1]
    assert 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) > 0  # counter-clockwise
    # Latency defaults to the pipeline's timings.
    assert outputs.decomposition_summary(report, types, "b", 1, 0).latency_ms == 6.5


@ADAPTERS
def test_alert_array(types):
    array = outputs.alert_array(_report(), types, "base_link")
    alerts = list(array.alerts)
    assert [a.kind for a in alerts] == [SINGLE_SENSOR_SUPPORT, SENSOR_FAILED, "SENSOR_RECOVERED"]
    assert [a.severity for a in alerts] == [WARN, ERROR, INFO]
    assert [a.has_detection for a in alerts] == [True, False, False]
    assert alerts[0].detection.dominant_modality == "radar"
    assert alerts[2].sensor == "/cam_front"
    alert_class = types.cls("ros2_lmd/msg/Alert")
    assert alert_class.WARN == WARN and alert_class.SINGLE_SENSOR_SUPPORT == SINGLE_SENSOR_SUPPORT


def test_both_libraries_give_identical_messages():
    report = _report()
    builders = {
        "grid": lambda t: outputs.occupancy_grid(report, "camera", t, "base_link"),
        "image": lambda t: outputs.bev_image(report, t, "base_link", scale=2),
        "signed image": lambda t: outputs.bev_signed_image(report, "lidar", t, "base_link"),
        "markers": lambda t: outputs.markers(report, t, "base_link"),
        "summary": lambda t: outputs.decomposition_summary(report, t, "base_link", 8, 3, 12.5),
        "alerts": lambda t: outputs.alert_array(report, t, "base_link"),
        "diagnostics": lambda t: outputs.diagnostic_array(
            [status.StatusRecord("ros2_lmd: x", "x", status.DIAG_STALE, "no data", {"k": "v"})], t, STAMP
        ),
    }
    for name, build in builders.items():
        assert _serialized(build(RCLPY)) == _serialized(build(ROSBAGS)), name


# --- Diagnostics ---------------------------------------------------------------------------------------

SENSORS = [
    SensorInfo("cam_front", "/cam_front/image", "camera"),
    SensorInfo("lidar_top", "/lidar_top", "lidar"),
]


def _levels(tracker: SensorHealthTracker, now: float) -> dict[str, int]:
    return {r.hardware_id: r.level for r in tracker.statuses(now)}


def test_sensor_levels_stale_before_data_then_ok_warn_error():
    tracker = SensorHealthTracker(SENSORS, stale_timeout_s=0.5, persistence=3)
    assert _levels(tracker, 0.0) == {"cam_front": 3, "lidar_top": 3}  # STALE: nothing yet
    tracker.message("cam_front", stamp=10.0, now=1.0)
    assert _levels(tracker, 1.1)["cam_front"] == status.DIAG_OK
    for bad in range(1, 3):  # WARN until the persistence count is reached
        tracker.error("cam_front", "/cam_front/image", "data: corrupt JPEG", now=1.1 + bad * 0.1)
        assert _levels(tracker, 1.4)["cam_front"] == status.DIAG_WARN
    tracker.error("cam_front", "/cam_front/image", "data: corrupt JPEG", now=1.4)
    record = {r.hardware_id: r for r in tracker.statuses(1.45)}["cam_front"]
    assert record.level == status.DIAG_ERROR
    assert record.values["last_error"] == "/cam_front/image: data: corrupt JPEG"
    assert "3 consecutive" in record.message and record.name == "ros2_lmd: cam_front"
    tracker.message("cam_front", stamp=10.5, now=1.5)  # a good message clears it
    assert _levels(tracker, 1.6)["cam_front"] == status.DIAG_OK
    assert _levels(tracker, 2.1)["cam_front"] == status.DIAG_WARN  # stale: 0.6 s without data
    assert _levels(tracker, 2.1)["lidar_top"] == status.DIAG_STALE


def test_missed_frames_count_towards_error_and_an_included_frame_resets():
    tracker = SensorHealthTracker(SENSORS, stale_timeout_s=10.0, persistence=2)
    tracker.message("lidar_top", 1.0, 1.0)
    tracker.message("cam_front", 1.0, 1.0)
    tracker.frame({"cam_front": False, "lidar_top": True}, {"cam_front": "no CameraInfo yet"})
    assert _levels(tracker, 1.0)["cam_front"] == status.DIAG_WARN
    tracker.frame({"cam_front": False, "lidar_top": True}, {"cam_front": "no CameraInfo yet"})
    record = tracker.statuses(1.0)[0]
    assert record.level == status.DIAG_ERROR and "no CameraInfo yet" in record.message
    tracker.frame({"cam_front": True, "lidar_top": True})
    assert _levels(tracker, 1.0) == {"cam_front": 0, "lidar_top": 0}


def test_rate_and_values():
    tracker = SensorHealthTracker(SENSORS, stale_timeout_s=1.0, persistence=3)
    for i in range(11):
        tracker.message("lidar_top", stamp=100.0 + i * 0.05, now=i * 0.05)
    values = tracker.statuses(0.5)[1].values
    assert float(values["rate_hz"]) == pytest.approx(20.0)
    assert values["topic"] == "/lidar_top" and values["last_stamp"] == "100.500000"
    assert values["last_error"] == "" and values["messages"] == "11"


@ADAPTERS
def test_diagnostic_array(types):
    tracker = SensorHealthTracker(SENSORS, stale_timeout_s=0.5, persistence=3)
    tracker.message("lidar_top", 5.0, 1.0)
    report = _report()
    records = tracker.statuses(1.0) + status.modality_statuses(
        ("camera", "radar", "lidar"),
        report,
        {"camera": "ok", "radar": "degraded", "lidar": "failed"},
        {"camera": 1.0, "radar": 0.4, "lidar": 0.1},
    )
    array = outputs.diagnostic_array(records, types, STAMP)
    statuses = list(array.status)
    assert [s.hardware_id for s in statuses] == ["cam_front", "lidar_top", "camera", "radar", "lidar"]
    assert [as_int(s.level) for s in statuses] == [3, 0, 0, 1, 2]
    values = {kv.key: kv.value for kv in statuses[3].values}
    assert values == {
        "state": "degraded",
        "share": "0.375",
        "contribution_ratio": "0.400",
        "present": "true",
        "energy": "0.5",
    }
    assert statuses[2].name == "ros2_lmd: camera contribution"
    before = status.modality_statuses(("camera",), None, {}, {})
    assert before[0].level == status.DIAG_STALE


def test_modality_missing_is_warn():
    (record,) = status.modality_statuses(("lidar",), _report(), {"lidar": "missing"}, {})
    assert record.level == status.DIAG_WARN and record.values["present"] == "false"


# --- The adapter itself -----------------------------------------------------------------------------


@ADAPTERS
def test_new_fills_defaults_and_refuses_unknown_fields(types):
    assert types.new("geometry_msgs/msg/Quaternion").w == 1.0  # declared in the .msg
    info = types.new("sensor_msgs/msg/CameraInfo", width=4)
    assert info.width == 4 and info.height == 0 and len(info.k) == 9 and info.header.frame_id == ""
    assert len(info.d) == 0
    with pytest.raises(TypeError, match="colour"):
        types.new("std_msgs/msg/ColorRGBA", colour=1.0)
    with pytest.raises(LookupError, match="nope_msgs"):
        types.cls("nope_msgs/msg/Nothing")


def test_status_names_carry_the_monitors_namespace():
    records = [
        status.StatusRecord("ros2_lmd: cam_front", "cam_front", status.DIAG_OK, "ok"),
        status.StatusRecord("other: x", "x", status.DIAG_OK, "ok"),
    ]
    assert [r.name for r in status.in_namespace(records, "/")] == ["ros2_lmd: cam_front", "other: x"]
    named = status.in_namespace(records, "/fleet/car1")
    assert [r.name for r in named] == ["fleet/car1/ros2_lmd: cam_front", "other: x"]
    assert named[0].hardware_id == "cam_front" and records[0].name == "ros2_lmd: cam_front"  # a copy
