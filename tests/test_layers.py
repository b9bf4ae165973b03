"""The layers hold (import-linter's contracts in pyproject.toml, also run by scripts/test.sh)
and no two modules import each other, directly or through others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("live", "overlay", "checkout", "loadtest")


def test_the_layer_contracts_hold() -> None:
    run = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


def test_no_import_cycle_between_any_two_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                chain = graph.find_shortest_chain(importer=imported, imported=module)
                cycles.append((module, *(chain or ())))
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:20])
