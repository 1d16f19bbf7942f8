"""``grait webhooks`` against the real service: create (the secret printed once), refused
destinations and events, list, a signed delivery to a local receiver shown in
``deliveries``, delete."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from app.webhooks.signing import verify
from grait_cli.client import GraitClient
from tests.app.webhook_receiver import receiving
from tests.cli.conftest import TINY_JOB, Result, Service

Grait = Callable[..., Result]


def queue_job(service: Service, world: Path) -> str:
    """Upload the tiny world's choice sets and create a job (its ``job.queued`` event);
    the job is cancelled at once so it does not run for long."""
    with GraitClient(service.url, service.key) as client:
        data = world / "tiny-seed0" / "data" / "choice"
        ids = {
            split: client.upload_dataset(data / f"{split}.jsonl", "choice")["id"]
            for split in (
                "train",
                "test_id",
            )
        }
        body = TINY_JOB | {
            "training_dataset": ids["train"],
            "eval_datasets": {"id": ids["test_id"]},
        }
        job_id = client.create_job(body)["id"]
        client.cancel_job(job_id)
        return job_id


def test_webhooks_commands(client_grait: Grait, service: Service, tiny_toyworld: Path) -> None:
    with receiving() as receiver:
        created = client_grait("webhooks", "create", receiver.url, "--event", "job.queued")
        assert created.rc == 0, created.err
        webhook_id = re.search(r"\bcreated (wh_[0-9a-f]+) ", created.out).group(1)
        secret = re.search(r"^secret: (whsec_\S+)$", created.out, re.MULTILINE).group(1)
        assert "(job.queued)" in created.out

        refused = client_grait("webhooks", "create", "http://10.0.0.5/hook")
        assert refused.rc == 1 and refused.err.startswith("error: Validation error: ")
        assert "  url: host '10.0.0.5' is not an allowed webhook destination" in refused.err
        unknown = client_grait("webhooks", "create", receiver.url, "--event", "job.nope")
        assert unknown.rc == 1 and "  events: unknown event 'job.nope'" in unknown.err

        listed = client_grait("webhooks", "list")
        assert listed.rc == 0 and webhook_id in listed.out and receiver.url in listed.out
        assert secret not in listed.out and listed.out.count("wh_") == 1

        job_id = queue_job(service, tiny_toyworld)
        (request,) = receiver.wait_for(1)
        assert verify(secret, request.headers["Grait-Signature"], request.body)
        assert json.loads(request.body)["data"]["job"]["id"] == job_id

        deadline = time.monotonic() + 60
        while True:
            log = client_grait("webhooks", "deliveries", webhook_id)
            assert log.rc == 0, log.err
            if " delivered " in log.out:
                break
            assert time.monotonic() < deadline, log.out
            time.sleep(0.5)
        (row,) = [line for line in log.out.splitlines() if job_id in line]
        assert row.split()[1:6] == ["job.queued", job_id, "delivered", "1", "200"]

        deleted = client_grait("webhooks", "delete", webhook_id)
        assert deleted.rc == 0 and webhook_id in deleted.out
        assert webhook_id not in client_grait("webhooks", "list").out
        gone = client_grait("webhooks", "deliveries", webhook_id)
        assert gone.rc == 1 and gone.err.startswith("error: Not found: ")
