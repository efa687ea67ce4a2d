"""scripts/energy_diagnosis.py (is it the learned energy or the sampler?) on a tiny Langevin
particle policy: every demonstration state is compared, and the counts add up."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ibc_core.data.episodes import iter_episodes
from ibc_cli import data

REPO = Path(__file__).resolve().parents[1]


def test_energy_diagnosis_reports_every_state(tmp_path: Path) -> None:
    dataset, run = tmp_path / "data", tmp_path / "run"
    assert data.main(["generate", "--task", "particle_2d", "--episodes", "2", "--out", str(dataset)]) == 0
    subprocess.run([sys.executable, "-m", "ibc_cli.train", "train_particle", f"data.path={dataset}",
                    f"run.out_dir={run}", "optim.steps=10", "model.mlp.width=16", "model.mlp.depth=2",
                    "ebm.counter_examples=8", "ebm.langevin.iterations=3", "ebm.langevin.inference_samples=16",
                    "run.checkpoint_every=10", "run.progress=false"], check=True, capture_output=True, timeout=300)
    out = tmp_path / "diagnosis.json"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "energy_diagnosis.py"), "--checkpoint",
                             str(run), "--dataset", str(dataset), "--episodes", "2", "--every", "10",
                             "--samples", "64", "--json", str(out)], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    # Every 10th step of both episodes: 0, 10, 20, ...
    expected = sum(len(range(0, len(episode.actions), 10)) for episode in iter_episodes(dataset))
    assert report["states"] == len(report["per_state"]) == expected
    far = [row for row in report["per_state"] if row["gap"] > report["far_threshold"]]
    assert report["far_fraction"] == len(far) / report["states"]
    # Each far choice is blamed on exactly one side.
    assert report["far_energy_prefers_choice"] + report["far_sampler_missed_lower_demo"] == len(far)
    below = [row["energy_search"] < row["energy_chosen"] for row in report["per_state"]]
    assert report["search_below_choice_fraction"] == sum(below) / len(below)

    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "energy_diagnosis.py"), "--checkpoint",
                              str(tmp_path), "--dataset", str(dataset)], capture_output=True, text=True, cwd=REPO,
                             timeout=120)
    assert missing.returncode == 2 and "is a folder without policy.pt" in missing.stderr
