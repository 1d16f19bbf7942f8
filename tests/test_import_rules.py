"""The import rules of ARCHITECTURE.md, checked on the source (AST) and at run time.

- ``grait_engine`` imports nothing of ours (``app``, ``worker``, ``grait_cli``).
- ``app`` never imports ``worker``, ``grait_cli``, torch/transformers/peft, nor any engine
  module outside ``grait_engine.TORCH_FREE_MODULES``.
- ``worker`` never imports FastAPI nor ``app.api`` (only the persistence side of ``app``).
- The torch-free engine modules really load without torch (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grait_engine

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "peft", "safetensors", "tokenizers", "accelerate"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file (top level or nested)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(package: str, forbidden) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            reason = forbidden(name)
            if reason:
                found.append(f"{path.relative_to(ROOT)} imports {name}: {reason}")
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_engine_imports_nothing_of_ours():
    def rule(name: str) -> str | None:
        return (
            "the engine imports nothing of ours"
            if top(name) in {"app", "worker", "grait_cli"}
            else None
        )

    assert violations("grait_engine", rule) == []


def test_app_imports_only_torch_free_engine_and_no_worker():
    allowed = set(grait_engine.TORCH_FREE_MODULES)

    def rule(name: str) -> str | None:
        if top(name) in {"worker", "grait_cli"}:
            return "app never imports the worker or the CLI"
        if top(name) in HEAVY:
            return "app never imports torch or model libraries"
        if top(name) == "grait_engine":
            # `from grait_engine.records import Item` shows up as both the module and the name.
            parent = name.rsplit(".", 1)[0]
            if name not in allowed and parent not in allowed:
                return "only the torch-free engine modules are allowed"
        return None

    assert violations("app", rule) == []


def test_worker_never_imports_the_http_layer():
    def rule(name: str) -> str | None:
        if top(name) in {"fastapi", "uvicorn", "grait_cli"} or name.startswith("app.api"):
            return "the worker uses only the persistence side of app"
        return None

    assert violations("worker", rule) == []


def test_torch_free_modules_load_without_torch():
    code = (
        "import importlib, sys\n"
        f"for name in {list(grait_engine.TORCH_FREE_MODULES)!r}:\n"
        "    importlib.import_module(name)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"torch-free modules loaded: {result.stdout.strip()}"


def test_every_torch_free_module_exists():
    for name in grait_engine.TORCH_FREE_MODULES:
        relative = Path(*name.split("."))
        assert (ROOT / relative).with_suffix(".py").is_file() or (
            ROOT / relative / "__init__.py"
        ).is_file(), name
