"""The job-config vocabulary at the HTTP edge: where the API's names differ from the engine's.

A tune job's config is stored in the engine's vocabulary (the keys of ``load_job_config``;
its knobs are ``JobKnobs.to_dict()``), so the worker hands it to the engine as stored. The
API spells one section differently: the request's and the echo's ``hyperparameters`` are
the engine's ``training`` knobs. These functions are the only place that renames it:
``engine_names`` (request -> engine), ``public_config`` (stored -> what clients see) and
``request_field`` (a field an engine error names -> the request's name for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Engine section -> the API's name for it.
API_NAMES = {"training": "hyperparameters"}
ENGINE_NAMES = {api: engine for engine, api in API_NAMES.items()}


def engine_names(request: Mapping[str, Any]) -> dict[str, Any]:
    """Request fields keyed by the engine's names (``hyperparameters`` -> ``training``)."""
    return {ENGINE_NAMES.get(key, key): value for key, value in request.items()}


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored job config as clients see it (``training`` -> ``hyperparameters``)."""
    return {API_NAMES.get(key, key): value for key, value in config.items()}


def request_field(field: str) -> str:
    """``training.lr`` -> ``hyperparameters.lr``: a dotted engine field in the request's names."""
    head, dot, rest = field.partition(".")
    return API_NAMES.get(head, head) + dot + rest
