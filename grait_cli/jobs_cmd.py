"""``grait jobs create|list|show|cancel|retry|events|report|artifacts|download``.

``events ID --follow`` follows the Server-Sent Events stream with a progress bar per stage
(resuming with ``Last-Event-ID`` when the connection drops) and exits 0 when the job
succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grait_cli.client import GraitClient
from grait_cli.common import (
    METRICS,
    connection_parser,
    follow_job,
    print_json,
    print_report_table,
    print_table,
    report_rows,
    run_command,
)
from grait_cli.states import JobStatus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = connection_parser()
    sub = parser.add_subparsers(dest="action", required=True)

    def action(
        name: str, handler: Any, help_text: str, with_id: bool = True
    ) -> argparse.ArgumentParser:
        child = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        if with_id:
            child.add_argument("id", help="job id")
        child.set_defaults(handler=handler)
        return child

    create = action("create", create_cmd, "submit a job (the body of POST /v1/jobs)", False)
    create.add_argument("--config", type=Path, required=True, help="JOB.json or JOB.yaml")
    create.add_argument("--idempotency-key", default=None)
    listing = action("list", list_cmd, "list jobs, newest first", False)
    listing.add_argument("--status", choices=[str(s) for s in JobStatus], default=None)
    listing.add_argument("--limit", type=int, default=20)
    action("show", show_cmd, "show one job")
    action("cancel", cancel_cmd, "cancel a job (idempotent)")
    action("retry", retry_cmd, "a new job with the same config")
    events = action("events", events_cmd, "list a job's events (or --follow them live)")
    events.add_argument("--follow", action="store_true", help="stream events to the job's end")
    action("report", report_cmd, "the Pc/Pw/Pr/THS table of a finished job")
    action("artifacts", artifacts_cmd, "list a job's files")
    download = action("download", download_cmd, "download one of a job's files")
    download.add_argument("name", help="artifact name, e.g. report.json")
    download.add_argument("-o", "--output", type=Path, default=None, help="default: ./<basename>")
    export = action("export", export_cmd, "merge a tuned job's adapter into its base model")
    export.add_argument("--wait", action="store_true", help="wait for the export job's end")
    export.add_argument(
        "--download",
        type=Path,
        default=None,
        metavar="DIR",
        help="wait, then download the merged model (config, safetensors, tokenizer) into DIR",
    )

    evaluate = action(
        "evaluate",
        evaluate_cmd,
        "evaluate a succeeded tune job's model (JOB_ID), or a base model alone (--model and "
        "--task), on eval datasets",
        False,
    )
    evaluate.add_argument("id", nargs="?", default=None, help="a succeeded tune job's id")
    evaluate.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="NAME=DATASET_ID",
        help="an eval set (repeat for more): its name in the report and its dataset id",
    )
    evaluate.add_argument("--model", default=None, help="a base model alone (no JOB_ID)")
    evaluate.add_argument("--task", choices=("open", "choice"), default=None)
    evaluate.add_argument("--idempotency-key", default=None)
    evaluate.add_argument(
        "--wait", action="store_true", help="follow the job to its end, then print its report"
    )


def run(args: argparse.Namespace) -> int:
    return run_command(args.handler, args)


def load_config(path: Path) -> dict[str, Any]:
    """A job body from a JSON or YAML file."""
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(str(error)) from None
    else:
        document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the job config must be a mapping")
    return document


def create_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    try:
        body = load_config(args.config)
    except (OSError, ValueError) as error:
        print(f"error: cannot read {args.config}: {error}", file=sys.stderr)
        return 1
    job = client.create_job(body, idempotency_key=args.idempotency_key)
    print(f"job {job['id']} {job['status']}")
    print_json(job)
    return 0


def list_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    page = client.list_jobs(status=args.status, limit=args.limit)
    rows = [
        [
            j["id"],
            j["status"],
            j.get("kind", "tune"),
            j["method"],
            j["model"],
            j.get("stage") or "",
            j["created_at"],
        ]
        for j in page["data"]
    ]
    print_table(["id", "status", "kind", "method", "model", "stage", "created"], rows)
    if page.get("has_more"):
        print(f"(more than {args.limit}; use --limit)")
    return 0


def show_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    print_json(client.get_job(args.id))
    return 0


def cancel_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    job = client.cancel_job(args.id)
    print(f"job {job['id']} {job['status']}")
    return 0


def retry_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    job = client.retry_job(args.id)
    print(f"job {job['id']} {job['status']} (retry of {args.id})")
    return 0


def events_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    if args.follow:
        job = follow_job(client, args.id)
        error = job.get("error") or {}
        suffix = f": {error.get('code')}: {error.get('message')}" if error else ""
        print(f"job {job['id']} {job['status']}{suffix}")
        return 0 if job["status"] == JobStatus.SUCCEEDED else 1
    after = 0
    while True:
        page = client.list_events(args.id, after=after)
        for event in page["data"]:
            where = event.get("stage") or ""
            details = json.dumps(event["data"]) if event.get("data") else ""
            print(
                f"{event['id']:>5} {event['created_at']} {event['type']:<15} {where:<9} {event.get('message') or ''} {details}".rstrip()
            )
            after = event["id"]
        if not page.get("has_more") or not page["data"]:
            return 0


def report_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    report = client.report(args.id)
    job = report.get("job", {})
    print(
        f"job {args.id}: {job.get('method')} on {job.get('model')} ({job.get('task')}), rates in %"
    )
    print_report_table([(str(job.get("method") or "model"), report)])
    return 0


def artifacts_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    rows = [[a["name"], a["size_bytes"]] for a in client.list_artifacts(args.id)["data"]]
    print_table(["name", "bytes"], rows)
    return 0


def download_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    out = args.output or Path(Path(args.name).name)
    written = client.download_artifact(args.id, args.name, out)
    print(f"saved {args.name} to {out} ({written} bytes)")
    return 0


def export_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    """Queue an export job; with ``--wait`` or ``--download DIR`` wait for it (exit 1 unless
    it succeeded) and download its ``merged/`` files into DIR."""
    job = client.create_export(args.id)
    print(f"export job {job['id']} {job['status']} (merging job {args.id})")
    if not (args.wait or args.download):
        return 0
    job = client.wait_for_job(job["id"])
    if job["status"] != JobStatus.SUCCEEDED:
        error = job.get("error") or {}
        print(
            f"error: export job {job['id']} {job['status']}: {error.get('code')}: "
            f"{error.get('message')}",
            file=sys.stderr,
        )
        return 1
    print(f"export job {job['id']} succeeded")
    if args.download is None:
        return 0
    args.download.mkdir(parents=True, exist_ok=True)
    for artifact in client.list_artifacts(job["id"])["data"]:
        folder, _, name = artifact["name"].partition("/")
        if folder == "merged" and name and "/" not in name:
            written = client.download_artifact(job["id"], artifact["name"], args.download / name)
            print(f"saved {artifact['name']} to {args.download / name} ({written} bytes)")
    return 0


def parse_datasets(values: list[str]) -> dict[str, str]:
    """``["id=ds_1", "ood=ds_2"]`` -> ``{"id": "ds_1", "ood": "ds_2"}``; ValueError for an
    entry without ``=`` or a name given twice (the service checks names and ids)."""
    sets: dict[str, str] = {}
    for value in values:
        name, sep, dataset_id = value.partition("=")
        if not sep or not name or not dataset_id:
            raise ValueError(f"--dataset {value!r}: expected NAME=DATASET_ID")
        if name in sets:
            raise ValueError(f"--dataset: the name {name!r} is given twice")
        sets[name] = dataset_id
    return sets


def evaluate_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    """Queue an evaluate job: of tune job ``id``'s model, or (``--model``, ``--task``) of a
    base model alone. With ``--wait``: follow it, print its report table (and for a base
    model the share of items it knows per set); exit 1 unless it succeeded."""
    try:
        sets = parse_datasets(args.dataset)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if (args.id is None) == (args.model is None) or (args.model is None) != (args.task is None):
        print("error: give either JOB_ID or both --model and --task", file=sys.stderr)
        return 2
    if args.id is not None:
        job = client.create_evaluation(args.id, sets, idempotency_key=args.idempotency_key)
        what = f"the tuned model of job {args.id}"
    else:
        job = client.create_base_evaluation(
            args.model, args.task, sets, idempotency_key=args.idempotency_key
        )
        what = f"base model {args.model}"
    print(f"evaluate job {job['id']} {job['status']} ({what})")
    if not args.wait:
        return 0
    job = follow_job(client, job["id"])
    if job["status"] != JobStatus.SUCCEEDED:
        failure = job.get("error") or {}
        print(
            f"error: evaluate job {job['id']} {job['status']}: {failure.get('code')}: "
            f"{failure.get('message')}",
            file=sys.stderr,
        )
        return 1
    report = client.report(job["id"])
    print(f"evaluate job {job['id']} succeeded, rates in %")
    label = str(report.get("job", {}).get("method") or "model")
    # A base-model evaluation has no tuned row: leave out rows without any rate.
    rows = [row for row in report_rows([(label, report)]) if any(row[2:])]
    print_table(["test set", "model"] + [name for _, name in METRICS], rows)
    for name, entry in (report.get("knowledge") or {}).items():
        print(
            f"{name}: the base model knows {entry['known_share']:.1f}% of {entry['n']} "
            f"items (probe correctness >= {entry['tau']}); histogram {entry['counts']}"
        )
    return 0
