"""The package layers and the import graph, read from the code (docs/ARCHITECTURE.md).

    python scripts/layers.py check            # exit 1 and name every import that breaks a rule
    python scripts/layers.py draw             # docs/figures/layers.png + the table in ARCHITECTURE.md

Rules, checked on every `import` statement, at module level or inside a function:
1. Layers, lowest first: ibc_core <- cell <- sim <- ibc_ros <- ibc_cli. A module imports its own
   layer or lower ones, never a higher one.
2. No loops: no module reaches itself through imports, and no subpackage (ibc_core.models,
   cell.control, ...) reaches itself through the imports of its modules.
3. ROS (rclpy, messages, launch) only in ibc_ros; ibc_core knows no robot (no PyBullet, no
   drivers).
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("ibc_core", "cell", "sim", "ibc_ros", "ibc_cli")
ROS_MODULES = ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs", "diagnostic_msgs",
               "launch", "launch_ros", "rosidl_runtime_py", "builtin_interfaces", "rosbag2_py",
               "trajectory_msgs")
ROBOT_MODULES = ("pybullet", "pybullet_data", "pyrealsense2", "xarm")
FORBIDDEN = {layer: ROS_MODULES for layer in ("ibc_core", "cell", "sim", "ibc_cli")}
FORBIDDEN["ibc_core"] = ROS_MODULES + ROBOT_MODULES
DOC = REPO / "docs" / "ARCHITECTURE.md"
FIGURE = REPO / "docs" / "figures" / "layers.png"
TABLE_BEGIN, TABLE_END = "<!-- layers:begin (python scripts/layers.py draw) -->", "<!-- layers:end -->"


@dataclass(frozen=True)
class Import:
    source: str   # importing module, e.g. cell.control.ik
    target: str   # imported module, e.g. cell.paths or pybullet
    file: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.file.relative_to(root)}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterable[Import]:
    module = module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            # `from cell import paths` imports the module cell.paths where it is one
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                is_module = (root / Path(*submodule.split("."))).with_suffix(".py").is_file() \
                    or (root / Path(*submodule.split(".")) / "__init__.py").is_file()
                yield Import(module, submodule if is_module else target, path, node.lineno)


def all_imports(root: Path = REPO) -> list[Import]:
    return [imp for layer in LAYERS if (root / layer).is_dir()
            for path in sorted((root / layer).rglob("*.py")) for imp in imports_of(path, root)]


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in LAYERS else None


def unit_of(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: ibc_core.models.mlp -> ibc_core.models."""
    return ".".join(module.split(".")[:2])


def loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def internal_edges(imports: list[Import], key) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if layer_of(imp.target) and key(imp.source) != key(imp.target):
            edges[key(imp.source)].add(key(imp.target))
    return edges


def violations(root: Path = REPO) -> list[str]:
    imports = all_imports(root)
    problems = []
    for imp in imports:
        source_layer, target_layer = layer_of(imp.source), layer_of(imp.target)
        if target_layer and LAYERS.index(target_layer) > LAYERS.index(source_layer):
            problems.append(f"{imp.where(root)}: {imp.source} imports {imp.target}, but {source_layer} "
                            f"sits below {target_layer} (layers, lowest first: {' <- '.join(LAYERS)})")
        if imp.target.split(".")[0] in FORBIDDEN.get(source_layer, ()):
            problems.append(f"{imp.where(root)}: {imp.source} imports {imp.target}, which {source_layer} "
                            f"may not import (ROS only in ibc_ros; no robot code in ibc_core)")
    for kind, key in (("modules", lambda m: m), ("subpackages", unit_of)):
        for loop in loops(internal_edges(imports, key)):
            problems.append(f"import loop between {kind}: {', '.join(loop)}")
    return problems


def unit_table(root: Path = REPO) -> str:
    """Markdown: each subpackage and the subpackages it imports, layer by layer, top layer first."""
    edges = internal_edges(all_imports(root), unit_of)
    units = sorted({unit_of(module_name(p, root)) for layer in LAYERS
                    for p in (root / layer).rglob("*.py")} - set(LAYERS))
    rows = ["| layer | package | imports |", "|---|---|---|"]
    for layer in reversed(LAYERS):
        for unit in (u for u in units if layer_of(u) == layer):
            targets = ", ".join(f"`{t}`" for t in sorted(edges.get(unit, ()))) or "-"
            rows.append(f"| {layer} | `{unit}` | {targets} |")
    return "\n".join(rows)


