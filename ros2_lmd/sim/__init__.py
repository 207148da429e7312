"""Synthetic multi-sensor world for ros2_lmd: procedural driving scenes rendered into a nuScenes-like
rig (six cameras, five radars, one 32-beam LiDAR), fault injection with a ground-truth timeline, and
per-frame ground truth (vehicle list, BEV occupancy). No ROS needed; numpy + OpenCV only."""

from ros2_lmd.sim.drive import (
    NUSCENES_RATES_HZ,
    SensorReading,
    SimConfig,
    SimFrame,
    Simulator,
    lidar_to_base,
    radar_to_base,
    random_frame,
    sensor_schedule,
    simulate_drive,
)
from ros2_lmd.sim.faults import (
    FAULT_KINDS,
    FaultEvent,
    FaultSpec,
    expand_faults,
    format_fault_spec,
    parse_fault_spec,
    read_faults_csv,
    timeline_rows,
    write_faults_csv,
)
from ros2_lmd.sim.lidar import LidarScan
from ros2_lmd.sim.radar import RadarScan
from ros2_lmd.sim.rig import SensorRig, SensorSpec, default_rig
from ros2_lmd.sim.truth import GroundTruth, GTObject
from ros2_lmd.sim.world import CLASSES, VEHICLE_CLASSES, ObjectBoxes, World, WorldConfig

__all__ = [
    "SimConfig",
    "SimFrame",
    "SensorReading",
    "Simulator",
    "simulate_drive",
    "sensor_schedule",
    "NUSCENES_RATES_HZ",
    "random_frame",
    "radar_to_base",
    "lidar_to_base",
    "FAULT_KINDS",
    "FaultSpec",
    "FaultEvent",
    "parse_fault_spec",
    "format_fault_spec",
    "expand_faults",
    "timeline_rows",
    "write_faults_csv",
    "read_faults_csv",
    "LidarScan",
    "RadarScan",
    "SensorRig",
    "SensorSpec",
    "default_rig",
    "GroundTruth",
    "GTObject",
    "World",
    "WorldConfig",
    "ObjectBoxes",
    "CLASSES",
    "VEHICLE_CLASSES",
]
