"""The monitor, without ROS: from messages to alerts. `ingest` (topics -> SensorFrames, as configured
by `params`), `pipeline` (SensorFrame -> FrameReport: model, LMD, detections, shares, alerts),
`runner` (compute in parallel, conclude in stamp order), `alerts`, `sensor_health` (per-sensor
/diagnostics bookkeeping). The live node (ros2_lmd.ros.node) and `ros2-lmd analyze`
(ros2_lmd.replay.analyze) are thin adapters over these same parts. Import from the modules: the
package itself imports nothing, so `monitor.params` loads without torch."""
