"""Generate and export jobs of a tuned job: request bodies and their stored configs.

- ``POST /v1/jobs/{id}/generations`` (``GenerationCreate``): the tuned model and its base
  model answer a few questions (``grait ask``). Stored config: ``{"kind": "generate",
  "model", "task", "source_job_id", "questions", "runtime"}``; ``runtime`` is the tune
  job's (its batch size and quantization: the adapter was trained on that base).
- ``POST /v1/jobs/{id}/exports`` (``ExportCreate``): the adapter merged into the base
  model, saved as safetensors with the tokenizer. Stored config: ``{"kind": "export",
  "model", "task", "source_job_id", "merge": true}``.

Questions are bounded here (1 to 20, each 1 to 2000 characters; choices 2 to 10 of 1 to 500
characters, surrounding whitespace stripped) and must fit the job's task: a choice job's
question needs choices, an open job's has none (422 naming ``questions.<i>.choices``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.db.models import Job
from app.jobs.limits import invalid

MAX_QUESTIONS = 20
QuestionText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]
ChoiceText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Question(BaseModel):
    """One question; ``choices`` (option texts, lettered A, B, C... in this order) for a
    choice job, none for an open job."""

    model_config = ConfigDict(extra="forbid")

    question: QuestionText
    choices: list[ChoiceText] | None = Field(default=None, min_length=2, max_length=10)


class GenerationCreate(BaseModel):
    """``POST /v1/jobs/{id}/generations``: the questions to ask."""

    model_config = ConfigDict(extra="forbid")

    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)


class ExportCreate(BaseModel):
    """``POST /v1/jobs/{id}/exports``: ``merge: true`` (the only export: the adapter itself
    is already among the tune job's artifacts, ``adapter/``)."""

    model_config = ConfigDict(extra="forbid")

    merge: Literal[True] = Field(
        default=True, description="merge the adapter into the base model (safetensors)"
    )


def request_sha256(kind: str, source: Job, body: BaseModel) -> str:
    """A digest of the request and its job, to tell an idempotent replay apart."""
    fields = {"kind": kind, "source_job_id": source.id, **body.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def generation_config(source: Job, body: GenerationCreate) -> dict[str, Any]:
    """The stored config of a generate job on ``source`` (a succeeded tune job); 422 naming
    ``questions.<i>.choices`` when a question does not fit the job's task."""
    for index, question in enumerate(body.questions):
        field = f"questions.{index}.choices"
        if source.task == "choice" and question.choices is None:
            raise invalid(field, "the job is a choice job: give 2 to 10 choices")
        if source.task == "open" and question.choices is not None:
            raise invalid(field, "the job is an open job: questions have no choices")
    return {
        "kind": "generate",
        "model": source.model,
        "task": source.task,
        "source_job_id": source.id,
        "questions": [question.model_dump(mode="json") for question in body.questions],
        "runtime": dict(source.config.get("runtime") or {}),
    }


def export_config(source: Job, body: ExportCreate) -> dict[str, Any]:
    """The stored config of an export job on ``source`` (a succeeded tune job)."""
    return {
        "kind": "export",
        "model": source.model,
        "task": source.task,
        "source_job_id": source.id,
        "merge": body.merge,
    }
