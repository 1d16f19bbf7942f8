"""The load generator of ``bench/api_load.py``: ``--clients`` simulated clients, each on its
own keep-alive connection, polling a random job and its events until a deadline, and the
figures printed from what they measured (requests/s, p50/p99/max latency, errors).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter


class Connection:
    """A minimal HTTP/1.1 keep-alive client for GETs (one connection per simulated client).

    Why not one shared ``httpx.AsyncClient``: with 200 connections its pool bookkeeping is
    linear in the pool size per request, and the load generator then took most of the CPU
    it shares with the service (measured with py-spy); the figures measured the generator.
    """

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        """The status of ``GET path`` (the body is read and dropped)."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.auth + b"\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            self.close()
        return int(lines[0].split(" ", 2)[1])

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def client_loop(
    base: str, key: str, jobs: list[str], until: float, interval: float, stats: dict
) -> None:
    host, port = base.removeprefix("http://").split(":")
    connection = Connection(host, int(port), key)
    await asyncio.sleep(random.random() * max(interval, 0.01))  # spread the first polls
    while time.monotonic() < until:
        job_id = random.choice(jobs)
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events?limit=50"):
            start = time.perf_counter()
            try:
                status = await asyncio.wait_for(connection.get(path), 30)
                ok, kind = status == 200, str(status)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                ok, kind = False, type(error).__name__
                connection.close()
            stats["latencies"].append(time.perf_counter() - start)
            if not ok:
                stats["errors"][kind] += 1
        if interval > 0:
            await asyncio.sleep(interval)
    connection.close()


async def load(base: str, key: str, jobs: list[str], args: argparse.Namespace) -> dict:
    stats: dict = {"latencies": [], "errors": Counter()}
    until = time.monotonic() + args.seconds
    started = time.monotonic()
    loops = [client_loop(base, key, jobs, until, args.interval, stats) for _ in range(args.clients)]
    await asyncio.gather(*loops)
    stats["elapsed"] = time.monotonic() - started
    return stats


def figures(stats: dict) -> dict[str, str]:
    latencies = sorted(stats["latencies"])
    n = len(latencies)
    errors = sum(stats["errors"].values())

    def ms(value: float) -> str:
        return f"{value * 1000:.1f}"

    p50 = latencies[n // 2] if n else 0.0
    p99 = latencies[min(n - 1, int(n * 0.99))] if n else 0.0
    return {
        "requests": str(n),
        "requests/s": f"{n / stats['elapsed']:.1f}",
        "errors": f"{errors} {dict(stats['errors']) if errors else ''}".strip(),
        "p50 ms": ms(p50),
        "p99 ms": ms(p99),
        "max ms": ms(latencies[-1] if n else 0.0),
    }
