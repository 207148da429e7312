"""The rclpy boundary: the only package that imports rclpy or generated message classes. The monitor
node (lifecycle, parameters, pub/sub), the bag player, the demo and the middleware smoke check.
Everything else in ros2_lmd imports without ROS (test/packaging/test_architecture.py enforces it)."""
