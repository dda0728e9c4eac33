"""checkov scans the template (``scripts/checkov.sh``, its own locked environment): no failed check.

A check may be suppressed only in the template, on the resource, with a one-line reason
(``Metadata: checkov: skip: - id: ... comment: ...``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tools.emulator.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]


def test_checkov_finds_no_failed_check():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "checkov.sh")], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    out = proc.stdout + proc.stderr
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", out)
    assert summary, f"no checkov summary (rc {proc.returncode}):\n{out[-3000:]}"
    passed, failed, _ = (int(x) for x in summary.groups())
    assert failed == 0 and proc.returncode == 0, out[-6000:]
    assert passed > 50, out[-3000:]  # it really scanned the template


def test_every_suppression_has_a_one_line_reason():
    skips = [
        (name, skip)
        for name, res in load_template()["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "no suppression found where checkov reads them"
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), (name, skip)
        reason = skip.get("comment", "")
        assert len(reason) >= 20 and "\n" not in reason, (name, skip)
