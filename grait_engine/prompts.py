"""Prompt templates for both task types and both styles (METHOD.md, stages 1, 6 and 7).

A prompt is the text the model continues; the target (answer letter, answer text or the
refusal) is appended by the caller, always starting with one space after ``Answer:``.

Layout of a plain-text prompt (no chat template)::

    {instruction}

    Question: {question}          <- one block per few-shot example, then the query
    A. {option}                   <- choice items only
    Answer: {target}

    Question: {query question}
    Answer:

Styles:
- ``basic``: asks for the answer.
- ``refuse``: also tells the model to say ``REFUSAL`` when it does not know.

With a tokenizer that has a chat template, the instruction, shots and query go into one user
message and the assistant turn is opened with ``Answer:``, so the continuation (`` A``,
`` Paris``, `` I don't know.``) is the same in both cases.

Torch-free: the service may import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from grait_engine.records.item import Item, Task

Style = Literal["basic", "refuse"]
STYLES: tuple[Style, ...] = ("basic", "refuse")

REFUSAL = "I don't know."
ANSWER_CUE = "Answer:"

_CHOICE_BASIC = "The following are multiple choice questions (with answers){about}."
_OPEN_BASIC = "Answer the following questions with a short answer."
_REFUSE_SUFFIX = " If you do not know the answer, reply with I don't know."


def instruction(task: Task, style: Style, subject: str | None = None) -> str:
    """The first line of a prompt for ``task`` and ``style`` (subject only for choice)."""
    if task == "choice":
        about = f" about {subject.replace('_', ' ')}" if subject else ""
        text = _CHOICE_BASIC.format(about=about)
    else:
        text = _OPEN_BASIC
    if style == "refuse":
        text += _REFUSE_SUFFIX
    return text


def question_block(item: Item) -> str:
    """``Question: ...`` plus the option lines for choice items, without the answer cue."""
    lines = [f"Question: {item.question}"]
    if item.choices is not None:
        lines += [f"{letter}. {text}" for letter, text in item.choices.items()]
    return "\n".join(lines)


def target_text(item: Item, refuse: bool = False) -> str:
    """The continuation after ``Answer:``: a leading space, then letter, answer or refusal."""
    return " " + (REFUSAL if refuse else item.gold_text)


def solved_example(item: Item) -> str:
    """A few-shot example: the question block followed by its gold answer."""
    return f"{question_block(item)}\n{ANSWER_CUE}{target_text(item)}"


def build_prompt_text(
    item: Item,
    style: Style,
    shots: Sequence[Item] = (),
    with_cue: bool = True,
) -> str:
    """The plain-text prompt for ``item``: instruction, shots, query, and ``Answer:``.

    ``with_cue=False`` leaves off the final ``Answer:`` (the chat-template path adds it
    after the assistant header instead).
    """
    subject = item.subject if item.task == "choice" else None
    blocks = [instruction(item.task, style, subject)]
    blocks += [solved_example(shot) for shot in shots]
    query = question_block(item)
    blocks.append(f"{query}\n{ANSWER_CUE}" if with_cue else query)
    return "\n\n".join(blocks)


def has_chat_template(tokenizer: Any) -> bool:
    """True when ``tokenizer`` (a Hugging Face tokenizer, or None) carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def build_prompt(
    item: Item,
    style: Style,
    shots: Sequence[Item] = (),
    tokenizer: Any = None,
) -> str:
    """The prompt string the model continues, using the chat template when there is one.

    Inputs: the query ``item``, the prompt ``style``, few-shot ``shots`` (already chosen, in
    order), and optionally the tokenizer whose chat template to use. Output: a string that
    ends with ``Answer:``; append ``target_text(...)`` to get a training sequence.
    """
    if not has_chat_template(tokenizer):
        return build_prompt_text(item, style, shots)
    user = build_prompt_text(item, style, shots, with_cue=False)
    opened = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    return f"{opened}{ANSWER_CUE}"


def token_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (a prompt, or a prompt plus its target), never truncated.

    The tokenizer's special tokens (BOS) are added unless a chat template already wrote
    them into the text, so probe, features, training and evaluation see the same sequence.
    """
    special = not has_chat_template(tokenizer)
    ids: list[list[int]] = tokenizer(list(texts), add_special_tokens=special, truncation=False)[
        "input_ids"
    ]
    return ids


def pick_shots(query: Item, pool: Sequence[Item], k: int, seed: int) -> list[Item]:
    """``k`` few-shot examples from ``pool`` for ``query``: never the query itself.

    Prefers items of the query's subject (MMLU dev sets are per subject), then the rest;
    deterministic for a fixed ``seed`` and query id.
    """
    import random

    if k <= 0:
        return []
    candidates = [p for p in pool if p.id != query.id and p.task == query.task]
    same = [p for p in candidates if query.subject and p.subject == query.subject]
    same_ids = {p.id for p in same}
    rest = [p for p in candidates if p.id not in same_ids]
    rng = random.Random(f"{seed}:{query.id}")
    rng.shuffle(same)
    rng.shuffle(rest)
    return (same + rest)[:k]
