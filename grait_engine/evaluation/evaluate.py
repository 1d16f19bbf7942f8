"""Evaluating models on a test set (METHOD.md stage 7) and the report.json ``eval`` block.

``evaluate_model`` decodes one model with one prompt style over a test set and writes its
``predictions.jsonl``; ``evaluate_set`` runs the three evaluations of a job and adds THS
against ``init_basic``. The tuned model is whatever the caller passes (typically M0 with the
trained adapter): evaluate M0 first, because ``lora.load_adapter`` changes the base model in
place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from grait_engine.artifacts import atomic_write_text, write_manifest
from grait_engine.evaluation.decode import greedy_outputs
from grait_engine.evaluation.grade import (
    classify,
    f1_score,
    oracle_share,
    rates,
    rates_by_known,
    ths,
    ths_note,
)
from grait_engine.memory import Batching
from grait_engine.prompts import Style, build_prompt, target_text
from grait_engine.records.item import Item
from grait_engine.stages import CancelFn, NoticeFn, ProgressFn, StageCancelled

STAGE = "evaluate"
PREDICTIONS = "predictions.jsonl"
# The least decoding budget per task; ``decode_budget`` raises it to fit the refusal.
DEFAULT_MAX_NEW_TOKENS = {"open": 16, "choice": 4}


class EvaluationCancelled(StageCancelled):
    """The cancel callback asked to stop (checked after every decoded batch)."""


def _hook(
    name: str, offset: int, total: int, progress: ProgressFn | None, cancel: CancelFn | None
) -> Callable[[int], None]:
    """The per-batch callback: report ``offset + done`` of ``total``, then check cancel."""

    def after_batch(done: int) -> None:
        if progress is not None:
            progress(STAGE, offset + done, total, f"{name}: {done} decoded")
        if cancel is not None and cancel():
            raise EvaluationCancelled(f"evaluation cancelled during {name} after {done} items")

    return after_batch


def evaluate_model(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    style: Style,
    out_path: str | os.PathLike[str],
    *,
    max_new_tokens: int | None = None,
    batch_size: int | Batching = 16,
    name: str = "model",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    offset: int = 0,
    total: int | None = None,
) -> dict[str, Any]:
    """Greedy 0-shot evaluation of ``model`` with prompt ``style`` over ``items`` (one task).

    Output: :func:`grade.rates` of the labels plus ``f1`` (:func:`grade.f1_score`) and,
    when items carry ``meta.known``, ``by_known`` (:func:`grade.rates_by_known`). Side effect: ``out_path`` (a JSONL file, one
    ``{"id", "output", "label"}`` per item in item order) is written atomically once all items
    are decoded. ``max_new_tokens`` defaults to :func:`decode_budget`.
    ``progress(stage, offset + done, total, message)`` runs and ``cancel()`` is checked after
    every batch (raises :class:`EvaluationCancelled`; nothing is written then).
    """
    if not items:
        raise ValueError("no items to evaluate")
    budget = max_new_tokens or decode_budget(tokenizer, items)
    prompts = [build_prompt(item, style, (), tokenizer) for item in items]
    hook = _hook(name, offset, total if total is not None else len(items), progress, cancel)
    outputs = greedy_outputs(
        model, tokenizer, prompts, [i.id for i in items], budget, batch_size, hook
    )
    labels = [classify(item, out) for item, out in zip(items, outputs, strict=True)]
    lines = [
        json.dumps({"id": item.id, "output": out, "label": label}, ensure_ascii=False)
        for item, out, label in zip(items, outputs, labels, strict=True)
    ]
    atomic_write_text(out_path, "".join(line + "\n" for line in lines))
    return summarise(items, labels)


def summarise(items: Sequence[Item], labels: Sequence[str]) -> dict[str, Any]:
    """:func:`grade.rates` of ``labels`` (aligned with ``items``) plus ``f1`` and, when the
    items carry a boolean ``meta.known``, ``by_known``."""
    result: dict[str, Any] = rates(labels)
    result["f1"] = f1_score(result["pc"], result["pw"])
    truths = [(item.meta or {}).get("known") for item in items]
    by_known = rates_by_known(labels, [t if isinstance(t, bool) else None for t in truths])
    if by_known is not None:
        result["by_known"] = by_known
    return result


def cached_rates(items: Sequence[Item], path: Path) -> dict[str, Any] | None:
    """The :func:`summarise` of a predictions file written for exactly ``items`` (same ids,
    same order), or None when the file is missing or was written for other items."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError):
        return None
    if [row.get("id") for row in rows] != [item.id for item in items]:
        return None
    return summarise(items, [row["label"] for row in rows])


