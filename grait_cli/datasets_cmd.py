"""``grait datasets upload|list|show``: the dataset resources of a GRAIT service.

``upload FILE --task open|choice`` streams a JSONL file; a 422 prints each problem as
``line N: field: message``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grait_cli.client import GraitClient
from grait_cli.common import connection_parser, print_json, print_table, run_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = connection_parser()
    sub = parser.add_subparsers(dest="action", required=True)
    upload = sub.add_parser("upload", parents=[common], help="upload a JSONL dataset")
    upload.add_argument("file", type=Path, help="JSONL file (one item per line)")
    upload.add_argument("--task", choices=("open", "choice"), required=True)
    upload.set_defaults(handler=upload_cmd)
    listing = sub.add_parser("list", parents=[common], help="list the datasets")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=list_cmd)
    show = sub.add_parser("show", parents=[common], help="show one dataset")
    show.add_argument("id")
    show.set_defaults(handler=show_cmd)


def run(args: argparse.Namespace) -> int:
    return run_command(args.handler, args)


def upload_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    """Upload and validate ``args.file``; prints the new dataset."""
    if not args.file.is_file():
        print(f"error: no file {args.file}", file=sys.stderr)
        return 1
    dataset = client.upload_dataset(args.file, args.task)
    print(
        f"uploaded {args.file.name}: {dataset['id']} ({dataset['n_items']} {dataset['task']} items)"
    )
    print_json(dataset)
    return 0


def list_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    page = client.list_datasets(limit=args.limit)
    rows = [
        [d["id"], d["task"], d["n_items"], d.get("filename") or "", d["created_at"]]
        for d in page["data"]
    ]
    print_table(["id", "task", "items", "filename", "created"], rows)
    if page.get("has_more"):
        print(f"(more than {args.limit}; use --limit)")
    return 0


def show_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    print_json(client.get_dataset(args.id))
    return 0
