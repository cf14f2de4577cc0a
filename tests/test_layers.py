"""Imports only go down: every module of gancore/ and studio/ sits in a layer, and an import (at the top of a
file or inside a function) may reach its own layer or a lower one, never a higher one, and never close a
circle. Read from the source with `ast`, so nothing is imported.

    0  errors, config, train_config, catalog             torch-free facts and value checks
    1  imaging, augment, masks, features, checkpoint,    primitives, frozen feature networks, file format,
       devices, memory, files, run_dirs                  the user's files read safely; a run folder's lock
    2  models/                                           one file per GAN
    3  registry, recipes, data                           names -> classes; measured settings; datasets
    4  inference                                         loading with shape checks, sample, translate
    5  analysis/, training, distill, video, deploy/,     built on models and inference
       translate_files
    6  cli, studio/                                      what people use
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    0: ("gancore", "gancore.errors", "gancore.config", "gancore.train_config", "gancore.catalog"),
    1: ("gancore.imaging", "gancore.augment", "gancore.masks", "gancore.features", "gancore.checkpoint",
        "gancore.devices", "gancore.memory", "gancore.files", "gancore.run_dirs"),
    2: ("gancore.models",),
    3: ("gancore.registry", "gancore.recipes", "gancore.data"),
    4: ("gancore.inference",),
    5: ("gancore.analysis", "gancore.training", "gancore.distill", "gancore.video", "gancore.deploy",
        "gancore.translate_files"),
    6: ("gancore.cli", "gancore.__main__", "studio"),
}

# Edges that break the rules today, each waiting for a move in a module being changed elsewhere.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest prefix listed in LAYERS ("gancore.models.dcgan" -> "gancore.models")."""
    best = max((p for ps in LAYERS.values() for p in ps if module == p or module.startswith(p + ".")), key=len,
               default=None)
    assert best is not None, f"{module} has no layer: add it to LAYERS in tests/test_layers.py"
    return next(layer for layer, ps in LAYERS.items() if best in ps)


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports, anywhere in the file."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            # `from gancore import registry` imports the module gancore.registry, not the package.
            subs = {f"{base}.{a.name}" for a in node.names} & known
            out |= subs or ({base} & known)
    return out - {module}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for d in ("gancore", "studio") for p in (ROOT / d).rglob("*.py")}
    return {m: imported(m, p, set(files)) for m, p in files.items()}


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_imports_only_go_down():
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if layer_of(t) > layer_of(m) and (m, t) not in ALLOWED]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    graph = {m: {t for t in ts if (m, t) not in ALLOWED} for m, ts in import_graph().items()}
    circles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not circles, "\n".join(" <-> ".join(sorted(c)) for c in circles)


def test_allowed_edges_still_exist():
    """An allowance goes when its move is done; a stale one would hide a new edge of the same name."""
    graph = import_graph()
    assert not [e for e in ALLOWED if e[1] not in graph.get(e[0], set())]


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups
