"""Shared by the place-and-route tests (test_fmax, test_report): what nextpnr itself wrote for a
seed, and how a ``python -m`` command must refuse bad input (one line naming the command, exit 2,
no traceback, nothing written)."""

import json
import subprocess
import sys
from pathlib import Path


def nextpnr_fmax(seed_dir: Path) -> float:
    """The lowest achieved clock in nextpnr's own ``pnr_report.json`` of one seed, in MHz (0.1)."""
    report = json.loads((Path(seed_dir) / "pnr_report.json").read_text())
    return round(min(float(c["achieved"]) for c in report["fmax"].values()), 1)


def assert_refused(module: str, out: Path, args: list[str]) -> None:
    """``python -m module --out out *args`` fails with one line on stderr and exit 2, before
    creating ``out``."""
    proc = subprocess.run([sys.executable, "-m", module, "--out", str(out), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m {module}: "), proc.stderr
    assert not Path(out).exists(), list(Path(out).rglob("*"))
