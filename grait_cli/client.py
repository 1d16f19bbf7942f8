"""``GraitClient``: a small HTTP client of the GRAIT REST API (httpx), one method per endpoint.

Used by the ``grait datasets`` / ``grait jobs`` commands and by ``grait demo``. It must stay
light: no torch, no FastAPI, nothing of ``app``. Error responses
(``application/problem+json``) raise ``ApiError``; an unreachable service raises
``ServiceUnreachable``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from grait_cli.states import TERMINAL_STATUSES

DEFAULT_URL = "http://127.0.0.1:8000"
CHUNK_BYTES = 64 * 1024


class ApiError(Exception):
    """An error response: ``status``, ``title``, ``detail`` and the whole ``problem`` body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.title = str(problem.get("title") or f"HTTP {status}")
        self.detail = str(problem.get("detail") or "")
        super().__init__(f"{self.title}: {self.detail}")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The problem's ``errors`` list (validation problems), else empty."""
        errors = self.problem.get("errors")
        return errors if isinstance(errors, list) else []


class ServiceUnreachable(Exception):
    """The service at ``url`` could not be reached (connection refused, DNS, timeout...)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"could not reach the GRAIT service at {url} ({reason})")


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"title": response.reason_phrase or f"HTTP {response.status_code}"}
        body["detail"] = response.text[:500]
    raise ApiError(response.status_code, body)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events from text lines: dicts with ``id``, ``event`` and ``data``
    (comments such as keep-alives are skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value


class GraitClient:
    """The REST API at ``url`` with bearer ``api_key`` (defaults: ``GRAIT_URL``,
    ``GRAIT_API_KEY``)."""

    def __init__(
        self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.url = (url or os.environ.get("GRAIT_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("GRAIT_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GraitClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; problems raise ``ApiError``, transport errors ``ServiceUnreachable``."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ServiceUnreachable(self.url, type(error).__name__) from error
        _raise_for_problem(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object an endpoint answers with (every JSON endpoint answers an object)."""
        response = self.request(method, path, **kwargs)
        body = response.json()
        if not isinstance(body, dict):
            problem = {"title": "Unexpected response", "detail": "the body is not a JSON object"}
            raise ApiError(response.status_code, problem)
        return body

    # datasets
    def upload_dataset(self, path: Path, task: str) -> dict[str, Any]:
        """``POST /v1/datasets``: stream the JSONL file ``path``."""
        params = {"task": task, "filename": path.name[:255]}
        headers = {"Content-Type": "application/x-ndjson"}
        body = _file_chunks(path)
        return self._json("POST", "/v1/datasets", params=params, headers=headers, content=body)

    def list_datasets(self, limit: int = 100) -> dict[str, Any]:
        return self._json("GET", "/v1/datasets", params={"limit": limit})

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    # jobs
    def create_job(
        self, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/jobs``; an idempotent replay returns the earlier job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/jobs", json=body, headers=headers)

    def list_jobs(self, status: str | None = None, limit: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._json("GET", "/v1/jobs", params=params)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def retry_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/retry")

    def create_generation(self, job_id: str, questions: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /v1/jobs/{id}/generations``: a generate job asking the tuned job's model
        ``questions`` (``[{"question", "choices"}]``)."""
        return self._json("POST", f"/v1/jobs/{job_id}/generations", json={"questions": questions})

    def create_export(self, job_id: str) -> dict[str, Any]:
        """``POST /v1/jobs/{id}/exports``: an export job merging the tuned job's adapter."""
        return self._json("POST", f"/v1/jobs/{job_id}/exports", json={"merge": True})

    def create_evaluation(
        self, job_id: str, eval_datasets: dict[str, str], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/jobs/{id}/evaluations``: an evaluate job of the tuned job's model and
        its base model on ``eval_datasets`` (``{name: dataset id}``)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"eval_datasets": eval_datasets}
        return self._json("POST", f"/v1/jobs/{job_id}/evaluations", json=body, headers=headers)

    def create_base_evaluation(
        self,
        model: str,
        task: str,
        eval_datasets: dict[str, str],
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/evaluations``: an evaluate job of base model ``model`` alone, with
        the knowledge probe of every eval set."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"model": model, "task": task, "eval_datasets": eval_datasets}
        return self._json("POST", "/v1/evaluations", json=body, headers=headers)

    def wait_for_job(
        self, job_id: str, timeout: float = 3600.0, poll_seconds: float = 1.0
    ) -> dict[str, Any]:
        """Poll ``GET /v1/jobs/{id}`` until the job is terminal; returns it. Raises
        TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:.0f} s")
            time.sleep(poll_seconds)

    def list_events(self, job_id: str, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        return self._json(
            "GET", f"/v1/jobs/{job_id}/events", params={"after": after, "limit": limit}
        )

    def report(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}/report")

    def list_artifacts(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}/artifacts")

    def download_artifact(self, job_id: str, name: str, out: Path) -> int:
        """Stream artifact ``name`` into ``out``; returns the number of bytes written."""
        url = f"/v1/jobs/{job_id}/artifacts/{name}"
        try:
            with self.http.stream("GET", url) as response:
                _raise_for_problem(response)
                written = 0
                with out.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        written += handle.write(chunk)
                return written
        except httpx.TransportError as error:
            raise ServiceUnreachable(self.url, type(error).__name__) from error

    def stream_events(
        self,
        job_id: str,
        after: int = 0,
        max_reconnects: int = 10,
        on_reconnect: Callable[[int], None] | None = None,
        retry_seconds: float = 1.0,
    ) -> Iterator[dict[str, Any]]:
        """Events of ``GET /v1/jobs/{id}/events/stream`` (parsed ``data``) until the job is
        terminal; a dropped connection is resumed with ``Last-Event-ID`` (at most
        ``max_reconnects`` times in a row, ``retry_seconds`` apart)."""
        import json

        last_id, failures = after, 0
        while True:
            headers = {"Last-Event-ID": str(last_id), "Accept": "text/event-stream"}
            timeout = httpx.Timeout(10.0, read=60.0)  # keep-alives come every 15 s
            try:
                url = f"/v1/jobs/{job_id}/events/stream"
                with self.http.stream("GET", url, headers=headers, timeout=timeout) as response:
                    _raise_for_problem(response)
                    for message in parse_sse(response.iter_lines()):
                        event = json.loads(message["data"])
                        last_id, failures = int(message.get("id") or event["id"]), 0
                        yield event
            except (httpx.TransportError, httpx.StreamError) as error:
                failures += 1
                if failures > max_reconnects:
                    raise ServiceUnreachable(self.url, type(error).__name__) from error
                if on_reconnect is not None:
                    on_reconnect(last_id)
                time.sleep(retry_seconds)
                continue
            # A clean end means the job is terminal; otherwise (server restart) resume.
            if self.get_job(job_id)["status"] in TERMINAL_STATUSES:
                return
            failures += 1
            if failures > max_reconnects:
                raise ServiceUnreachable(self.url, "the event stream keeps ending early")
            time.sleep(retry_seconds)

    # webhooks
    def create_webhook(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """``POST /v1/webhooks``: the new webhook with its signing ``secret`` (shown once)."""
        body: dict[str, Any] = {"url": url}
        if events:
            body["events"] = events
        return self._json("POST", "/v1/webhooks", json=body)

    def list_webhooks(self, limit: int = 100) -> dict[str, Any]:
        return self._json("GET", "/v1/webhooks", params={"limit": limit})

    def delete_webhook(self, webhook_id: str) -> None:
        self.request("DELETE", f"/v1/webhooks/{webhook_id}")

    def list_deliveries(self, webhook_id: str, limit: int = 20) -> dict[str, Any]:
        """``GET /v1/webhooks/{id}/deliveries``: the delivery log, newest first."""
        return self._json("GET", f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": limit})
