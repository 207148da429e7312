"""Monitor parameters: config/monitor.yaml matches the record, and the loader names every bad
parameter."""

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.tiny import build_tiny_model

from ros2_lmd.models import RULE_PRESETS
from ros2_lmd.monitor.params import (
    MonitorParams,
    ParameterError,
    load_params_file,
    parameter_specs,
    params_from_mapping,
    resolve_topic,
    with_resolved_topics,
)
from ros2_lmd.monitor.pipeline import pipeline_for

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "monitor.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_config_file_loads_to_the_defaults():
    assert load_params_file(CONFIG) == MonitorParams()


def test_config_file_is_a_ros2_parameter_file_for_any_node():
    assert load_params_file(CONFIG, node_name="other", namespace="/car1") == MonitorParams()


def test_every_parameter_is_in_the_config_file_with_a_comment():
    lines = CONFIG.read_text().splitlines()
    for spec in parameter_specs():
        at = [i for i, line in enumerate(lines) if re.match(rf"\s+{spec.name}:", line)]
        assert len(at) == 1, f"{spec.name} appears {len(at)} times in {CONFIG.name}"
        assert lines[at[0] - 1].strip().startswith("#"), f"{spec.name} has no comment above it"


def test_config_file_has_only_known_parameters():
    names = {m.group(1) for m in re.finditer(r"^    (\w+):", CONFIG.read_text(), re.MULTILINE)}
    assert names == {spec.name for spec in parameter_specs()}


def test_specs_are_complete():
    specs = parameter_specs()
    assert [s.name for s in specs] == [f.name for f in dataclasses.fields(MonitorParams)]
    for spec in specs:
        assert spec.description.strip(), spec.name
        assert spec.ros_type in {"bool", "integer", "double", "string", "string_array"}
        if spec.type in (int, float):
            assert spec.min is not None and spec.min <= spec.default <= spec.max, spec.name
        if spec.choices:
            assert spec.default in spec.choices


def test_expected_defaults():
    params = MonitorParams()
    # relative: in the node's namespace, so namespace:=car1 and car2 run side by side
    assert params.camera_image_topics[0] == "cam_front/image_rect_compressed"
    assert params.camera_info_topics[-1] == "cam_back_right/camera_info"
    assert len(params.camera_names) == 6 and len(params.radar_topics) == 5
    assert (params.lidar_topic, params.key_sensor, params.sync_tolerance_s) == ("lidar_top", "lidar", 0.06)
    assert (params.output_prefix, params.queue_depth, params.publish_rate_hz) == ("lmd", 1, 0.0)


def test_topics_resolve_in_a_namespace_as_ros_resolves_them():
    params = MonitorParams(radar_topics=("radar_front", "/global/radar"))
    root = with_resolved_topics(params)  # a bag's names (analyze)
    assert root.camera_image_topics[0] == "/cam_front/image_rect_compressed"
    assert (root.lidar_topic, root.output_prefix) == ("/lidar_top", "/lmd")
    assert root.radar_topics == ("/radar_front", "/global/radar")
    car1 = with_resolved_topics(params, "/car1")
    assert (car1.lidar_topic, car1.output_prefix) == ("/car1/lidar_top", "/car1/lmd")
    assert car1.radar_topics == ("/car1/radar_front", "/global/radar")  # absolute stays
    assert (
        with_resolved_topics(params, "/fleet/car2/").camera_info_topics[0]
        == "/fleet/car2/cam_front/camera_info"
    )
    assert resolve_topic("lmd", "/") == "/lmd" and resolve_topic("/lmd", "/car1") == "/lmd"


@pytest.mark.parametrize(
    "name, value",
    [
        ("lidar_topic", "lidar top"),
        ("lidar_topic", ""),
        ("output_prefix", "lmd/"),
        ("output_prefix", "~/lmd"),
        ("radar_topics", ("radar_front", "2radar")),
        ("camera_info_topics", tuple(f"cam{i}//camera_info" for i in range(6))),
    ],
)
def test_a_topic_that_is_not_a_ros_name_is_named(name, value):
    with pytest.raises(ParameterError, match=f"{name}: .* is not a ROS topic name"):
        MonitorParams(**{name: value})


def test_node_section_overrides_wildcard(tmp_path):
    path = _write(
        tmp_path,
        """
/**:
  ros__parameters:
    device: cpu
    detection_threshold: 0.4
lmd_monitor:
  ros__parameters:
    detection_threshold: 0.6
    radar_topics: [/radar_a, /radar_b]
other_node:
  ros__parameters:
    not_ours: 1
""",
    )
    params = load_params_file(path)
    assert (params.device, params.detection_threshold) == ("cpu", 0.6)
    assert params.radar_topics == ("/radar_a", "/radar_b")


def test_unknown_parameter_is_named(tmp_path):
    path = _write(tmp_path, "/**:\n  ros__parameters:\n    detection_treshold: 0.5\n")
    with pytest.raises(ParameterError, match=r"params\.yaml: detection_treshold: unknown"):
        load_params_file(path)


def test_nested_parameter_is_named_with_its_dotted_name(tmp_path):
    path = _write(tmp_path, "/**:\n  ros__parameters:\n    lidar:\n      topic: /x\n")
    with pytest.raises(ParameterError, match=r"lidar\.topic: unknown"):
        load_params_file(path)


