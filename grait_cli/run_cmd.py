"""``grait run --config JOB.yaml --out DIR [--cache-dir DIR]``: run a whole job locally."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grait_cli.progress import ProgressBars


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the job's YAML file")
    parser.add_argument("--out", required=True, help="folder for report.json, report.md, eval/")
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="folder of the content-addressed stage directories (default OUT/cache)",
    )


def run(args: argparse.Namespace) -> int:
    """Validate the whole config (exit 2 on a bad field, before any stage), then run it."""
    from grait_engine.pipeline.config import JobConfigError, load_job_config

    try:
        config = load_job_config(args.config)
    except JobConfigError as error:
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 2
    from tqdm import tqdm  # type: ignore[import-untyped]

    from grait_engine.memory import OutOfMemory
    from grait_engine.pipeline.run import run_job

    def notice(stage: str, message: str) -> None:  # e.g. a batch halved: above the bars
        tqdm.write(f"{stage}: warning: {message}", file=sys.stderr)

    out = Path(args.out)
    cache = Path(args.cache_dir) if args.cache_dir else out / "cache"
    try:
        with ProgressBars() as bars:
            report = run_job(config, out, cache, progress=bars.update, notice=notice)
    except OutOfMemory as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"report: {out / 'report.json'} and {out / 'report.md'}")
    for stage, info in report["stages"].items():
        state = "cached" if info["cached"] else f"{info['seconds']:.1f} s"
        print(f"  {stage}: {state}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="grait run")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
