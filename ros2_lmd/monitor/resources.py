"""How the monitor uses the machine it runs on: glibc's allocator kept from handing freed memory
back (the decomposition reuses the same large blocks every frame), the cores this process may run
on, and the one policy for how many workers and torch threads use the CPU (`inference_plan`: the
live node and `analyze`)."""

from __future__ import annotations

import os

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel at once. The
    decomposition allocates and frees plane tensors of several MB at every layer; by default glibc
    serves each from a fresh mmap and unmaps it on free, so every frame pays thousands of page
    faults to zero the same memory again (bench/bench_lmd.py measures it). With the mmap threshold
    at its maximum and a high trim threshold the blocks come from the heap and are reused. Process
    wide, as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ would set it; called by the node and
    `analyze` at start so that no user has to know the variables. Returns False where there is no
    glibc (another libc, macOS) or it refused; the monitor then runs as before, only slower."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def inference_plan(
    on_cpu: bool, workers: int = 0, threads: int = 0, *, reserved_cores: int = 0, prefer: str = "latency"
) -> tuple[int, int]:
    """(workers, torch threads per worker); 0 means automatic. `reserved_cores` stay free for other
    work (the live node's message callbacks). On a GPU one worker feeds it. On a CPU, `latency`
    gives one worker all usable cores (a frame is finished soonest); `throughput` one
    single-threaded worker per usable core: on small models several single-threaded calls beat one
    multi-threaded call, whose threads wait for each other at every operator (measured in
    bench/bench_node.py and bench/bench_analyze.py)."""
    if prefer not in ("latency", "throughput"):
        raise ValueError(f"inference_plan: prefer must be latency or throughput, got {prefer!r}")
    usable = max(1, cpu_cores() - reserved_cores)
    if workers <= 0:
        workers = usable if on_cpu and prefer == "throughput" else 1
    if threads <= 0:
        threads = max(1, usable // workers)
    return workers, threads
