"""The import rules of ARCHITECTURE.md, checked on the source (AST) and at run time.

- ``grait_engine`` imports nothing of ours (``app``, ``worker``, ``grait_cli``).
- ``app`` never imports ``worker``, ``grait_cli``, torch/transformers/peft, nor any engine
  module outside ``APP_ENGINE_MODULES`` (below); ``grait_cli`` imports the engine only inside
  functions, so that the client commands start without the model stack.
- ``worker`` never imports FastAPI nor ``app.api`` (only the persistence side of ``app``).
- ``app.execution`` (runs queued jobs) never imports FastAPI nor the HTTP layer; inside
  ``app`` only the wiring (``app.main``) uses all of it, the API only its ``queue`` and the
  jobs domain only its run store (``lease``).
- Those engine modules, the service and the CLI really load without torch (checked in a fresh
  interpreter).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "peft", "safetensors", "tokenizers", "accelerate"}

# The engine modules the service may import: torch-free (checked below), so ``app`` stays light.
APP_ENGINE_MODULES = (
    "grait_engine.job_folder",
    "grait_engine.pipeline.config",
    "grait_engine.pipeline.knobs",
    "grait_engine.pipeline.runtime",
    "grait_engine.probe.config",
    "grait_engine.records.item",
    "grait_engine.records.problems",
    "grait_engine.records.validate",
    "grait_engine.reporting.data",
    "grait_engine.reporting.plots",
    "grait_engine.reporting.render",
)


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
    allowed = set(APP_ENGINE_MODULES)

    def rule(name: str) -> str | None:
        if top(name) in {"worker", "grait_cli"}:
            return "app never imports the worker or the CLI"
        if top(name) in HEAVY:
            return "app never imports torch or model libraries"
        if top(name) == "grait_engine":
            # `from grait_engine.records.item import Item` shows up as the module and the name.
            parent = name.rsplit(".", 1)[0]
            if name not in allowed and parent not in allowed:
                return "only the engine modules in APP_ENGINE_MODULES are allowed"
        return None

    assert violations("app", rule) == []


def test_worker_never_imports_the_http_layer():
    def rule(name: str) -> str | None:
        if top(name) in {"fastapi", "uvicorn", "grait_cli"} or name.startswith("app.api"):
            return "the worker uses only the persistence side of app"
        return None

    assert violations("worker", rule) == []


def test_execution_is_imported_only_where_its_docstring_says():
    def inside(name: str) -> str | None:
        if top(name) in {"fastapi", "starlette", "uvicorn"} or name.startswith(
            ("app.api", "app.ui", "app.main")
        ):
            return "the execution package never imports the HTTP layer"
        return None

    assert violations("app/execution", inside) == []

    # Outside the package: which of its modules each part of ``app`` may import.
    allowed = {
        "app/main.py": None,  # the wiring: anything
        "app/api/": {"app.execution.queue"},
        "app/jobs/service.py": {"app.execution.lease"},
    }
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("app/execution/"):
            continue
        names = {
            name.rsplit(".", 1)[0] if name.count(".") > 2 else name
            for name in imported_modules(path)
            if name.startswith("app.execution")
        }
        names.discard("app.execution")  # `from app.execution import lease` also names the package
        rule = next((v for k, v in allowed.items() if relative.startswith(k)), set())
        if rule is not None and not names <= rule:
            found.append(f"{relative} imports {sorted(names - rule)}")
    assert found == [], "app.execution imported outside its rule"


def test_cli_imports_the_engine_only_inside_functions():
    found = []
    for path in sorted((ROOT / "grait_cli").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:  # module level only: nested imports run when a command runs
            module = getattr(node, "module", None) or ""
            names = [alias.name for alias in getattr(node, "names", [])]
            if isinstance(node, ast.Import | ast.ImportFrom) and any(
                top(name) in {"grait_engine", *HEAVY} for name in [module, *names] if name
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], "grait_cli imports the engine at module level"


def test_service_and_cli_load_without_torch():
    modules = [*APP_ENGINE_MODULES, "app.main", "grait_cli.main"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"loaded without need: {result.stdout.strip()}"
