"""benchmarks/intake_memory.py in its tiny configuration: the script still runs every case
through the real intake path and prints its figures (the figures themselves mean nothing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_intake_memory_benchmark_runs(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "intake_memory.py"
    done = subprocess.run(
        [sys.executable, str(script), "--tiny", "--repeat", "1", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    line = r"budget +(\S+ px|disabled) +([\d.]+) s \(CPU +[\d.]+ s\) +peak RSS +([\d.]+) MiB"
    figures = re.findall(line, done.stdout)
    assert [label for label, _, _ in figures] == ["100,000 px", "disabled"] * 3, done.stdout
    assert all(float(peak) > 10 for _, _, peak in figures)
    assert re.search(r"with the budget = [\d.]+× the time without \(\w+\), CPU [\d.]+× \(\w+\)", done.stdout)
