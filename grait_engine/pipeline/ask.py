"""Ask a tuned job's model a few questions, next to the base model (``grait ask``, the
service's ``generate`` jobs).

Every answer is decoded exactly as evaluation decodes (METHOD.md stage 7): 0-shot prompts
of ``grait_engine.prompts``, greedy decoding with the evaluation's budget
(``evaluate.decode_budget``), the first line of the continuation, and the refusal rule of
``evaluation.grade.is_refusal``. Three answers per question::

    base         M0, basic prompt  (the report's init_basic)
    base_refuse  M0, refuse prompt (init_refuse: told it may say "I don't know")
    tuned        M0 + the job's adapter, refuse prompt (the report's tuned)

A question is ``{"question": text, "choices": [text, ...] | None}``: choice questions get
the option letters A, B, C... in the order given (the answer is a letter), open questions
have no choices. The module imports torch only when ``ask`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grait_engine.errors import FieldError
from grait_engine.records.item import Item

# Which prompt style each answer uses (the names of the report's eval runs in brackets).
PROMPTS = {"base": "basic", "base_refuse": "refuse", "tuned": "refuse"}
MAX_QUESTIONS = 20
MAX_QUESTION_CHARS = 2000
MAX_CHOICES = 10
MAX_CHOICE_CHARS = 500
LETTERS = "ABCDEFGHIJ"


class AskError(FieldError):
    """A question that cannot be asked (see ``FieldError``; ``field`` is e.g.
    ``questions.0.choices``)."""


def question_items(task: str, questions: Sequence[dict[str, Any]]) -> list[Item]:
    """The questions as items of ``task`` (ids ``questions.<i>``; no gold answer).

    Raises AskError naming the field for an empty list or too many questions, an empty or
    too long text, choices on an open task or none (or fewer than two, more than ten, an
    empty or too long one) on a choice task."""
    if not 1 <= len(questions) <= MAX_QUESTIONS:
        raise AskError("questions", f"give 1 to {MAX_QUESTIONS} questions")
    items = []
    for index, entry in enumerate(questions):
        field = f"questions.{index}"
        text = entry.get("question")
        if not isinstance(text, str) or not 1 <= len(text.strip()) <= MAX_QUESTION_CHARS:
            raise AskError(f"{field}.question", f"must be 1 to {MAX_QUESTION_CHARS} characters")
        choices = entry.get("choices")
        if task == "open":
            if choices is not None:
                raise AskError(f"{field}.choices", "an open job answers without choices")
            items.append(Item(id=field, question=text.strip()))
            continue
        if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
            raise AskError(f"{field}.choices", f"a choice job needs 2 to {MAX_CHOICES} choices")
        for number, choice in enumerate(choices):
            if not isinstance(choice, str) or not 1 <= len(choice.strip()) <= MAX_CHOICE_CHARS:
                raise AskError(
                    f"{field}.choices.{number}", f"must be 1 to {MAX_CHOICE_CHARS} characters"
                )
        options = {LETTERS[i]: choice.strip() for i, choice in enumerate(choices)}
        items.append(Item(id=field, question=text.strip(), choices=options))
    return items


def ask(
    model: Any,
    tokenizer: Any,
    task: str,
    questions: Sequence[dict[str, Any]],
    adapter_dir: str | Path | None = None,
    *,
    batch_size: int = 8,
    notice: Any = None,
) -> dict[str, Any]:
    """Answer ``questions`` with the base ``model`` (M0, as ``modeling.load_model`` gives it)
    and, when ``adapter_dir`` holds a peft adapter (a job's ``adapter/``), with M0 plus it.

    Output: ``{"prompts": PROMPTS, "max_new_tokens": n, "answers": [{"question", "choices",
    "base": {"answer", "refusal"}, "base_refuse": {...}, "tuned": {...} or None}]}``.
    Raises AskError for a bad question, ``PromptTooLongError`` for a question that does not
    fit the context. Side effects: none on ``model`` in the end (the adapter is put on for
    the tuned answers and taken off again); a batch that runs out of memory is halved
    (told to ``notice(stage, message)``).
    """
    from grait_engine.evaluation.decode import greedy_outputs
    from grait_engine.evaluation.evaluate import decode_budget
    from grait_engine.evaluation.grade import is_refusal
    from grait_engine.lora import cast_lora, load_adapter, remove_lora
    from grait_engine.memory import Batching
    from grait_engine.prompts import build_prompt

    items = question_items(task, questions)
    budget = decode_budget(tokenizer, items)
    ids = [item.id for item in items]
    batching = Batching(batch_size, "generate", notice)

    def decode(decoder: Any, style: str) -> list[str]:
        prompts = [build_prompt(item, style, (), tokenizer) for item in items]  # type: ignore[arg-type]
        return greedy_outputs(decoder, tokenizer, prompts, ids, budget, batching)

    outputs: dict[str, list[str] | None] = {
        "base": decode(model, PROMPTS["base"]),
        "base_refuse": decode(model, PROMPTS["base_refuse"]),
        "tuned": None,
    }
    if adapter_dir is not None:
        tuned = load_adapter(model, adapter_dir)
        try:
            # As evaluation decodes the tuned model: LoRA weights in the base's dtype.
            cast_lora(tuned, next(tuned.get_base_model().parameters()).dtype)
            outputs["tuned"] = decode(tuned, PROMPTS["tuned"])
        finally:
            remove_lora(tuned)

    def answer(name: str, index: int) -> dict[str, Any] | None:
        texts = outputs[name]
        if texts is None:
            return None
        return {"answer": texts[index], "refusal": is_refusal(texts[index])}

    answers = [
        {
            "question": item.question,
            "choices": dict(item.choices) if item.choices is not None else None,
            **{name: answer(name, index) for name in PROMPTS},
        }
        for index, item in enumerate(items)
    ]
    return {"prompts": dict(PROMPTS), "max_new_tokens": budget, "answers": answers}
