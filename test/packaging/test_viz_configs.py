"""The visualisation configs, config/monitor.rviz (rviz2) and config/foxglove_layout.json (Foxglove),
against what the monitor publishes. Neither tool runs here, so a wrong topic or class would only
show as an empty panel in front of a user; these tests catch it first.

Every topic a config names must be an output of `ros2_lmd.messages.outputs.frame_messages` on real
FrameReports (a tiny model through the Pipeline, with a radar dropout so that alerts and an
incident exist), under the output_prefix of config/monitor.yaml, or /diagnostics, or an input of
config/monitor.yaml (sensor topics, /tf, /tf_static), with a message type its display shows. Every
rviz class and Foxglove panel type must be one of the tools' own (lists below)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.tiny import build_tiny_model

from ros2_lmd.messages import outputs
from ros2_lmd.messages.types import rosbags_types
from ros2_lmd.monitor.ingest import input_sensors
from ros2_lmd.monitor.params import MonitorParams, load_params_file, resolve_topic, with_resolved_topics
from ros2_lmd.monitor.pipeline import Pipeline
from ros2_lmd.sim import simulate_drive

REPO = Path(__file__).resolve().parents[2]
RVIZ = REPO / "config" / "monitor.rviz"
FOXGLOVE = REPO / "config" / "foxglove_layout.json"
PARAMS = REPO / "config" / "monitor.yaml"

# rviz2 (Humble, Jazzy): the display classes of rviz_default_plugins (its plugins_description.xml)
# and rviz_common's Group; a class rviz2 does not know loads as an empty display with an error.
RVIZ_DISPLAY_CLASSES = frozenset(
    {"rviz_common/Group"}
    | {
        f"rviz_default_plugins/{name}"
        for name in (
            "Axes",
            "Camera",
            "DepthCloud",
            "Effort",
            "FluidPressure",
            "Grid",
            "GridCells",
            "Illuminance",
            "Image",
            "InteractiveMarkers",
            "LaserScan",
            "Map",
            "Marker",
            "MarkerArray",
            "Odometry",
            "Path",
            "PointCloud",
            "PointCloud2",
            "PointStamped",
            "Polygon",
            "Pose",
            "PoseArray",
            "PoseWithCovariance",
            "Range",
            "RelativeHumidity",
            "RobotModel",
            "TF",
            "Temperature",
            "Wrench",
        )
    }
)
RVIZ_PANEL_CLASSES = frozenset(
    f"rviz_common/{name}" for name in ("Displays", "Views", "Selection", "Time", "Tool Properties")
)
RVIZ_TOOL_CLASSES = frozenset(
    f"rviz_default_plugins/{name}"
    for name in (
        "Interact",
        "MoveCamera",
        "Select",
        "FocusCamera",
        "Measure",
        "SetInitialPose",
        "SetGoal",
        "PublishPoint",
    )
)
RVIZ_VIEW_CLASSES = frozenset(
    f"rviz_default_plugins/{name}"
    for name in ("Orbit", "XYOrbit", "ThirdPersonFollower", "TopDownOrtho", "FPS")
)
# The message types each topic display of ours shows.
RVIZ_DISPLAY_TYPES = {
    "rviz_default_plugins/Image": {"sensor_msgs/msg/Image"},
    "rviz_default_plugins/Map": {"nav_msgs/msg/OccupancyGrid"},
    "rviz_default_plugins/MarkerArray": {"visualization_msgs/msg/MarkerArray"},
    "rviz_default_plugins/PointCloud2": {"sensor_msgs/msg/PointCloud2"},
}

# Foxglove's built-in panel types (the `type` of each entry of its panel catalogue,
# packages/studio-base/src/panels/index.ts): a layout's panel ids are "<type>!<any id>".
FOXGLOVE_PANEL_TYPES = frozenset(
    {
        "3D",
        "DiagnosticStatusPanel",
        "DiagnosticSummary",
        "Image",
        "ImageViewPanel",
        "Indicator",
        "Gauge",
        "Teleop",
        "map",
        "Parameters",
        "Plot",
        "Publish",
        "RawMessages",
        "RosOut",
        "StateTransitions",
        "Table",
        "TopicGraph",
        "SourceInfo",
        "GlobalVariableSliderPanel",
        "NodePlayground",
        "Tab",
    }
)
FOXGLOVE_3D_TYPES = {
    "nav_msgs/msg/OccupancyGrid",
    "visualization_msgs/msg/MarkerArray",
    "sensor_msgs/msg/PointCloud2",
}
FOXGLOVE_IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}


# --- What exists: the node's outputs and its inputs ----------------------------------------------------


@pytest.fixture(scope="module")
def params() -> MonitorParams:
    # topic names as the node in the root namespace resolves them (the configs name them in full)
    return with_resolved_topics(load_params_file(PARAMS))


@pytest.fixture(scope="module")
def published(params) -> dict[str, tuple[str, Any]]:
    """topic -> (type, one message) of everything the node publishes: frame_messages of a short
    drive whose radars drop out (SENSOR_MISSING alerts, a radar incident), and /diagnostics."""
    pipeline = Pipeline(build_tiny_model())
    types = rosbags_types()
    prefix = params.output_prefix.rstrip("/")
    topics: dict[str, tuple[str, Any]] = {}
    drive = simulate_drive(1, duration_s=0.5, faults="radar:dropout@0.0-0.5")
    for index, frame in enumerate(drive, start=1):
        report = pipeline.process(frame.to_sensor_frame())
        for key, msgtype, message in outputs.frame_messages(report, types, params.base_frame, index, 0):
            topics[f"{prefix}/{key}"] = (msgtype, message)
    assert {f"{prefix}/alerts", f"{prefix}/incidents"} <= set(topics), "the drive must raise both"
    topics["/diagnostics"] = ("diagnostic_msgs/msg/DiagnosticArray", None)
    return topics


@pytest.fixture(scope="module")
def inputs(params) -> dict[str, str]:
    """topic -> type of what config/monitor.yaml subscribes to, and TF."""
    image = "sensor_msgs/msg/CompressedImage" if params.use_compressed else "sensor_msgs/msg/Image"
    topics = {"/tf": "tf2_msgs/msg/TFMessage", "/tf_static": "tf2_msgs/msg/TFMessage"}
    for sensor in input_sensors(params, tuple(params.modalities)):
        topics[sensor.topic] = image if sensor.modality == "camera" else "sensor_msgs/msg/PointCloud2"
        if sensor.info_topic:
            topics[sensor.info_topic] = "sensor_msgs/msg/CameraInfo"
    return topics


def _type_of(topic: str, published: dict, inputs: dict, where: str) -> str:
    if topic in published:
        return published[topic][0]
    assert topic in inputs, f"{where}: topic {topic} is neither published by the node nor an input"
    return inputs[topic]


# --- rviz2 ---------------------------------------------------------------------------------------------


def _rviz() -> dict:
    return yaml.safe_load(RVIZ.read_text())


def _rviz_displays(displays: list[dict], path: str = "") -> Iterator[tuple[str, dict]]:
    for display in displays:
        where = f"{path}/{display['Name']}"
        yield where, display
        if display["Class"] == "rviz_common/Group":
            yield from _rviz_displays(display["Displays"], where)


def image_transport_source(topic: str) -> str:
    """The topic an rviz2 Image display on `topic` must be remapped to. rviz2 takes the transport
    from the last name of the topic (…/compressed: image_transport's compressed transport, which
    subscribes to exactly that name), so the nuScenes name <base>_compressed is seen as
    <base>/compressed plus a remap (rviz2 --ros-args -r <base>/compressed:=<base>_compressed; the
    header of config/monitor.rviz and the README). Other topics are raw Images, taken as they are."""
    base, transport = topic.rsplit("/", 1)
    return f"{base}_compressed" if transport == "compressed" else topic


def test_rviz_classes_exist_and_the_view_is_base_link_from_above(params):
    config = _rviz()
    for panel in config["Panels"]:
        assert panel["Class"] in RVIZ_PANEL_CLASSES, panel["Class"]
    manager = config["Visualization Manager"]
    for where, display in _rviz_displays(manager["Displays"]):
        assert display["Class"] in RVIZ_DISPLAY_CLASSES, (
            f"{where}: {display['Class']} is not an rviz2 display"
        )
        assert display["Enabled"] == display["Value"], f"{where}: Enabled and Value disagree"
    for tool in manager["Tools"]:
        assert tool["Class"] in RVIZ_TOOL_CLASSES, tool["Class"]
    assert manager["Views"]["Current"]["Class"] in RVIZ_VIEW_CLASSES
    assert manager["Views"]["Current"]["Class"] == "rviz_default_plugins/TopDownOrtho"
    assert manager["Global Options"]["Fixed Frame"] == params.base_frame == "base_link"
    assert manager["Transformation"]["Current"]["Class"] == "rviz_default_plugins/TF"


def test_rviz_topics_exist_with_the_types_their_displays_show(published, inputs):
    names = set()
    for where, display in _rviz_displays(_rviz()["Visualization Manager"]["Displays"]):
        assert where not in names, f"two displays named {where}"
        names.add(where)
        if "Topic" not in display:
            continue
        name = display["Topic"]["Value"]  # relative: rviz2 runs in the monitor's namespace
        topic = resolve_topic(name)
        accepted = RVIZ_DISPLAY_TYPES[display["Class"]]
        if display["Class"] == "rviz_default_plugins/Image" and topic.endswith("/compressed"):
            source = image_transport_source(topic)
            assert _type_of(source, published, inputs, where) == "sensor_msgs/msg/CompressedImage", where
            remap = f"-r {name}:={image_transport_source(name)}"
            assert remap in RVIZ.read_text(), f"{where}: the header lacks its remap"
        else:
            assert _type_of(topic, published, inputs, where) in accepted, f"{where}: {topic}"
        if topic in inputs or image_transport_source(topic) in inputs:
            # sensor drivers publish best effort: a reliable subscriber would get nothing from them
            assert display["Topic"]["Reliability Policy"] == "Best Effort", where
        if display["Class"] == "rviz_default_plugins/Map":
            # rviz2's Map display always listens for incremental updates too; nobody sends any
            assert display["Update Topic"]["Value"] == f"{name}_updates", where


def test_rviz_shows_every_view_the_node_builds_and_every_sensor(published, inputs):
    config = _rviz()
    displays = [d for _, d in _rviz_displays(config["Visualization Manager"]["Displays"])]
    shown = {image_transport_source(resolve_topic(d["Topic"]["Value"])) for d in displays if "Topic" in d}
    prefix = "/lmd/"
    views = {t for t in published if t.startswith(prefix) and outputs.is_view(t[len(prefix) :])}
    assert views and views <= shown, f"views without a display: {sorted(views - shown)}"
    sensors = {t for t, kind in inputs.items() if kind != "sensor_msgs/msg/CameraInfo" and "/tf" not in t}
    assert sensors <= shown, f"sensors without a display: {sorted(sensors - shown)}"
    assert "rviz_default_plugins/TF" in {d["Class"] for d in displays}
    # the signed components are pictures on the diverging scale; their grids must not use the
    # costmap scheme (which paints 50, no contribution, as a cost)
    for display in displays:
        if display["Class"] == "rviz_default_plugins/Map":
            assert display["Color Scheme"] in ("map", "raw"), display["Name"]


# --- Foxglove ------------------------------------------------------------------------------------------


def _foxglove() -> dict:
    return json.loads(FOXGLOVE.read_text())


def _placed_panels(node: Any, configs: dict) -> Iterator[str]:
    """Panel ids of a layout tree (a panel id, or a split with first/second), tabs included."""
    if isinstance(node, str):
        yield node
        if node.startswith("Tab!"):
            for tab in configs[node]["tabs"]:
                yield from _placed_panels(tab["layout"], configs)
        return
    assert node["direction"] in ("row", "column") and 0 < node["splitPercentage"] < 100, node
    yield from _placed_panels(node["first"], configs)
    yield from _placed_panels(node["second"], configs)


def _message_path_field(message: Any, fields: str, where: str) -> Any:
    """Follow `.a.b[2]` of a Foxglove message path on an example message."""
    value = message
    for part in fields.split("."):
        match = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
        assert match, f"{where}: cannot read message path part {part!r}"
        assert hasattr(value, match[1]), f"{where}: no field {match[1]!r} in {type(value).__name__}"
        value = getattr(value, match[1])
        if match[2] is not None:
            assert int(match[2]) < len(value), f"{where}: {part} is past the end ({len(value)})"
            value = value[int(match[2])]
    return value


def _check_message_path(path: str, published: dict, where: str) -> tuple[str, Any]:
    topic, _, fields = path.partition(".")
    assert topic in published, f"{where}: message path {path} on {topic}, which the node does not publish"
    message = published[topic][1]
    return topic, _message_path_field(message, fields, where) if fields else message


def test_foxglove_panels_exist_and_are_all_placed():
    layout = _foxglove()
    configs = layout["configById"]
    placed = list(_placed_panels(layout["layout"], configs))
    assert len(placed) == len(set(placed)), "a panel placed twice"
    assert set(placed) == set(configs), (
        f"placed without config: {sorted(set(placed) - set(configs))}, "
        f"configured but not placed: {sorted(set(configs) - set(placed))}"
    )
    for panel_id in configs:
        panel_type, _, suffix = panel_id.partition("!")
        assert panel_type in FOXGLOVE_PANEL_TYPES and suffix, f"{panel_id} is not a Foxglove panel"


def test_foxglove_topics_exist_with_the_types_their_panels_show(published, inputs, params):
    configs = _foxglove()["configById"]
    for panel_id, config in configs.items():
        panel_type = panel_id.partition("!")[0]
        if panel_type == "3D":
            assert config["followTf"] == params.base_frame
            for topic in config["topics"]:
                assert _type_of(topic, published, inputs, panel_id) in FOXGLOVE_3D_TYPES, topic
            for topic, settings in config["topics"].items():
                if _type_of(topic, published, inputs, panel_id) == "nav_msgs/msg/OccupancyGrid":
                    # the component grids are signed around 50: no costmap scheme
                    assert settings["colorMode"] in ("map", "raw"), topic
        elif panel_type == "Image":
            mode = config["imageMode"]
            assert _type_of(mode["imageTopic"], published, inputs, panel_id) in FOXGLOVE_IMAGE_TYPES
            if "calibrationTopic" in mode:
                calibration = _type_of(mode["calibrationTopic"], published, inputs, panel_id)
                assert calibration == "sensor_msgs/msg/CameraInfo", panel_id
        elif panel_type == "DiagnosticSummary":
            assert published[config["topicToRender"]][0] == "diagnostic_msgs/msg/DiagnosticArray"
        elif panel_type in ("Table", "RawMessages"):
            _check_message_path(config["topicPath"], published, panel_id)
        elif panel_type == "Plot":
            for path in config["paths"]:
                topic, _ = _check_message_path(path["value"], published, panel_id)
                share = re.fullmatch(r"[^.]+\.shares\[(\d+)\]", path["value"])
                if share:  # the label names the modality of that index (model order)
                    modality = published[topic][1].modalities[int(share[1])]
                    assert path["label"].startswith(modality), (path["label"], modality)
        else:
            assert panel_type == "Tab", f"{panel_id}: a panel type this test does not check"


def test_foxglove_shows_every_output_and_every_sensor(published, inputs):
    shown = set()
    for panel_id, config in _foxglove()["configById"].items():
        panel_type = panel_id.partition("!")[0]
        if panel_type == "3D":
            shown |= set(config["topics"])
        elif panel_type == "Image":
            shown |= {config["imageMode"]["imageTopic"], config["imageMode"].get("calibrationTopic")}
        elif panel_type == "DiagnosticSummary":
            shown.add(config["topicToRender"])
        elif panel_type in ("Table", "RawMessages"):
            shown.add(config["topicPath"].partition(".")[0])
        elif panel_type == "Plot":
            shown |= {path["value"].partition(".")[0] for path in config["paths"]}
    assert set(published) <= shown, f"outputs without a panel: {sorted(set(published) - shown)}"
    sensors = {t for t in inputs if not t.startswith("/tf")}
    assert sensors <= shown, f"inputs without a panel: {sorted(sensors - shown)}"
