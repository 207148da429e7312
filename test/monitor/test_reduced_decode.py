"""Camera JPEGs decoded at a DCT reduction (`camera_decode: reduced`, issue #25): the image the
pipeline gets is the reduced one with intrinsics scaled to match, never smaller than the model's
input or the size the camera checks were validated at, and the monitor's output is the full
decode's (same frames, the fused BEV nearly identical, the same incident)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from support.tiny import build_tiny_model

from ros2_lmd.monitor.ingest import InputSensor, camera_decode_size, convert_reading
from ros2_lmd.monitor.params import MonitorParams
from ros2_lmd.monitor.sensor_checks import CAMERA_CHECK_MIN_SIZE
from ros2_lmd.replay.analyze import analyze
from ros2_lmd.replay.simulate import simulate_to_bag
from ros2_lmd.sensors.camera_info import CameraCalibration
from ros2_lmd.sensors.image import jpeg_reduction, rgb_to_compressed

CAMERA_SIZE = (2 * CAMERA_CHECK_MIN_SIZE[1], 2 * CAMERA_CHECK_MIN_SIZE[0])  # (w, h): halves exactly


@pytest.fixture(scope="module")
def model():
    return build_tiny_model("compact_crl")


def test_decode_size_is_at_least_the_model_input_and_the_checks_size(model):
    params = MonitorParams()
    h, w = camera_decode_size(params, model)
    model_h, model_w = model.config.image_size
    assert (h, w) == (max(model_h, CAMERA_CHECK_MIN_SIZE[0]), max(model_w, CAMERA_CHECK_MIN_SIZE[1]))
    assert camera_decode_size(replace(params, camera_decode="full"), model) is None
    # the simulator's default 448x256 cameras are never reduced: the checks' scorecard still holds
    assert jpeg_reduction(256, 448, (h, w)) == 1
    assert jpeg_reduction(900, 1600, (h, w)) == 2


def test_a_reading_is_decoded_reduced_and_checked_against_its_scaled_camera_info(model):
    rgb = np.random.default_rng(0).integers(0, 256, (CAMERA_SIZE[1], CAMERA_SIZE[0], 3), dtype=np.uint8)
    msg = SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0), frame_id="cam_front"),
        format="jpeg",
        data=rgb_to_compressed(rgb),
    )
    K = np.array([[800.0, 0, 447.5], [0, 800.0, 255.5], [0, 0, 1]])
    calibration = CameraCalibration(K, width=CAMERA_SIZE[0], height=CAMERA_SIZE[1])
    sensor = InputSensor("cam_front", "camera", "/cam_front/image_rect_compressed")
    at_least = camera_decode_size(MonitorParams(), model)
    reading = convert_reading(sensor, msg, calibration, camera_at_least=at_least)
    assert reading.reduction == 2 and reading.payload.shape == (CAMERA_SIZE[1] // 2, CAMERA_SIZE[0] // 2, 3)
    full = convert_reading(sensor, msg, calibration)
    assert full.reduction == 1 and full.payload.shape == rgb.shape


@pytest.fixture(scope="module")
def analysed(model, tmp_path_factory):
    """One 3 s drive at 896x512 with cam_front black from 1.5 s, analysed with each decode."""
    root = tmp_path_factory.mktemp("reduced")
    bag = root / "drive"
    simulate_to_bag(
        bag,
        duration_s=3.0,
        seed=2,
        faults="cam_front:blackout@1.5-3.0",
        camera_size=CAMERA_SIZE,
        progress=False,
    )
    results = {}
    for decode in ("reduced", "full"):
        params = MonitorParams(camera_decode=decode, self_check_every=0)
        results[decode] = analyze(
            bag, model, root / decode, params=params, progress=False, keep_reports=True, outputs="summary"
        )
    return results


@pytest.mark.slow
def test_reduced_decode_gives_the_full_decodes_frames_bev_and_incident(analysed):
    reduced, full = analysed["reduced"], analysed["full"]
    assert [r.stamp for r in reduced.frames] == [r.stamp for r in full.frames]
    assert [r.status for r in reduced.frames] == [r.status for r in full.frames]
    assert reduced.processed == full.processed > 0
    for a, b in zip(reduced.reports, full.reports):
        fused_a, fused_b = a.fused.ravel(), b.fused.ravel()
        # DCT scaling and INTER_AREA halving differ by a few grey levels, not in the scene
        assert np.corrcoef(fused_a, fused_b)[0, 1] > 0.99
        assert a.conservation_error < 1e-3
    opened = {d: [(i.sensor, i.modality) for i in result.incidents] for d, result in analysed.items()}
    assert opened["reduced"] == opened["full"] and ("cam_front", "camera") in opened["reduced"]
