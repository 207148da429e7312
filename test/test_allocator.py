"""The allocator setting (runner.keep_freed_memory): after warm-up, a decomposition no longer pays
page faults to get its plane tensors back from the kernel. Measured in a fresh process (the setting
is process wide and cannot be undone): minor page faults per decompose before and after."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, resource, torch
    from ros2_lmd.lmd import decompose
    from ros2_lmd.models.io import load_model
    from ros2_lmd.monitor.runner import keep_freed_memory
    from ros2_lmd.sim import simulate_drive

    torch.set_num_threads(1)
    model = load_model("compact_crl").eval()
    frames = [f.to_sensor_frame() for f in simulate_drive(0, 0.1, 10.0)]

    def faults_per_decompose(features, n=6):
        for _ in range(2):  # warm-up
            decompose(model.fuse, features)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            decompose(model.fuse, features)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n

    with torch.inference_mode():
        features = model.encode(model.prepare(frames, torch.device("cpu")))
        default = faults_per_decompose(features)
        tuned = keep_freed_memory()
        after = faults_per_decompose(features)
    print(json.dumps({"default": default, "tuned": tuned, "after": after}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")
def test_a_decompose_after_warm_up_causes_no_page_fault_storm():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tuned"] is True
    # default glibc: every large plane tensor is a fresh mmap, zeroed by the kernel page by page
    assert result["default"] >= 50, result
    assert result["after"] <= result["default"] / 10, result
