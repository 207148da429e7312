"""ROS messages without rclpy: the one adapter over rclpy and rosbags message classes (`types`),
the project's .msg definitions for rosbags (`definitions`), and the monitor's outputs built from a
FrameReport (`outputs`), identical live and in output bags."""
