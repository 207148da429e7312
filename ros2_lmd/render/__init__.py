"""What the reports and figures share, below `replay/` and `eval/` so that both can draw alike:
the BEV panel with the ego vehicle, one colour per modality, PNG output (files or data URIs) and the
HTML page around a report. matplotlib only; no project layer above `geometry/`."""
