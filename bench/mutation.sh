#!/usr/bin/env bash
# Mutation testing of the modules whose bugs the monitor cannot afford (setup.cfg [mutmut]: the LMD
# engine, the alert logic, the time sync, the PointCloud2 reader) against their own test files:
# mutmut changes one operator, constant or call at a time in a copy under mutants/ and reruns the
# tests that cover that line; a mutant no test fails on ("survived") is a bug the suite would miss.
#   bash bench/mutation.sh            run (or resume) and print the score
#   .venv/bin/mutmut results          list the survivors;  .venv/bin/mutmut show NAME  shows one
# Needs the development set-up (make bootstrap); installs mutmut into it on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source .venv/lmd_env.sh
python -c "import mutmut" 2>/dev/null || python -m pip install --quiet "mutmut==3.8.1"
mutmut run --max-children "${MUTMUT_CHILDREN:-2}" || true
python - <<'PY'
import json, subprocess
out = subprocess.run(["mutmut", "export-cicd-stats"], capture_output=True, text=True)
try:
    stats = json.load(open("mutants/mutmut-cicd-stats.json"))
except OSError:
    print(out.stdout, out.stderr)
    raise SystemExit("no mutmut statistics: see the output above")
killed = stats.get("killed", 0) + stats.get("timeout", 0)
total = killed + stats.get("survived", 0)
print(f"mutants: {stats}")
print(f"kill rate: {killed}/{total} = {killed / max(total, 1):.1%} (killed or timed out, of those that ran)")
PY