def _positions(units: list[str], edges: dict[str, set[str]], sweeps: int = 8) -> dict[str, tuple[float, int]]:
    """x in (0, 1) within its layer's row, ordered so that a package sits near those it imports and
    those importing it (barycentre sweeps), which keeps the arrows short and few of them crossing."""
    rows = {layer: [u for u in units if layer_of(u) == layer] for layer in LAYERS}
    neighbours: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            if layer_of(source) != layer_of(target):
                neighbours[source].add(target)
                neighbours[target].add(source)

    def x_of(layer: str) -> dict[str, float]:
        return {u: (i + 0.5) / len(rows[layer]) for i, u in enumerate(rows[layer])}

    for _ in range(sweeps):
        for layer in LAYERS:
            xs = {u: x for other in LAYERS if other != layer for u, x in x_of(other).items()}
            current = x_of(layer)
            rows[layer].sort(key=lambda u: sum(xs[n] for n in neighbours[u]) / len(neighbours[u])
                             if neighbours[u] else current[u])
    return {u: (x, LAYERS.index(layer)) for layer in LAYERS for u, x in x_of(layer).items()}


def draw(root: Path = REPO, figure: Path = FIGURE) -> None:
    """Layers as bands (lowest at the bottom), subpackages as boxes, imports as arrows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = internal_edges(all_imports(root), unit_of)
    units = sorted({unit_of(module_name(p, root)) for layer in LAYERS
                    for p in (root / layer).rglob("*.py")} - set(LAYERS))
    position = _positions(units, edges)
    fig, ax = plt.subplots(figsize=(16, 9))
    colours = plt.get_cmap("Pastel1")
    for row, layer in enumerate(LAYERS):
        ax.add_patch(plt.Rectangle((-0.06, row - 0.4), 1.12, 0.8, color=colours(row), alpha=0.5, zorder=0))
        ax.text(-0.07, row, layer, ha="right", va="center", fontsize=13, fontweight="bold")
    for source, targets in edges.items():
        for target in targets:
            (x0, y0), (x1, y1) = position[source], position[target]
            if y0 == y1:   # within a layer: an arc above the boxes
                start, end, bend = (x0, y0 + 0.1), (x1, y1 + 0.1), -0.35 if x1 > x0 else 0.35
            else:          # down the layers: bottom of the importer to the top of the imported
                start, end, bend = (x0, y0 - 0.12), (x1, y1 + 0.12), 0.05
            ax.annotate("", xy=end, xytext=start, zorder=1,
                        arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.6, "alpha": 0.6,
                                    "connectionstyle": f"arc3,rad={bend}", "shrinkA": 0, "shrinkB": 0})
    for unit, (x, y) in position.items():
        ax.text(x, y, unit.split(".", 1)[1], ha="center", va="center", fontsize=8, zorder=2,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.3"})
    ax.set_xlim(-0.25, 1.08)
    ax.set_ylim(-0.6, len(LAYERS) - 0.4)
    ax.axis("off")
    ax.set_title("Imports between packages (arrows point from importer to imported); "
                 "generated by scripts/layers.py from the code", fontsize=11)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110, bbox_inches="tight")
    plt.close(fig)


def documented_table(doc: Path = DOC) -> str:
    text = doc.read_text()
    return text[text.index(TABLE_BEGIN) + len(TABLE_BEGIN):text.index(TABLE_END)].strip()


def write_table(doc: Path = DOC, root: Path = REPO) -> None:
    text = doc.read_text()
    head, tail = text[:text.index(TABLE_BEGIN) + len(TABLE_BEGIN)], text[text.index(TABLE_END):]
    doc.write_text(f"{head}\n{unit_table(root)}\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "draw"])
    parser.add_argument("--root", type=Path, default=REPO, help="checkout to read (default: this one)")
    args = parser.parse_args(argv)
    if args.command == "draw":
        draw(args.root)
        write_table(root=args.root)
        print(f"wrote {FIGURE.relative_to(REPO)} and the table in {DOC.relative_to(REPO)}")
        return 0
    problems = violations(args.root)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"layers hold: {' <- '.join(LAYERS)}, no import loops")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
