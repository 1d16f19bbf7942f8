"""``grait webhooks create|list|delete|deliveries``: job status webhooks of a GRAIT service.

``create URL [--event job.succeeded ...]`` prints the webhook's signing secret: it is shown
this once only, so the receiver's owner must keep it.
"""

from __future__ import annotations

import argparse

from grait_cli.client import GraitClient
from grait_cli.common import connection_parser, print_table, run_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = connection_parser()
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", parents=[common], help="add a webhook (prints its secret)")
    # dest: not ``url``, which is the service's (--url).
    create.add_argument(
        "webhook_url",
        metavar="URL",
        help="where deliveries are POSTed (a host the operator allows)",
    )
    # The service checks the names (422 naming ``events``), so this list cannot go stale.
    create.add_argument(
        "--event",
        action="append",
        dest="events",
        metavar="EVENT",
        help="a job status change to deliver, job.<queued|running|cancelling|succeeded|"
        "failed|cancelled> (repeatable; default: job.succeeded, job.failed, job.cancelled)",
    )
    create.set_defaults(handler=create_cmd)
    listing = sub.add_parser("list", parents=[common], help="list the webhooks")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=list_cmd)
    remove = sub.add_parser("delete", parents=[common], help="delete a webhook and its log")
    remove.add_argument("id")
    remove.set_defaults(handler=delete_cmd)
    log = sub.add_parser("deliveries", parents=[common], help="a webhook's delivery log")
    log.add_argument("id")
    log.add_argument("--limit", type=int, default=20)
    log.set_defaults(handler=deliveries_cmd)


def run(args: argparse.Namespace) -> int:
    return run_command(args.handler, args)


def create_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    """Create the webhook; prints its id, events and the secret (shown once)."""
    webhook = client.create_webhook(args.webhook_url, args.events)
    print(f"created {webhook['id']} for {webhook['url']} ({', '.join(webhook['events'])})")
    print(f"secret: {webhook['secret']}")
    print("(the secret is shown only now: verify the Grait-Signature header with it)")
    return 0


def list_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    page = client.list_webhooks(limit=args.limit)
    rows = [[w["id"], w["url"], ",".join(w["events"]), w["created_at"]] for w in page["data"]]
    print_table(["id", "url", "events", "created"], rows)
    if page.get("has_more"):
        print(f"(more than {args.limit}; use --limit)")
    return 0


def delete_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    client.delete_webhook(args.id)
    print(f"deleted {args.id}")
    return 0


def deliveries_cmd(client: GraitClient, args: argparse.Namespace) -> int:
    """The delivery log, newest first: status, attempts, the last answer."""
    page = client.list_deliveries(args.id, limit=args.limit)
    rows = [
        [
            d["id"],
            d["event"],
            d["job_id"] or "",
            d["status"],
            d["attempts"],
            "" if d["last_status_code"] is None else d["last_status_code"],
            d["last_error"] or "",
            d["created_at"],
        ]
        for d in page["data"]
    ]
    print_table(["id", "event", "job", "status", "attempts", "code", "error", "created"], rows)
    if page.get("has_more"):
        print(f"(more than {args.limit}; use --limit)")
    return 0