@pytest.mark.parametrize(
    "line, message",
    [
        ("sync_tolerance_s: 1", r"sync_tolerance_s: expected double, got int 1 \(write 1\.0\)"),
        ("min_detection_cells: 2.5", r"min_detection_cells: expected integer, got float"),
        ("use_compressed: 'yes'", r"use_compressed: expected bool, got str"),
        ("baseline_window: true", r"baseline_window: expected integer, got bool"),
        ("radar_topics: [1, 2]", r"radar_topics: expected a list of strings"),
        ("modalities: []", r"modalities: an empty list cannot be given"),
        ("use_sim_time: 1", r"use_sim_time: expected bool"),
    ],
)
def test_wrong_type_is_named(tmp_path, line, message):
    path = _write(tmp_path, f"/**:\n  ros__parameters:\n    {line}\n")
    with pytest.raises(ParameterError, match=message):
        load_params_file(path)


def test_all_problems_are_reported_together():
    with pytest.raises(ParameterError) as error:
        params_from_mapping({"bogus": 1, "queue_depth": "1", "device": "cpu"})
    assert "bogus: unknown" in str(error.value) and "queue_depth: expected integer" in str(error.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"detection_threshold": 1.5}, r"detection_threshold: 1\.5 is outside \[0\.0, 1\.0\]"),
        ({"device": "gpu"}, r"device: 'gpu' is not one of"),
        ({"failed_ratio": 0.6}, r"failed_ratio: 0\.6 must be in \[0, degraded_ratio 0\.5\)"),
        ({"hysteresis_k": 6}, r"hysteresis_k: 6 must be in \[1, hysteresis_n 5\]"),
        ({"key_sensor": "camera", "modalities": ["radar", "lidar"]}, r"key_sensor: 'camera' is not"),
        ({"camera_names": ["cam_front"]}, r"camera_image_topics: 6 topics for 1 camera_names"),
        ({"modalities": ["lidar", "sonar"]}, r"modalities: unknown \['sonar'\]"),
        ({"extrinsics_source": "config"}, r"extrinsics_file: required"),
    ],
)
def test_invalid_values_are_named(values, message):
    with pytest.raises(ParameterError, match=message):
        params_from_mapping(values)


def test_use_sim_time_and_qos_overrides_are_accepted():
    params = params_from_mapping({"use_sim_time": True, "qos_overrides./lidar_top.subscription.depth": 5})
    assert params == MonitorParams()


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ParameterError, match="cannot read"):
        load_params_file(tmp_path / "missing.yaml")
    with pytest.raises(ParameterError, match="no section applies to node /lmd_monitor"):
        load_params_file(_write(tmp_path, "someone_else:\n  ros__parameters:\n    a: 1\n"))
    with pytest.raises(ParameterError, match="has no ros__parameters"):
        load_params_file(_write(tmp_path, "/**:\n  device: cpu\n"))


@given(st.floats(min_value=-10.0, max_value=10.0, allow_nan=False))
def test_range_check_matches_the_declared_range(value):
    inside = 0.0 <= value <= 1.0
    try:
        params = params_from_mapping({"sync_tolerance_s": value})
    except ParameterError as error:
        assert not inside and "sync_tolerance_s" in str(error)
    else:
        assert inside and params.sync_tolerance_s == value


def test_each_alert_threshold_is_declared_once_in_alert_config():
    # MonitorParams offers AlertConfig's thresholds with AlertConfig's own default, description
    # and range: changing one there changes the node parameter
    from ros2_lmd.monitor.alerts import ALERT_PARAMETERS, AlertConfig
    from ros2_lmd.monitor.pipeline import alert_config_from

    params = {f.name: f for f in dataclasses.fields(MonitorParams)}
    config = {f.name: f for f in dataclasses.fields(AlertConfig)}
    assert set(ALERT_PARAMETERS) == set(params) & set(config)
    assert "baseline_min_frames" in config and "baseline_min_frames" not in ALERT_PARAMETERS
    for name in ALERT_PARAMETERS:
        assert params[name].default == config[name].default, name
        assert params[name].metadata == config[name].metadata, name
    assert alert_config_from(MonitorParams()) == AlertConfig()
    changed = alert_config_from(MonitorParams(hysteresis_k=2, baseline_window=4))
    assert (changed.hysteresis_k, changed.baseline_window, changed.baseline_min_frames) == (2, 4, 4)


def test_alert_threshold_problems_are_reported_by_both_owners_alike():
    from ros2_lmd.monitor.alerts import AlertConfig

    with pytest.raises(ValueError, match=r"hysteresis_k: 6 must be in \[1, hysteresis_n 5\]") as raised:
        AlertConfig(hysteresis_k=6)
    with pytest.raises(ParameterError) as from_params:
        MonitorParams(hysteresis_k=6)
    assert str(raised.value) == str(from_params.value)


def test_lmd_rules_selects_a_preset_for_the_pipeline(tmp_path):
    path = _write(tmp_path, "/**:\n  ros__parameters:\n    lmd_rules: paper\n    decomposition: eager\n")
    params = load_params_file(path)
    assert params.lmd_rules == "paper"
    pipeline = pipeline_for(build_tiny_model(), params)
    assert pipeline.rules == RULE_PRESETS["paper"]
    assert pipeline.checking_rules.per_module == RULE_PRESETS["paper"].per_module
    bad = _write(tmp_path, "/**:\n  ros__parameters:\n    lmd_rules: papers\n")
    with pytest.raises(ParameterError, match=r"lmd_rules: 'papers' is not one of \['default', 'paper'\]"):
        load_params_file(bad)
