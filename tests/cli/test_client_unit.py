"""The client without a service: SSE parsing, resuming a dropped stream, import weight."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from grait_cli.client import GraitClient, parse_sse
from grait_cli.common import EventBars, report_rows

ROOT = Path(__file__).resolve().parents[2]
LIGHT_MODULES = [
    "grait_cli.client",
    "grait_cli.common",
    "grait_cli.datasets_cmd",
    "grait_cli.jobs_cmd",
]


def sse(event_id: int, kind: str = "progress") -> bytes:
    data = {"id": event_id, "type": kind, "stage": "train", "message": None}
    data["data"] = {"done": event_id, "total": 3}
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def test_parse_sse_skips_comments_and_joins_data_lines() -> None:
    lines = [": keepalive", "", "id: 4", "event: status", "data: {", "data: }", "", "id: 5"]
    assert list(parse_sse(iter(lines))) == [{"id": "4", "event": "status", "data": "{\n}"}]


def test_stream_resumes_with_last_event_id_after_a_drop() -> None:
    seen_headers: list[str | None] = []

    def dropping() -> Iterator[bytes]:
        yield sse(1) + sse(2)
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            seen_headers.append(request.headers.get("Last-Event-ID"))
            if len(seen_headers) == 1:
                return httpx.Response(200, content=dropping())
            return httpx.Response(200, content=sse(3) + b": keepalive\n\n")
        return httpx.Response(200, json={"id": "job_1", "status": "succeeded"})

    client = GraitClient("http://service.test", "key")
    client.http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(handler))
    resumed: list[int] = []
    events = list(client.stream_events("job_1", on_reconnect=resumed.append, retry_seconds=0))
    assert [event["id"] for event in events] == [1, 2, 3]
    assert seen_headers == ["0", "2"] and resumed == [2]


def test_event_bars_keep_one_bar_per_stage() -> None:
    bars = EventBars("grait", stream=io.StringIO())
    for event_id in (1, 2, 3):
        bars.handle(json.loads(sse(event_id).decode().split("data: ", 1)[1]))
    bars.handle({"type": "stage_finished", "stage": "train", "data": {"seconds": 1.5}})
    bars.handle({"type": "status", "stage": None, "data": {"status": "succeeded"}})
    assert list(bars.bars) == ["train"] and bars.bars["train"].n == 3
    assert bars.status == "succeeded"
    bars.close()


def test_event_bars_print_a_warning_above_the_bars() -> None:
    stream = io.StringIO()
    bars = EventBars("grait", stream=stream)
    bars.handle(json.loads(sse(1).decode().split("data: ", 1)[1]))
    message = "out of memory at batch size 16: retrying with 8"
    bars.handle({"type": "warning", "stage": "train", "message": message, "data": None})
    bars.handle(json.loads(sse(2).decode().split("data: ", 1)[1]))
    assert f"grait: train: warning: {message}\n" in stream.getvalue()
    assert list(bars.bars) == ["train"] and bars.bars["train"].n == 2
    bars.close()


def test_report_rows_put_base_prompts_then_each_tuned_model() -> None:
    rates = {"n": 10, "pc": 50.0, "pw": 40.0, "pr": 10.0, "unparsed": 0.0, "ths": 2.5}
    report = {"eval": {"id": {"init_basic": rates, "init_refuse": rates, "tuned": rates}}}
    rows = report_rows([("cor_rait", report), ("grait", report)])
    assert [row[1] for row in rows] == [
        "base model (basic prompt)",
        "base model (refuse prompt)",
        "cor_rait tuned",
        "grait tuned",
    ]
    assert rows[0] == ["id", "base model (basic prompt)", "50.0", "40.0", "10.0", "2.5"]


def test_report_rows_of_a_base_model_evaluation_have_no_tuned_row() -> None:
    rates = {"n": 10, "pc": 50.0, "pw": 40.0, "pr": 10.0, "unparsed": 0.0, "ths": 2.5}
    report = {"eval": {"id": {"init_basic": rates, "init_refuse": rates}}}
    rows = report_rows([("base", report)])
    assert [row[1] for row in rows] == ["base model (basic prompt)", "base model (refuse prompt)"]


def test_client_commands_load_neither_torch_nor_the_service() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {LIGHT_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = {'torch', 'transformers', 'peft', 'app', 'fastapi', 'grait_engine'}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