def decode_budget(tokenizer: Any, items: Sequence[Item]) -> int:
    """New tokens to decode for ``items``: ``DEFAULT_MAX_NEW_TOKENS`` of their task, raised
    so that the whole refusal (`` I don't know.``) or the longest option letter fits, plus one
    token for the newline that ends an answer.

    A SentencePiece tokenizer (Llama-2) cuts the refusal into 6 or more tokens: with a fixed
    budget of 4 a refusal would be graded ``unparsed``.
    """
    targets = [target_text(items[0], refuse=True)]
    if items[0].task == "choice":
        targets += [" " + letter for item in items for letter in (item.choices or {})]
    ids = tokenizer(sorted(set(targets)), add_special_tokens=False)["input_ids"]
    return max(DEFAULT_MAX_NEW_TOKENS[items[0].task], max(len(x) for x in ids) + 1)


def _as_base(model: Any, is_base: bool) -> AbstractContextManager[Any]:
    """Within it, ``model`` decodes as M0: a peft model's adapter is disabled for base runs."""
    if is_base and hasattr(model, "disable_adapter"):
        disabled: AbstractContextManager[Any] = model.disable_adapter()
        return disabled
    return nullcontext()


def with_ths(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """``result`` plus ``"ths"`` and ``"oracle_share"`` against ``baseline`` (init_basic), and
    ``"ths_note"`` when THS is undefined."""
    out = dict(result)
    out["ths"] = ths(result["pc"], result["pw"], baseline["pc"], baseline["pw"])
    out["oracle_share"] = oracle_share(out["ths"], baseline["pc"])
    note = ths_note(baseline["pw"])
    if note is not None:
        out["ths_note"] = note
    return out


def evaluate_set(
    base_model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    out_dir: str | os.PathLike[str],
    tuned_model: Any = None,
    *,
    max_new_tokens: int | None = None,
    batch_size: int | Batching = 16,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    notice: NoticeFn | None = None,
    base_cache: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """The report.json ``eval`` entry of one test set (API.md).

    Evaluates ``init_basic`` (``base_model``, basic prompt), ``init_refuse`` (``base_model``,
    refuse prompt) and, when ``tuned_model`` is given, ``tuned`` (refuse prompt), in that
    order. Output: ``{"init_basic": rates, "init_refuse": rates + ths, "tuned": rates + ths}``.
    Side effects: ``out_dir/<name>/predictions.jsonl`` for each, then ``out_dir/manifest.json``
    (with the block) last. Progress counts items over all evaluations. A batch that runs
    out of memory is retried at half the size (for the rest of the set), told to ``notice``.
    ``base_cache``: a directory keyed by everything M0's outputs depend on (the caller's
    job); M0's predictions are read from ``base_cache/<name>/predictions.jsonl`` when there,
    else decoded and stored there.
    """
    batching = Batching.of(batch_size, STAGE)
    if notice is not None:  # a Batching passed in may carry its caller's notice
        batching.notice = notice
    runs: list[tuple[str, Any, Style]] = [
        ("init_basic", base_model, "basic"),
        ("init_refuse", base_model, "refuse"),
    ]
    if tuned_model is not None:
        runs.append(("tuned", tuned_model, "refuse"))
    root = Path(out_dir)
    block: dict[str, dict[str, Any]] = {}
    for index, (name, model, style) in enumerate(runs):
        target = root / name / PREDICTIONS
        cache = base_cache / name / PREDICTIONS if base_cache and name != "tuned" else None
        reused = cached_rates(items, cache) if cache is not None else None
        if reused is not None:
            assert cache is not None
            atomic_write_text(target, cache.read_text(encoding="utf-8"))
            block[name] = reused
            if progress is not None:
                progress(STAGE, (index + 1) * len(items), len(runs) * len(items), f"{name}: reused")
            continue
        with _as_base(model, name != "tuned"):
            block[name] = evaluate_model(
                model,
                tokenizer,
                items,
                style,
                target,
                max_new_tokens=max_new_tokens,
                batch_size=batching,
                name=name,
                progress=progress,
                cancel=cancel,
                offset=index * len(items),
                total=len(runs) * len(items),
            )
        if cache is not None:
            atomic_write_text(cache, target.read_text(encoding="utf-8"))
    baseline = block["init_basic"]
    for name in block:
        if name != "init_basic":
            block[name] = with_ths(block[name], baseline)
    write_manifest(root, [f"{name}/{PREDICTIONS}" for name in block], {"eval": block})
    return block
