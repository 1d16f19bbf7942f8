"""What the client commands share: connection flags, error printing, progress bars of a
job's events and the report tables. Light: no torch, nothing of ``app``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

from grait_cli.client import DEFAULT_URL, ApiError, GraitClient, ServiceUnreachable

# report.json eval keys -> table row labels (the tuned row is labelled by the method).
BASE_ROWS = (
    ("init_basic", "base model (basic prompt)"),
    ("init_refuse", "base model (refuse prompt)"),
)
METRICS = (("pc", "Pc"), ("pw", "Pw"), ("pr", "Pr"), ("ths", "THS"))


def connection_parser() -> argparse.ArgumentParser:
    """A parent parser with ``--url`` and ``--api-key`` (defaults from the environment)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--url", default=None, help=f"service URL (default: $GRAIT_URL or {DEFAULT_URL})"
    )
    parser.add_argument("--api-key", default=None, help="API key (default: $GRAIT_API_KEY)")
    return parser


def client_from(args: argparse.Namespace) -> GraitClient:
    return GraitClient(url=args.url, api_key=args.api_key)


def run_command(
    handler: Callable[[GraitClient, argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run ``handler`` with a client; problems print ``error: <title>: <detail>`` (exit 1)."""
    try:
        with client_from(args) as client:
            return handler(client, args)
    except ApiError as error:
        print_problem(error)
        return 1
    except ServiceUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def print_problem(error: ApiError, stream: TextIO | None = None) -> None:
    """``error: <title>: <detail>``, then one line per ``errors[]`` entry."""
    stream = stream or sys.stderr
    print(f"error: {error.title}: {error.detail}", file=stream)
    for entry in error.errors:
        where = f"line {entry['line']}: " if entry.get("line") is not None else ""
        field = f"{entry['field']}: " if entry.get("field") else ""
        print(f"  {where}{field}{entry.get('message', '')}", file=stream)
    more = error.problem.get("n_problems")
    if isinstance(more, int) and more > len(error.errors) > 0:
        print(f"  ... and {more - len(error.errors)} more problem(s)", file=stream)


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=False))


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain left-aligned text table."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _rate(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    return "" if value is None else f"{value:.1f}"


def report_rows(reports: list[tuple[str, dict[str, Any]]]) -> list[list[str]]:
    """Rows ``[test set, model, Pc, Pw, Pr, THS]``: the base model's two prompts (from the
    first report), then each report's tuned model, per test set (none for a base-model
    evaluation, whose report has no ``tuned`` block)."""
    if not reports:
        return []
    rows = []
    for test_set, first in reports[0][1].get("eval", {}).items():
        models = [(label, first.get(key, {})) for key, label in BASE_ROWS]
        models += [
            (f"{name} tuned", r["eval"][test_set]["tuned"])
            for name, r in reports
            if "tuned" in r.get("eval", {}).get(test_set, {})
        ]
        for label, values in models:
            rows.append([test_set, label] + [_rate(values, key) for key, _ in METRICS])
    return rows


def print_report_table(reports: list[tuple[str, dict[str, Any]]]) -> None:
    """The comparison table of one or more reports (rates in percent)."""
    print_table(["test set", "model"] + [name for _, name in METRICS], report_rows(reports))


class EventBars:
    """One tqdm bar per stage from a job's events; other events are printed as lines
    (above the bars: ``probe: warning: out of memory at batch size 16: retrying with 8``)."""

    def __init__(self, label: str = "", stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.bars: dict[str, tqdm] = {}
        self.status: str | None = None

    def _bar(self, stage: str, total: int | None) -> tqdm:
        bar = self.bars.get(stage)
        if bar is None:
            desc = f"{self.label} {stage}".strip()
            bar = self.bars[stage] = tqdm(
                total=total, desc=desc, unit="it", file=self.stream, leave=True
            )
        return bar

    def handle(self, event: dict[str, Any]) -> None:
        """Show one event (a dict of the events API)."""
        kind, stage, data = event.get("type"), event.get("stage"), event.get("data") or {}
        if kind == "progress" and stage:
            bar = self._bar(stage, data.get("total"))
            bar.total = data.get("total") or bar.total
            bar.n = int(data.get("done") or 0)
            bar.set_postfix_str(str(event.get("message") or "")[:60], refresh=False)
            bar.refresh()
        elif kind == "stage_finished" and stage and stage in self.bars:
            bar = self.bars[stage]
            if bar.total:
                bar.n = bar.total
            bar.set_postfix_str(f"{data.get('seconds', 0):.1f} s", refresh=False)
            bar.close()
        elif kind != "stage_started":
            if kind == "status":
                self.status = data.get("status", self.status)
            self._line(kind, stage, event.get("message"), data)

    def _line(self, kind: Any, stage: Any, message: Any, data: dict[str, Any]) -> None:
        if kind == "stage_finished":
            message = f"finished in {data.get('seconds', 0):.1f} s"
        elif kind == "warning":
            message = f"warning: {message or '(no message)'}"
        head = f"{self.label}: " if self.label else ""
        where = f"{stage}: " if stage else ""
        text = message or (kind if kind != "status" else data.get("status"))
        tqdm.write(f"{head}{where}{text}", file=self.stream)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def follow_job(client: GraitClient, job_id: str, label: str = "") -> dict[str, Any]:
    """Follow the job's event stream with progress bars to its end; returns the final job."""
    bars = EventBars(label)

    def reconnecting(last_id: int) -> None:
        tqdm.write(f"connection dropped; resuming after event {last_id}", file=bars.stream)

    try:
        for event in client.stream_events(job_id, on_reconnect=reconnecting):
            bars.handle(event)
    finally:
        bars.close()
    return client.get_job(job_id)
