"""The ``choice`` probe: next-token probabilities of the option letters (METHOD.md stage 1).

For each item: the next-token logits at the position after ``Answer:`` of the first token of
each option's continuation (`` A``, `` B``, ...), in float32, renormalised over the item's
options (the full-vocabulary normaliser cancels, so it is never computed).
``c_i = p(gold) / sum_o p(o)``; certainty ``s_i = -entropy`` (natural log) of that
normalised distribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.logits import last_token_logits
from grait_engine.probe.batching import Batch
from grait_engine.prompts import ANSWER_CUE
from grait_engine.records.item import Item


class LetterTokenError(ValueError):
    """The tokenizer cannot tell the option letters apart by their first token."""


@dataclass(frozen=True)
class LetterTokens:
    """How option letters are read: after the prompt, append ``prefix`` (tokens every
    option's continuation starts with, usually none), then read ``ids[letter]``."""

    prefix: tuple[int, ...]
    ids: dict[str, int]


def letter_token_ids(
    tokenizer: Any, letters: Iterable[str], context: str = ANSWER_CUE
) -> LetterTokens:
    """The token that tells each option letter's continuation after ``context`` apart.

    A continuation is ``tokenize(context + " " + letter)`` minus the tokens of ``context``:
    one token such as ``" A"`` (byte-level BPE) or ``"▁A"`` (SentencePiece), or, where the
    space is a token of its own, ``[" ", "A"]``. Tokens shared by every continuation become
    the ``prefix``: ``p(" ") * p("A" | " ")`` renormalised over the letters equals
    ``p("A" | " ")`` renormalised, so reading after the prefix loses nothing.
    Raises LetterTokenError when a continuation merges with the context or two letters
    cannot be told apart by their first token after the prefix.
    """
    base = tokenizer(context, add_special_tokens=False)["input_ids"]
    tails: dict[str, list[int]] = {}
    for letter in sorted(set(letters)):
        ids = tokenizer(f"{context} {letter}", add_special_tokens=False)["input_ids"]
        if len(ids) <= len(base) or ids[: len(base)] != base:
            raise LetterTokenError(
                f"option {letter!r}: tokenizing {context!r} + ' {letter}' does not extend the "
                f"tokens of {context!r}, so its next-token probability cannot be read"
            )
        tails[letter] = ids[len(base) :]
    prefix = _common_prefix(list(tails.values())) if len(tails) > 1 else []
    found: dict[str, int] = {}
    by_token: dict[int, str] = {}
    for letter, tail in tails.items():
        if len(tail) <= len(prefix):
            raise LetterTokenError(f"option {letter!r} has no token of its own after {context!r}")
        token = tail[len(prefix)]
        if token in by_token:
            raise LetterTokenError(
                f"options {by_token[token]!r} and {letter!r} start with the same token {token}"
            )
        by_token[token] = letter
        found[letter] = token
    return LetterTokens(tuple(prefix), found)


def _common_prefix(sequences: list[list[int]]) -> list[int]:
    """The longest token prefix shared by all ``sequences``."""
    prefix: list[int] = []
    for column in zip(*sequences, strict=False):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return prefix


def letter_log_probs(
    log_probs: torch.Tensor, items: Sequence[Item], letter_ids: dict[str, int]
) -> list[dict[str, float]]:
    """Per item, the full-vocabulary log-probability of each of its option letters.

    ``log_probs``: (B, V) next-token log-softmax, row b for ``items[b]``.
    """
    rows = []
    for b, item in enumerate(items):
        letters = list((item.choices or {}).keys())
        ids = torch.tensor([letter_ids[letter] for letter in letters], device=log_probs.device)
        values = log_probs[b, ids].tolist()
        rows.append(dict(zip(letters, values, strict=True)))
    return rows


def choice_record(item: Item, letter_lp: dict[str, float]) -> dict[str, Any]:
    """The probe record of one item from its letters' log-probabilities (or logits: any
    per-item constant shift cancels in the renormalisation).

    Output: ``{"id", "correctness", "certainty", "probs": {letter: normalised p}}``.
    Renormalised in log space (log-sum-exp), so tiny probabilities do not underflow to 0/0.
    """
    top = max(letter_lp.values())
    weights = {k: math.exp(v - top) for k, v in letter_lp.items()}
    total = sum(weights.values())
    probs = {k: w / total for k, w in weights.items()}
    entropy = -sum(p * math.log(p) for p in probs.values() if p > 0)
    return {
        "id": item.id,
        "correctness": probs[item.answer or ""],
        "certainty": -entropy,
        "probs": probs,
    }


@torch.inference_mode()
def choice_batch(
    model: Any, batch: Batch, items: Sequence[Item], letter_ids: dict[str, int]
) -> list[dict[str, Any]]:
    """Probe records of the items of one left-padded batch (``items[b]`` is row b).

    One forward pass without a key/value cache; the logits of the option letters are read at
    the last position (which left padding makes the end of every prompt), computed in
    float32 from the last hidden state (``logits.last_token_logits``) whatever the model's
    dtype. ``c_i`` is renormalised over the letters, so the full-vocabulary normaliser,
    which cancels, is never computed.
    """
    letters = sorted(letter_ids)
    token_ids = torch.tensor([letter_ids[k] for k in letters], device=batch.input_ids.device)
    logits = last_token_logits(
        model, batch.input_ids, batch.attention_mask, batch.position_ids, token_ids
    ).double()
    column = {letter: k for k, letter in enumerate(letters)}
    records = []
    for b, item in enumerate(items):
        options = list((item.choices or {}).keys())
        values = logits[b, [column[k] for k in options]].tolist()
        records.append(choice_record(item, dict(zip(options, values, strict=True))))
    return records
