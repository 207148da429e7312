"""The project's messages over the real middleware: an rclpy publisher and subscriber in this
process exchange each type, and what arrives equals what was sent. Also pins the message fields,
which consumers depend on."""

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run `make test` (it sets up ROS 2)")
pytestmark = pytest.mark.ros  # rclpy message classes (test/conftest.py, tiers)

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import Point32  # noqa: E402

from ros2_lmd.msg import Alert, AlertArray, DecompositionSummary, Detection  # noqa: E402
from ros2_lmd.ros.smoke import exchange  # noqa: E402

# Float values below are exact in float32, so equality after the round trip is exact.


def _camera_only_detection() -> Detection:
    detection = Detection()
    detection.id = 3
    detection.position.x, detection.position.y, detection.position.z = -20.25, 7.5, 0.0
    detection.footprint.points = [
        Point32(x=-21.0, y=7.0),
        Point32(x=-19.5, y=7.0),
        Point32(x=-19.5, y=8.0),
        Point32(x=-21.0, y=8.0),
    ]
    detection.area_m2 = 1.5
    detection.score = 0.625
    detection.modalities = ["camera", "radar", "lidar"]
    detection.shares = [0.9375, 0.03125, 0.03125]
    detection.dominant_modality = "camera"
    detection.supporting_modalities = ["camera"]
    detection.single_sensor = True
    return detection


def _summary() -> DecompositionSummary:
    summary = DecompositionSummary()
    summary.header.stamp.sec, summary.header.stamp.nanosec = 1533151603, 547590000
    summary.header.frame_id = "base_link"
    summary.frame_index = 2**40 + 5  # uint64 beyond 32 bits
    summary.grid.resolution = 0.5
    summary.grid.width, summary.grid.height = 200, 160
    summary.grid.origin.position.x, summary.grid.origin.position.y = -50.0, -40.0
    summary.modalities = ["camera", "radar", "lidar"]
    summary.shares = [0.125, 0.375, 0.5]
    summary.present = [False, True, True]
    summary.sensors = ["cam_front", "lidar_top"]
    summary.messages_received, summary.messages_lost = [600, 330], [0, 270]
    second = _camera_only_detection()
    second.id, second.single_sensor = 4, False
    second.shares = [0.5, 0.25, 0.25]
    second.supporting_modalities = ["camera", "radar", "lidar"]
    summary.detections = [_camera_only_detection(), second]
    summary.conservation_error = 2.0**-20
    summary.latency_ms = 41.25
    summary.frames_processed = 1000
    summary.frames_dropped = 17
    return summary


def _alert() -> Alert:
    alert = Alert()
    alert.header.stamp.sec = 1533151603
    alert.header.frame_id = "base_link"
    alert.kind = Alert.MODALITY_DISAGREEMENT
    alert.severity = Alert.ERROR
    alert.modality = "lidar"
    alert.sensor = "/lidar_top"
    alert.message = "camera and LiDAR disagree at (-20.2, 7.5) m: +3.5 vs -2.5 logit"
    alert.has_detection = True
    alert.detection = _camera_only_detection()
    return alert


def _alert_array() -> AlertArray:
    degraded = Alert(
        kind=Alert.SENSOR_DEGRADED,
        severity=Alert.WARN,
        modality="radar",
        message="radar contribution at 0.4 of baseline",
    )
    recovered = Alert(
        kind=Alert.SENSOR_RECOVERED,
        severity=Alert.INFO,
        modality="camera",
        sensor="/cam_back/image_rect_compressed",
        message="camera back",
    )
    array = AlertArray(alerts=[_alert(), degraded, recovered])
    array.header.stamp.sec, array.header.frame_id = 1533151604, "base_link"
    return array


@pytest.fixture(scope="module")
def received_and_sent():
    sent = {
        "Detection": _camera_only_detection(),
        "DecompositionSummary": _summary(),
        "Alert": _alert(),
        "AlertArray": _alert_array(),
    }
    return exchange(sent, timeout_s=20.0), sent


@pytest.mark.parametrize("name", ["Detection", "DecompositionSummary", "Alert", "AlertArray"])
def test_message_survives_the_middleware(received_and_sent, name):
    received, sent = received_and_sent
    assert name in received, f"no {name} arrived over the middleware"
    assert received[name] is not sent[name]
    assert received[name] == sent[name]


def test_received_values_are_the_sent_ones(received_and_sent):
    received, _ = received_and_sent
    summary = received["DecompositionSummary"]
    assert summary.frame_index == 2**40 + 5
    assert (summary.grid.width, summary.grid.height, summary.grid.resolution) == (200, 160, 0.5)
    assert list(summary.shares) == [0.125, 0.375, 0.5]
    assert list(summary.present) == [False, True, True]
    assert [d.id for d in summary.detections] == [3, 4]
    assert [d.single_sensor for d in summary.detections] == [True, False]
    assert summary.conservation_error == 2.0**-20
    alerts = received["AlertArray"].alerts
    assert [a.kind for a in alerts] == ["MODALITY_DISAGREEMENT", "SENSOR_DEGRADED", "SENSOR_RECOVERED"]
    assert [a.severity for a in alerts] == [2, 1, 0]
    assert alerts[0].detection.footprint.points[2].x == -19.5
    assert received["Detection"].dominant_modality == "camera"


def test_alert_constants():
    kinds = [
        "SINGLE_SENSOR_SUPPORT",
        "MODALITY_DISAGREEMENT",
        "SENSOR_DEGRADED",
        "SENSOR_FAILED",
        "SENSOR_STALE",
        "SENSOR_MISSING",
        "SENSOR_RECOVERED",
    ]
    assert [getattr(Alert, kind) for kind in kinds] == kinds
    # Severities are diagnostic_msgs/DiagnosticStatus levels (bytes there, uint8 here).
    assert (Alert.INFO, Alert.WARN, Alert.ERROR) == (
        ord(DiagnosticStatus.OK),
        ord(DiagnosticStatus.WARN),
        ord(DiagnosticStatus.ERROR),
    )


@pytest.mark.parametrize(
    "message_type, fields",
    [
        (
            Detection,
            {
                "id": "uint32",
                "position": "geometry_msgs/Point",
                "footprint": "geometry_msgs/Polygon",
                "area_m2": "float",
                "score": "float",
                "modalities": "sequence<string>",
                "shares": "sequence<float>",
                "dominant_modality": "string",
                "supporting_modalities": "sequence<string>",
                "single_sensor": "boolean",
            },
        ),
        (
            DecompositionSummary,
            {
                "header": "std_msgs/Header",
                "frame_index": "uint64",
                "grid": "nav_msgs/MapMetaData",
                "modalities": "sequence<string>",
                "shares": "sequence<float>",
                "present": "sequence<boolean>",
                "detections": "sequence<ros2_lmd/Detection>",
                "conservation_error": "float",
                "decomposition_error": "float",
                "latency_ms": "float",
                "frames_processed": "uint64",
                "frames_dropped": "uint64",
                "sensors": "sequence<string>",
                "messages_received": "sequence<uint32>",
                "messages_lost": "sequence<uint32>",
            },
        ),
        (
            Alert,
            {
                "header": "std_msgs/Header",
                "kind": "string",
                "severity": "uint8",
                "modality": "string",
                "sensor": "string",
                "message": "string",
                "has_detection": "boolean",
                "detection": "ros2_lmd/Detection",
            },
        ),
        (AlertArray, {"header": "std_msgs/Header", "alerts": "sequence<ros2_lmd/Alert>"}),
    ],
)
def test_message_fields_are_stable(message_type, fields):
    assert message_type.get_fields_and_field_types() == fields
