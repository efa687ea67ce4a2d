"""scripts/particle_sweep.py (the paper's Fig. 6 on this machine) runs end to end with tiny
settings through the real CLIs, writes its table, JSON and plot, and resumes without redoing
finished cells."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dims", "1", "2", "--methods", "dfo", "mse", "--episodes", "12", "--steps", "20",
        "--eval-episodes", "2", "--jobs", "2"]


def sweep(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "particle_sweep.py"), "--out", str(out), *TINY],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def test_particle_sweep_writes_results_and_resumes(tmp_path: Path) -> None:
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    results = json.loads((tmp_path / "summary.json").read_text())
    assert sorted((r["dim"], r["method"]) for r in results) == [(1, "dfo"), (1, "mse"), (2, "dfo"), (2, "mse")]
    assert all(r["episodes"] == 2 and r["seeds"][0] >= 1_000_000 for r in results)
    table = (tmp_path / "results.md").read_text()
    assert "| IBC DFO |" in table and "| MSE |" in table and "1-D" in table and "2-D" in table
    assert (tmp_path / "success_vs_dim.png").stat().st_size > 10_000
    # Every step is printed as the command that reproduces it.
    assert "$ ibc-train train_particle" in first.stdout and "ebm.gradient_penalty.enabled=false" in first.stdout

    # The figure of several sweeps side by side (e.g. CPU cells and GPU cells).
    figure = tmp_path / "figure.png"
    drawn = subprocess.run([sys.executable, str(REPO / "scripts" / "particle_figure.py"), "--out", str(figure),
                            f"cpu run={tmp_path / 'summary.json'}", f"gpu run={tmp_path / 'summary.json'}"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert figure.stat().st_size > 10_000
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "particle_figure.py"), "--out", str(figure),
                          str(tmp_path / "summary.json")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "must be LABEL=PATH" in bad.stderr
    figure.unlink()

    second = sweep(tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "$ " not in second.stdout  # nothing regenerated, retrained or re-evaluated
    assert json.loads((tmp_path / "summary.json").read_text()) == results


def test_particle_sweep_rejects_bad_dimensions(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "particle_sweep.py"), "--out", str(tmp_path),
                             "--dims", "0"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2 and "--dims must be >= 1" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing written
