"""Export a translator's generators beside it (`<folder>/onnx/<stem>-<hash>-<network>.onnx`), so a new machine's
first photos run on ONNX Runtime without waiting for an export (`gancore.deploy.fast` looks there first).

    python scripts/ship_onnx.py weights/horse2zebra.safetensors

Graphs of earlier versions of the file (another hash) are removed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from gancore.deploy.fast import export_graph, graph_path
from gancore.inference import load_model


def ship(path: Path) -> None:
    folder = path.parent / "onnx"
    keep = set()
    for network in load_model(path).directions().values():
        graph = graph_path(path, network, folder)
        if not graph.is_file():
            export_graph(path, network, graph)
        keep.add(graph)
        print(f"{graph} ({graph.stat().st_size / 1e6:.1f} MB)")
    for old in folder.glob(f"{path.stem}-*.onnx"):
        if old not in keep:
            old.unlink()
            print(f"removed {old}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        ship(Path(arg))
