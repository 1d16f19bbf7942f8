"""``grait toyworld --out DIR [--seed N] [--size tiny|small|medium]``: build or reuse a toy world."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from grait_cli.progress import ProgressBars


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags (the engine is imported here, not at module level: grait_cli's
    import rule)."""
    from grait_engine.toyworld.config import SIZES

    parser.add_argument("--out", required=True, help="directory to write the world into")
    parser.add_argument("--size", choices=SIZES, default="small", help="world size (default small)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    """Build or reuse the world; prints where it is and its headline figures."""
    from grait_engine.toyworld.build import build_toyworld
    from grait_engine.toyworld.config import preset

    config = preset(args.size, args.seed)
    with ProgressBars() as bars:
        world = build_toyworld(config, args.out, progress=bars.update)
    state = "reused (same config hash)" if world.cached else "built"
    print(f"toy world {args.size} seed {args.seed} {state}: {world.root} [{world.config_hash}]")
    print(json.dumps(summary(world.stats), indent=2))
    return 0


def summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: greedy accuracy and parse rate per class, task and style."""
    lines: dict[str, dict[str, float]] = {}
    for key, per_class in stats.get("check", {}).items():
        lines[key] = {
            f"{cls} correct": round(100 * values.get("correct", 0.0), 1)
            for cls, values in per_class.items()
            if cls in ("many", "rare", "never")
        }
        everything = per_class.get("all", {})
        lines[key]["parsed"] = round(100 * (1 - everything.get("unparsed", 0.0)), 1)
    out = {"seconds": stats.get("total_seconds"), "accuracy_percent": lines}
    if "known_share" in stats:
        out["known_percent"] = round(100 * stats["known_share"], 1)
        out["known_percent_by_exposure"] = {
            label: round(100 * entry["known"], 1)
            for label, entry in stats.get("knowledge", {}).get("by_exposure", {}).items()
        }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="grait toyworld")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
