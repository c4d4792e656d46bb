"""``python -m tests.stage.demo`` shows a whole simulated run, message by message (a fast run here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_prints_every_message_of_a_whole_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.stage.demo", "--speed", "20000", "--steps", "100", "--epochs", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    in_order = [
        "alice types /train flux1",
        "#general, only alice sees it · new",  # the dataset check, then the confirmation
        "alice presses Confirm",
        "**Epoch 1/2**",
        "**Epoch 2/2**",
        "finished training",
        "done:",
    ]
    positions = [out.find(step) for step in in_order]
    assert -1 not in positions, [s for s, p in zip(in_order, positions, strict=True) if p == -1]
    assert positions == sorted(positions), "in the order members saw them"
    # The public card, its last edit, the ephemeral "submitted" and the DM are all shown too.
    for seen in ("#general · new", "✅ Finished", "✅ Submitted", "DM to alice · new", "[files: grid.png]"):
        assert seen in out, seen
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir()) and not (REPO_ROOT / "data").exists()  # it keeps nothing
