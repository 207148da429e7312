"""Recorded datasets as the project sees them: `nuscenes` reads a nuScenes dataroot (tables, splits,
sensor files, poses, annotation boxes) for the rosbag2 converter (replay/nuscenes.py), and
`nuscenes_frames` turns its keyframe samples into the SensorFrame + BEV vehicle occupancy pairs that
training and evaluation take, as the simulator's frames are."""
