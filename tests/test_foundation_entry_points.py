"""Every console script declared in setup.py points at a function that exists."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_console_script_target_resolves_to_a_function():
    tree = ast.parse((REPO / "setup.py").read_text())
    targets = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            name = node.targets[0].id if isinstance(node.targets[0], ast.Name) else ""
            if name in ("NODES", "CLIS"):
                targets.update({k.value: v.value for k, v in zip(node.value.keys, node.value.values)})
    assert targets, "setup.py declares no console scripts"
    missing = []
    for script, target in targets.items():
        module, _, func = target.partition(":")
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.is_file():
            missing.append(f"{script} -> {path.relative_to(REPO)} missing")
            continue
        functions = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        if func not in functions:
            missing.append(f"{script} -> {module}:{func} not defined")
    assert not missing, "\n".join(missing)


def test_help_examples_and_messages_do_not_mislead(tmp_path):
    """Issue #25 item 5: the help's example commands run, a file that is not a checkpoint is
    named as such (without torch's advice to load it unsafely), ./run.sh prints only its help."""
    import subprocess
    import sys

    from ibc_cli import bench
    from ibc_cli import evaluate

    assert "ibc-bench train --config push_pixels --iterations 20" in bench.__doc__
    ran = subprocess.run([sys.executable, "-m", "ibc_cli.bench", "train", "--config", "push_pixels",
                          "--iterations", "1", "--warmup", "0"], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and "steps_per_s" in ran.stdout, ran.stderr[-2000:]
    assert "final.pt" not in evaluate.__doc__ and "policy.pt" in evaluate.__doc__
    not_a_checkpoint = subprocess.run([sys.executable, "-m", "ibc_cli.evaluate", "--checkpoint",
                                       str(REPO / "README.md"), "--task", "particle_2d", "--episodes", "1"],
                                      capture_output=True, text=True, timeout=300)
    assert not_a_checkpoint.returncode == 2
    assert "is not a readable checkpoint" in not_a_checkpoint.stderr
    assert "weights_only" not in not_a_checkpoint.stderr
    help_text = subprocess.run([str(REPO / "run.sh")], capture_output=True, text=True, timeout=600)
    assert help_text.returncode == 0 and "./run.sh demo" in help_text.stdout
    assert "set -euo pipefail" not in help_text.stdout
