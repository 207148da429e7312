"""Offline work on rosbag2 files (MCAP or sqlite3, through rosbags): `simulate` writes a synthetic
drive, `analyze` runs the monitor over a bag (the live node's ingest, runner and pipeline), `bag`
reads and writes, `tables` writes frames.csv, alerts.csv and incidents.csv, `report` report.html,
`fleet` runs many bags on Ray and `fleet_report` writes the report over them."""
