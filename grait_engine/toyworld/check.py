"""A quick greedy check of what the toy model knows, per frequency class.

Not the engine's probe (that is stage 1, with sampling and few-shot prompts): this is the
build's own acceptance check, 0-shot greedy decoding with both prompt styles, written to
``stats.json`` so the figures of the README can be reproduced.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from grait_engine.prompts import REFUSAL, Style, build_prompt
from grait_engine.records.item import Item


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


@torch.no_grad()
def greedy_answers(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 64
) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches), cut at the first newline."""
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            list(prompts[start : start + batch_size]), return_tensors="pt", padding=True
        )
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
            outputs.append(text.split("\n")[0].strip())
    return outputs


def grade(item: Item, output: str) -> str:
    """``refused``, ``correct``, ``wrong`` or ``unparsed`` (choice output without a letter)."""
    text = _normalise(output)
    if _normalise(REFUSAL).rstrip(".") in text:
        return "refused"
    if item.task == "choice":
        letter = output.strip()[:1]
        if not item.choices or letter not in item.choices:
            return "unparsed"
        return "correct" if letter == item.answer else "wrong"
    if not text:
        return "unparsed"
    return "correct" if any(_normalise(a) in text for a in item.answers) else "wrong"


def check_knowledge(
    model, tokenizer, items: Sequence[Item], seen_class: dict[str, str], style: Style
) -> dict[str, dict[str, float]]:
    """Greedy 0-shot grades per frequency class: ``{class: {n, correct, wrong, refused, unparsed}}``.

    Rates are fractions of the class's items.
    """
    prompts = [build_prompt(item, style, tokenizer=tokenizer) for item in items]
    max_new = 2 if items and items[0].task == "choice" else 12
    outputs = greedy_answers(model, tokenizer, prompts, max_new)
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item, output in zip(items, outputs, strict=True):
        for group in (seen_class[item.id], "all"):
            counts[group]["n"] += 1
            counts[group][grade(item, output)] += 1
    return {
        group: {
            key: (value if key == "n" else round(value / c["n"], 4)) for key, value in c.items()
        }
        for group, c in counts.items()
    }
