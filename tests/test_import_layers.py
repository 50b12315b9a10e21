"""Layering: ``targets`` (models) never imports ``attacks`` or ``disrupt`` (the tool).

``tests/test_attacks.py`` holds the matching guard for ``attacks``. Checked on the import
statements of every module file under ``targets/`` (training scripts included), so an
indirect import through another ``targets`` module is caught at its source file.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import targets

FORBIDDEN = {"attacks", "disrupt"}
PACKAGE = Path(targets.__file__).parent
MODULE_FILES = sorted(PACKAGE.rglob("*.py"))


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every absolute import, and of every ``importlib.import_module``
    / ``__import__`` call with a constant name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if name in {"import_module", "__import__"} and isinstance(arg, ast.Constant) \
                    and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def test_the_guard_sees_every_kind_of_import() -> None:
    source = textwrap.dedent("""
        import attacks
        import os, disrupt.api as api
        from attacks.loop import run_attack
        from . import base
        importlib.import_module("disrupt.cli")
        __import__("attacks")
    """)
    names = [n.split(".")[0] for _, n in _imported_names(ast.parse(source))]
    assert names == ["attacks", "os", "disrupt", "attacks", "disrupt", "attacks"]


def test_targets_has_module_files_in_every_subpackage() -> None:
    rel = {p.relative_to(PACKAGE).as_posix() for p in MODULE_FILES}
    assert {"__init__.py", "registry.py", "bundled.py", "training/__init__.py"} <= rel


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_targets_module_imports_neither_attacks_nor_disrupt(path: Path) -> None:
    bad = [(line, name) for line, name in _imported_names(ast.parse(path.read_text()))
           if name.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path}: imports {bad}"



# ----------------------------------------------------------------- inside disrupt/

DISRUPT = Path(targets.__file__).parent.parent / "disrupt"
#: What each layer of ``disrupt`` may never import (arrows run one way:
#: cli -> distributed -> bench -> api/verify -> eval -> core -> attacks/targets).
LAYER_FORBIDS = {
    "core": ("disrupt.eval", "disrupt.bench", "disrupt.api", "disrupt.cli", "disrupt.verify",
             "disrupt.distributed"),
    "eval": ("disrupt.bench", "disrupt.api", "disrupt.cli", "disrupt.verify",
             "disrupt.distributed"),
    "imaging": ("disrupt.core", "disrupt.eval", "disrupt.bench", "disrupt.api", "disrupt.cli",
                "disrupt.distributed"),
    "api.py": ("disrupt.bench", "disrupt.cli", "disrupt.distributed"),
    "verify.py": ("disrupt.bench", "disrupt.cli", "disrupt.distributed"),
    "bench": ("disrupt.cli", "disrupt.distributed"),
    "distributed": ("disrupt.cli",),
}


def _layer_files() -> list[tuple[str, Path]]:
    return [(layer, p) for layer in LAYER_FORBIDS
            for p in sorted((DISRUPT / layer).rglob("*.py") if (DISRUPT / layer).is_dir()
                            else [DISRUPT / layer])]


@pytest.mark.parametrize(("layer", "path"), _layer_files(),
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_disrupt_layers_import_only_downwards(layer: str, path: Path) -> None:
    assert path.exists(), path
    bad = [(line, name) for line, name in _imported_names(ast.parse(path.read_text()))
           if name.startswith(LAYER_FORBIDS[layer])]
    assert not bad, f"{path} ({layer}): imports {bad}"


def test_the_command_line_imports_no_torch_until_a_command_runs() -> None:
    import subprocess
    import sys

    code = "import sys, disrupt.cli; print(sorted({'torch', 'numpy', 'PIL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=DISRUPT.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
