"""The middleware set-up that delivers every sweep: the shipped Fast DDS profile (config/fastdds_shm.xml,
shared memory with a 16 MB segment; the file says why) is made the process's default before
rclpy.init, unless the user chose a profile or another middleware. Fast DDS reads the variable once,
when the first participant is created, so this must run before any rclpy.init in the process."""

from __future__ import annotations

import os
from pathlib import Path

PROFILE_NAME = "fastdds_shm.xml"
# Fast DDS 2 (ROS 2 Jazzy) reads the first, Fast DDS 3 the second
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
OPT_OUT_VARIABLE = "ROS2_LMD_TRANSPORT"  # "default": leave Fast DDS at its own defaults


def shipped_profile() -> Path | None:
    """config/fastdds_shm.xml from the installed package share, else from the source checkout."""
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory("ros2_lmd")) / "config" / PROFILE_NAME)
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME)
    return next((path for path in candidates if path.is_file()), None)


def use_shipped_transport(environ: dict[str, str] | None = None) -> str:
    """Point Fast DDS at the shipped profile; returns what was done, in words (for the log). Leaves
    the environment alone when ROS2_LMD_TRANSPORT=default, when RMW_IMPLEMENTATION names another
    middleware, when a profile file is set already, or when the file cannot be found."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT_VARIABLE, "").lower() == "default":
        return f"transport: Fast DDS defaults ({OPT_OUT_VARIABLE}=default)"
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps"):
        return f"transport: {rmw}, left as configured (the shipped profile is for Fast DDS)"
    chosen = [env[name] for name in PROFILE_VARIABLES if env.get(name)]
    if chosen:
        return f"transport: Fast DDS profile {chosen[0]} (set in the environment)"
    profile = shipped_profile()
    if profile is None:
        return f"transport: Fast DDS defaults ({PROFILE_NAME} not found)"
    for name in PROFILE_VARIABLES:
        env[name] = str(profile)
    return f"transport: Fast DDS shared memory, profile {profile}"
