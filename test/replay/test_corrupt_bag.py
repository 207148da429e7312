"""`corrupt_bag` on short bags, one kind at a time (every kind of the library): what its doc says
happens inside the window (payload kinds change every message, arrival kinds only drop, stamp kinds
shift header stamps by exactly the stated seconds, stuck repeats the window's first payload with new
stamps, temporal misalignment sends the payload k messages back), every other message is copied
byte for byte, and the faults file round-trips. Also a nuScenes-shaped bag (its own radar field
layout) and sensor_msgs/Image cameras."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support import nuscenes_fixture as fx
from support.bags import bag_start_ns, decoded, raw_messages, stamp_ns

from ros2_lmd.corrupt import KINDS
from ros2_lmd.messages.types import project_typestore
from ros2_lmd.replay.corrupt import Fault, corrupt_bag, parse_fault
from ros2_lmd.replay.simulate import simulate_to_bag
from ros2_lmd.sensors.pointcloud2 import structured_points
from ros2_lmd.sim.faults import read_faults_csv

START, END = 0.3, 0.75  # the window, seconds from the bag's start
SENSORS = {
    "camera": ("cam_front", "/cam_front/image_rect_compressed"),
    "lidar": ("lidar_top", "/lidar_top"),
    "radar": ("radar_front", "/radar_front"),
}


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    out = tmp_path_factory.mktemp("drive") / "drive"
    simulate_to_bag(out, duration_s=1.0, seed=2, camera_size=(96, 64), progress=False)
    return out


@pytest.fixture(scope="module")
def original(drive):
    """The drive's raw messages and its decoded messages of the sensors the kinds are tried on."""
    return raw_messages(drive), {topic: decoded(drive, topic) for _, topic in SENSORS.values()}


_STARTS: dict[str, int] = {}


def _inside(bag, time_ns: int) -> bool:
    start = _STARTS.setdefault(str(bag), bag_start_ns(bag))
    return START <= (time_ns - start) * 1e-9 < END


def _payload(message) -> object:
    """A message without its header, comparable with ==."""
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message) if f.name != "header"}
    return {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in fields.items()}


# One kind of each sort (image, points, arrival, stamp, payload source) per modality in the fast
# tier; every other kind in the slow one (about 1.5 s each on 2 cores).
FAST = {
    ("camera", "soiling"),
    ("camera", "frame_lost"),
    ("camera", "stuck"),
    ("lidar", "rotation"),
    ("lidar", "clock_offset"),
    ("lidar", "temporal"),
    ("radar", "ghosts"),
    ("radar", "intermittent"),
}
KIND_CASES = [
    pytest.param(modality, kind, marks=() if (modality, kind) in FAST else pytest.mark.slow)
    for modality, kinds in KINDS.items()
    for kind in kinds
]


@pytest.mark.parametrize("modality,kind", KIND_CASES)
def test_every_kind_on_a_bag_does_what_its_doc_says_and_nothing_else(
    drive, original, tmp_path, modality, kind
):
    sensor, topic = SENSORS[modality]
    severity = 4
    result = corrupt_bag(drive, tmp_path / "out", [Fault(sensor, kind, severity, START, END)], seed=5)
    corruption = KINDS[modality][kind]
    (event,) = read_faults_csv(result.faults_csv)
    assert (event.sensor, event.kind, event.start, event.end, event.param) == (
        sensor,
        kind,
        START,
        END,
        severity,
    )
    before, after = original[0], raw_messages(result.bag)
    untouched = {key for key in before if key[0] != topic or not _inside(drive, key[1])}
    assert all(after[key] == before[key] for key in untouched), "a message outside the fault changed"
    assert set(after) <= set(before)  # nothing added, log times kept

    history = original[1][topic]
    window = [(t, m) for t, m in history if _inside(drive, t)]
    out = dict(decoded(result.bag, topic))
    assert len(window) >= 4
    level = corruption.parameter(severity)
    if corruption.acts_on == "arrival":
        assert sum(t in out for t, _ in window) < len(window), f"{kind}: nothing dropped"
        assert all(after[(topic, t)] == before[(topic, t)] for t, _ in window if t in out)
        if kind == "rate_drop":
            assert [t in out for t, _ in window] == [i % int(level) == 0 for i in range(len(window))]
        return
    assert all(t in out for t, _ in window)
    if corruption.acts_on == "stamp":
        for t, message in window:
            elapsed = (t - bag_start_ns(drive)) * 1e-9 - START
            shift = level if kind == "clock_offset" else level * elapsed
            assert stamp_ns(out[t]) - stamp_ns(message) == round(shift * 1e9)
            assert _payload(out[t]) == _payload(message)
    elif corruption.acts_on == "payload_source":
        times = [t for t, _ in history]
        for t, message in window:
            assert stamp_ns(out[t]) == stamp_ns(message)  # new stamps
            source = window[0][1] if kind == "stuck" else history[max(0, times.index(t) - int(level))][1]
            assert _payload(out[t]) == _payload(source)
    else:
        changed = [_payload(out[t]) != _payload(message) for t, message in window]
        assert all(changed), f"{kind}: some messages inside the window unchanged"
        assert all(stamp_ns(out[t]) == stamp_ns(message) for t, message in window)
        if modality != "camera":
            fields = [
                [(f.name, f.offset, f.datatype) for f in m.fields] for m in (window[0][1], out[window[0][0]])
            ]
            assert fields[0] == fields[1], "the cloud's field layout changed"

    (event,) = read_faults_csv(result.faults_csv)
    assert (event.sensor, event.kind, event.start, event.end, event.param) == (
        sensor,
        kind,
        START,
        END,
        severity,
    )


