"""Terminal progress bars (tqdm) for engine callbacks of the form (step, done, total,
message): ``grait toyworld``, ``grait run``, the demo's world build and the benchmarks.
A job's bars over HTTP are ``grait_cli.common.EventBars``."""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm  # type: ignore[import-untyped]


class ProgressBars:
    """One tqdm bar per step name; ``update`` is a progress callback."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def update(self, step: str, done: int, total: int, message: str = "") -> None:
        bar = self.bars.get(step)
        if bar is None:
            bar = self.bars[step] = tqdm(total=total, desc=step, unit="it", leave=True)
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for bar in self.bars.values():
            bar.close()
