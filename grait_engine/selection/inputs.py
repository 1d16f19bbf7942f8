"""The probe results the selection needs: the ik/idk partition (METHOD.md stage 2).

Torch-free and independent of the probe module: the stage takes plain ids and correctness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from grait_engine.artifacts import config_hash


class SelectionInputError(ValueError):
    """Inputs that do not fit together: ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PoolSplit:
    """The two pools: ``ik`` (keeps its answer) and ``idk`` (target becomes the refusal).

    ``ik_ids`` and ``ik_correctness`` are aligned (``c_i`` in [0, 1], used to rank the ik
    pool); ``idk_ids`` needs no correctness. Ids are unique and the pools are disjoint.
    """

    ik_ids: tuple[str, ...]
    ik_correctness: tuple[float, ...]
    idk_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ik_ids", tuple(self.ik_ids))
        object.__setattr__(self, "idk_ids", tuple(self.idk_ids))
        object.__setattr__(self, "ik_correctness", tuple(float(c) for c in self.ik_correctness))
        if len(self.ik_ids) != len(self.ik_correctness):
            raise SelectionInputError(
                "ik_correctness",
                f"{len(self.ik_correctness)} values for {len(self.ik_ids)} ik ids",
            )
        for c in self.ik_correctness:
            if not (math.isfinite(c) and 0.0 <= c <= 1.0):
                raise SelectionInputError("ik_correctness", f"c_i must be in [0, 1], got {c}")
        for name in ("ik_ids", "idk_ids"):
            ids = getattr(self, name)
            if len(set(ids)) != len(ids):
                raise SelectionInputError(name, "duplicate ids")
        overlap = set(self.ik_ids) & set(self.idk_ids)
        if overlap:
            raise SelectionInputError(
                "idk_ids", f"{len(overlap)} ids are also ik, e.g. {min(overlap)!r}"
            )

    @classmethod
    def from_probe(
        cls, ids: Sequence[str], correctness: Sequence[float], tau: float = 0.5
    ) -> PoolSplit:
        """Stage 2: ``c_i >= tau`` goes to ik, the rest to idk (order kept)."""
        if len(ids) != len(correctness):
            raise SelectionInputError(
                "correctness", f"{len(correctness)} values for {len(ids)} ids"
            )
        if any(math.isnan(float(c)) for c in correctness):
            raise SelectionInputError("correctness", "NaN correctness")
        ik = [(i, float(c)) for i, c in zip(ids, correctness, strict=True) if float(c) >= tau]
        idk = [i for i, c in zip(ids, correctness, strict=True) if float(c) < tau]
        return cls(tuple(i for i, _ in ik), tuple(c for _, c in ik), tuple(idk))

    def digest(self) -> str:
        """Content hash of the split (part of the stage's input hash)."""
        return config_hash([self.ik_ids, self.ik_correctness, self.idk_ids], length=32)
