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
