"""Markdown tables for docs/robustness.md from `ros2-lmd robustness` outputs: one robustness.json
per model folder given. Usage: python tools/robustness_tables.py OUT_DIR [OUT_DIR ...]"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _n(value, spec: str = ".3f") -> str:
    return "" if value is None else format(value, spec)


def tables(reports: list[dict]) -> str:
    lines = [
        "### Headline",
        "",
        "| model | clean IoU | mRA | mRA camera | mRA radar | mRA lidar | worst kind (RA) |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for r in reports:
        by = r["mra_by_modality"]
        worst = r["worst_kind"]
        lines.append(
            f"| {r['model']} | {_n(r['clean']['iou'])} | {_n(r['mra'])} | {_n(by.get('camera'))} | "
            f"{_n(by.get('radar'))} | {_n(by.get('lidar'))} | "
            f"{worst['modality']}:{worst['kind']} ({_n(worst['ra'])}) |"
        )
    lines += [
        "",
        "### Clean reference",
        "",
        "| model | fused IoU | IoU alone | LMD share |",
        "|---|---|---|---|",
    ]
    for r in reports:
        c = r["clean"]
        alone = ", ".join(f"{m} {_n(v)}" for m, v in c["alone_iou"].items())
        shares = ", ".join(f"{m} {_n(v)}" for m, v in c["shares"].items())
        lines.append(f"| {r['model']} | {_n(c['iou'])} | {alone} | {shares} |")
    for r in reports:
        mods = r["model_modalities"]
        sev = r["severities"]
        by_key = {(x["modality"], x["kind"], x["severity"]): x for x in r["runs"]}
        lines += [
            "",
            f"### {r['model']}: RA per kind and severity, share shift (mean over severities)",
            "",
            "| kind | modelled as | " + " | ".join(f"RA s{s}" for s in sev) + " | RA | "
            + " | ".join(f"shift {m}" for m in mods) + " | IoU alone (own modality) s" + str(sev[-1]) + " |",
            "|---|---|" + "---|" * len(sev) + "---|" + "---|" * len(mods) + "---|",
        ]  # fmt: skip
        for k in sorted(r["kinds"], key=lambda k: k["ra"] if k["ra"] is not None else 9):
            cells = [_n(by_key[(k["modality"], k["kind"], s)]["ra"], ".2f") for s in sev]
            last = by_key[(k["modality"], k["kind"], sev[-1])]
            shifts = " | ".join(_n(k["share_shift"][m], "+.3f") for m in mods)
            lines.append(
                f"| {k['modality']}:{k['kind']} | {k['modelled_as']} | {' | '.join(cells)} | "
                f"**{_n(k['ra'], '.2f')}** | {shifts} | {_n(last['alone_iou'][k['modality']])} |"
            )
        if r["sensors"]:
            lines += [
                "",
                f"### {r['model']}: one sensor corrupted at a time (severity {r['sensor_severity']})",
                "",
                "| kind | hurts most (RA) |",
                "|---|---|",
            ]
            for h in r["sensor_hurts_most"]:
                own = sorted(
                    (x for x in r["sensors"] if x["modality"] == h["modality"] and x["kind"] == h["kind"]),
                    key=lambda x: x["ra"] if x["ra"] is not None else 9,
                )
                others = ", ".join(f"{x['sensor']} {_n(x['ra'], '.2f')}" for x in own)
                lines.append(f"| {h['modality']}:{h['kind']} | {others} |")
            mean = ", ".join(
                f"{s} {_n(v)}" for s, v in sorted(r["sensor_mean_ra"].items(), key=lambda kv: kv[1] or 9)
            )
            lines += ["", f"Mean RA per sensor over the kinds, lowest first: {mean}."]
        if r["skipped"]:
            reasons: dict[str, list[str]] = {}
            for s in r["skipped"]:
                reasons.setdefault(s["reason"], []).append(f"{s['modality']}:{s['kind']}")
            lines += ["", f"Not run on {r['model']}:", ""]
            lines += [f"- {', '.join(kinds)}: {reason}" for reason, kinds in reasons.items()]
    return "\n".join(lines) + "\n"


def main(folders: list[str]) -> None:
    reports = [json.loads((Path(f) / "robustness.json").read_text()) for f in folders]
    sys.stdout.write(tables(reports))


if __name__ == "__main__":
    main(sys.argv[1:])
