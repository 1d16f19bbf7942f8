"""Entry point of the ``grait`` console script.

Each subcommand's module is imported only when that subcommand runs, so ``grait serve``
never loads torch and ``grait toyworld`` never loads FastAPI.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with `add_arguments(parser)` and `run(args) -> int`, help text)
COMMANDS: dict[str, tuple[str, str]] = {
    "toyworld": ("grait_cli.toyworld_cmd", "build (or reuse) a toy knowledge world"),
    "run": ("grait_cli.run_cmd", "run a whole job locally (probe -> ... -> report)"),
    "demo": ("grait_cli.demo", "the main job end to end on the toy knowledge world"),
    "serve": ("app.serve", "the REST service (embedded defaults: SQLite, local folder)"),
    "keys": ("app.cli_keys", "manage API keys: create --tenant NAME, list, revoke PREFIX"),
    "worker": ("worker.cli", "a Celery GPU worker (Redis broker); --beat also runs the reaper"),
    "datasets": ("grait_cli.datasets_cmd", "client: upload, list and show datasets"),
    "jobs": ("grait_cli.jobs_cmd", "client: create, follow and inspect jobs"),
    "webhooks": ("grait_cli.webhooks_cmd", "client: job status webhooks and their deliveries"),
    "ask": ("grait_cli.ask_cmd", "ask a tuned job's model (a `grait run` folder or a job id)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grait", description="GRAIT Service command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the chosen subcommand's module (cheap `--help` and no torch for the service).
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        parser = argparse.ArgumentParser(prog=f"grait {argv[0]}", description=COMMANDS[argv[0]][1])
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(argv[1:])) or 0)
    build_parser().parse_args(argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())
