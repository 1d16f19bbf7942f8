"""Request slots: at most ``limit`` requests inside the application at once, and at most
``per_owner`` of them from one tenant.

Why a cap: sync endpoints run in a thread pool (40 threads) and hold a pooled database
connection from their first query until the request's commit. With more requests in flight
than connections, every thread can end up waiting for a connection while the requests that
hold one wait for a thread: nothing moves until the pool timeout. Admitting at most
``limit`` requests (no more than the connection pool holds) makes that impossible; the
others wait asynchronously, without holding a thread or a connection.

Why a share: without it one tenant's slow requests could hold every slot and every other
tenant would wait behind them. A request first takes its owner's share, then a global slot.

``app.edge.EdgeMiddleware`` takes a slot only once the request body is in, and gives it back
when the response starts (so a long event stream holds no slot while it streams).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

Release = Callable[[], None]
ANONYMOUS = "<anonymous>"  # the owner of requests without a tenant (UI pages, docs)


@dataclass
class _Owner:
    semaphore: asyncio.Semaphore
    users: int = 0  # holders and waiters; the entry is dropped at 0


@dataclass
class RequestSlots:
    """Global and per-owner slots. Use from one event loop (the server's)."""

    limit: int
    per_owner: int
    _global: asyncio.Semaphore | None = None
    _owners: dict[str, _Owner] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_owner = max(1, min(self.per_owner, self.limit))

    async def acquire(self, owner: str) -> Release:
        """Wait for a slot of ``owner``'s share and a global one; return the release function
        (idempotent: calling it twice gives back one slot)."""
        if self._global is None:  # created in the server's event loop
            self._global = asyncio.Semaphore(self.limit)
        shared = self._global
        entry = self._owners.get(owner)
        if entry is None:
            entry = self._owners[owner] = _Owner(asyncio.Semaphore(self.per_owner))
        entry.users += 1
        try:
            await entry.semaphore.acquire()
            try:
                await shared.acquire()
            except BaseException:
                entry.semaphore.release()
                raise
        except BaseException:
            self._leave(owner, entry)
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                shared.release()
                entry.semaphore.release()
                self._leave(owner, entry)

        return release

    def in_use(self) -> int:
        """Global slots held now (for tests and metrics)."""
        return 0 if self._global is None else self.limit - self._global._value

    def _leave(self, owner: str, entry: _Owner) -> None:
        entry.users -= 1
        if entry.users == 0 and self._owners.get(owner) is entry:
            del self._owners[owner]