def test_a_modality_target_writes_one_timeline_row_per_sensor_and_is_reproducible(drive, tmp_path):
    faults = [parse_fault("radar:ghosts:2@0.2-0.6"), parse_fault("lidar_top:rotation@0.5-0.9")]
    first = corrupt_bag(drive, tmp_path / "a", faults, seed=1)
    second = corrupt_bag(drive, tmp_path / "b", faults, seed=1)
    assert raw_messages(first.bag) == raw_messages(second.bag)
    rows = [(e.sensor, e.kind, e.start, e.end, e.param) for e in read_faults_csv(first.faults_csv)]
    radars = [s for s, *_ in rows if s.startswith("radar")]
    assert len(radars) == 5 and rows[-1] == ("lidar_top", "rotation", 0.5, 0.9, 3.0)
    other = corrupt_bag(drive, tmp_path / "c", faults, seed=2)
    assert raw_messages(other.bag) != raw_messages(first.bag)


def test_misalignment_on_the_bag_moves_points_by_exactly_the_transform(drive, tmp_path):
    from ros2_lmd.corrupt.pointcloud import misalignment_transform, xyz

    result = corrupt_bag(drive, tmp_path / "out", [Fault("lidar_top", "rotation", 5, START, END)])
    transform = misalignment_transform(KINDS["lidar"]["rotation"].parameter(5), 0.0)
    out = dict(decoded(result.bag, "/lidar_top"))
    for t, original in decoded(drive, "/lidar_top"):
        if _inside(drive, t):
            before, moved = xyz(structured_points(original, "l")), xyz(structured_points(out[t], "l"))
            np.testing.assert_allclose(moved, before @ transform[:3, :3].T + transform[:3, 3], atol=1e-3)


@pytest.mark.parametrize(
    "text,message",
    [
        ("cam_front@1-2", "expected TARGET:KIND"),
        ("cam_front:fogg@1-2", "unknown kind 'fogg' .*valid: .*fog"),
        ("cam_front:fog:6@1-2", "severity '6' must be one of 1, 2, 3, 4, 5"),
        ("cam_front:fog@2-1", "window '2-1' must be T0-T1"),
    ],
)
def test_bad_faults_name_the_argument_and_what_is_valid(text, message):
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_faults_the_bag_cannot_take_are_refused_before_writing(drive, tmp_path):
    with pytest.raises(ValueError, match="no sensor or modality 'cam_x' in the bag .*cam_front"):
        corrupt_bag(drive, tmp_path / "out", [parse_fault("cam_x:fog@0-1")])
    with pytest.raises(ValueError, match="does not apply to radar"):
        corrupt_bag(drive, tmp_path / "out", [parse_fault("radar_front:jpeg@0-1")])
    assert not (tmp_path / "out").exists()


def test_image_cameras_stay_images(drive, tmp_path):
    """A bag whose camera publishes sensor_msgs/Image (bgr8): corrupted images are rgb8 Images of
    the same size."""
    from ros2_lmd.messages.types import RosbagsTypes
    from ros2_lmd.replay.bag import BagWriter
    from ros2_lmd.sensors.image import compressed_to_rgb

    types = RosbagsTypes(project_typestore())
    source = tmp_path / "images"
    topic = "/cam_front/image_rect_compressed"
    with BagWriter(source, types.typestore) as writer:
        for t, message in decoded(drive, topic):
            bgr = compressed_to_rgb(message, topic)[..., ::-1]
            image = types.new(
                "sensor_msgs/msg/Image",
                header=message.header,
                height=bgr.shape[0],
                width=bgr.shape[1],
                encoding="bgr8",
                is_bigendian=0,
                step=3 * bgr.shape[1],
                data=np.ascontiguousarray(bgr).reshape(-1),
            )
            writer.write(topic, "sensor_msgs/msg/Image", t, image)
    result = corrupt_bag(source, tmp_path / "out", [Fault("cam_front", "crash", 3, START, END)])
    for t, message in decoded(result.bag, topic):
        assert (message.height, message.width) == (64, 96)
        if _inside(source, t):
            assert message.encoding == "rgb8" and not np.asarray(message.data).any()
        else:
            assert message.encoding == "bgr8"


@pytest.fixture(scope="module")
def nuscenes_bag(tmp_path_factory):
    from ros2_lmd.replay.nuscenes import nuscenes_to_bags

    root = fx.write_dataroot(tmp_path_factory.mktemp("nuscenes"), (("scene-0061", 3),))
    (result,) = nuscenes_to_bags(
        root.path, root.version, ["scene-0061"], tmp_path_factory.mktemp("bags") / "scene"
    )
    return result.bag


def test_a_nuscenes_shaped_bag_keeps_its_own_field_layouts(nuscenes_bag, tmp_path):
    faults = [
        Fault("radar_front", "ghosts", 5, 0.2, 0.9),
        Fault("lidar_top", "beam_missing", 3, 0.2, 0.9),
        Fault("cam_front", "soiling", 4, 0.2, 0.9),
    ]
    result = corrupt_bag(nuscenes_bag, tmp_path / "out", faults)
    before, after = raw_messages(nuscenes_bag), raw_messages(result.bag)
    assert set(after) == set(before)
    for topic in ("/radar_front", "/lidar_top"):
        original, corrupted = dict(decoded(nuscenes_bag, topic)), dict(decoded(result.bag, topic))
        changed = [t for t in original if after[(topic, t)] != before[(topic, t)]]
        assert changed
        for t in changed:
            assert [f.name for f in corrupted[t].fields] == [f.name for f in original[t].fields]
            assert corrupted[t].point_step == original[t].point_step
        if topic == "/radar_front":
            assert all(corrupted[t].width == original[t].width + 35 for t in changed)
