"""The one base of the engine's stage configs: typed knobs, and the shared LoRA and AdamW knobs.

A config is a frozen dataclass deriving from ``KnobConfig`` whose fields are declared with
``knob(default, check)``. A check takes the value given and returns its canonical form, or
raises ``BadKnob`` saying what is allowed; ``KnobConfig.__post_init__`` runs every field's
check in field order and turns ``BadKnob`` into the config's own ``FieldError`` subclass
naming the field. So a wrong type (a string for a number, a float or a bool for an integer, a
list for a scalar) is a config error naming its knob, never a bare ``TypeError``.

``LoraSettings`` and ``AdamWSettings`` define the LoRA and AdamW knobs and their checks once.
The features and training configs keep their flat knob names (``lora_r``, ``lr``...; the
request vocabulary) and declare those fields with ``LORA_KNOBS`` / ``ADAMW_KNOBS`` checks;
their ``lora`` / ``adamw`` properties give the same values as the sub-configs.

Checks never turn an int into a float unless asked (``number(..., as_float=True)``): a
config's ``to_dict()`` is hashed into stage keys and echoed in reports, and must stay as it was.
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, ClassVar, Self

from grait_engine.errors import FieldError, reject_unknown_keys

Check = Callable[[Any], Any]


class BadKnob(ValueError):
    """A knob value a check refuses; the message says what is allowed (no field name)."""


def shown(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (messages go back to clients and into logs)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def knob(default: Any, check: Check) -> Any:
    """A dataclass field with ``default`` whose value ``check`` validates and canonicalises."""
    return field(default=default, metadata={"check": check})


def integer(low: int, high: int | None = None, optional: bool = False) -> Check:
    """A check: an int (not a bool, not a float) in ``[low, high]``; None too if ``optional``."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    allowed = f"must be an integer {span}" + (" or null" if optional else "")

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadKnob(f"{allowed}, got {shown(value)}")
        if value < low or (high is not None and value > high):
            raise BadKnob(f"{allowed}, got {shown(value)}")
        return value

    return check


def number(
    above: float | None = None,
    low: float | None = None,
    below: float | None = None,
    high: float | None = None,
    as_float: bool = False,
) -> Check:
    """A check: a finite int or float (not a bool) with ``> above``, ``>= low``, ``< below``,
    ``<= high`` where given; returned as given, or as a float if ``as_float``."""
    bounds = [
        f"{sign} {bound}"
        for sign, bound in ((">", above), (">=", low), ("<", below), ("<=", high))
        if bound is not None
    ]
    allowed = "must be a finite number" + (f" {' and '.join(bounds)}" if bounds else "")

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadKnob(f"{allowed}, got {shown(value)}")
        # NaN passes every comparison below, and Infinity some of them.
        fits = math.isfinite(value)
        fits = fits and (above is None or value > above) and (low is None or value >= low)
        fits = fits and (below is None or value < below) and (high is None or value <= high)
        if not fits:
            raise BadKnob(f"{allowed}, got {shown(value)}")
        return float(value) if as_float else value

    return check


def choice(options: Sequence[Any], optional: bool = False) -> Check:
    """A check: one of ``options`` (not a bool, a list or a mapping); None too if ``optional``."""
    allowed = f"is not one of {tuple(options)}" + (" or null" if optional else "")

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool | list | dict | set) or value not in options:
            raise BadKnob(f"{shown(value)} {allowed}")
        return value

    return check


def boolean(value: Any) -> bool:
    """A check: true or false."""
    if not isinstance(value, bool):
        raise BadKnob(f"must be true or false, got {shown(value)}")
    return value


def module_names(value: Any) -> tuple[str, ...] | None:
    """A check: null (the model's default modules) or a non-empty list of non-empty names."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise BadKnob(f"must be a non-empty list of module names or null, got {shown(value)}")
    if not value or not all(isinstance(name, str) and name for name in value):
        raise BadKnob(f"must be a non-empty list of module names or null, got {shown(value)}")
    return tuple(value)


def betas(value: Any) -> tuple[float, float]:
    """A check: two numbers in [0, 1) (AdamW's moment decays), as a tuple of floats."""
    allowed = "must be two numbers in [0, 1)"
    if isinstance(value, str) or not isinstance(value, list | tuple) or len(value) != 2:
        raise BadKnob(f"{allowed}, got {shown(value)}")
    unit = number(low=0, below=1, as_float=True)
    try:
        return (unit(value[0]), unit(value[1]))
    except BadKnob:
        raise BadKnob(f"{allowed}, got {shown(value)}") from None


@dataclass(frozen=True)
class KnobConfig:
    """Base of the stage configs: checks every ``knob`` field, builds from and to dicts.

    Subclasses set ``error`` (their ``FieldError`` subclass) and ``noun`` (``knob`` or
    ``setting``, for the unknown-key message)."""

    error: ClassVar[type[FieldError]] = FieldError
    noun: ClassVar[str] = "knob"

    def __post_init__(self) -> None:
        for spec in fields(self):
            check = spec.metadata.get("check")
            if check is None:
                continue
            try:
                value = check(getattr(self, spec.name))
            except BadKnob as bad:
                raise self.error(spec.name, str(bad)) from None
            object.__setattr__(self, spec.name, value)  # the canonical form

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """A config from a (partial) dict; an unknown key raises ``error`` naming it."""
        reject_unknown_keys(cls, values, cls.error, noun=cls.noun)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every knob in field order, JSON-ready (tuples as lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()
        }


class LoraSettingsError(FieldError):
    """A LoRA knob with a bad value (see ``FieldError``)."""


class AdamWSettingsError(FieldError):
    """An AdamW knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class LoraSettings(KnobConfig):
    """A LoRA adapter: rank ``r``, scale ``alpha / r``, ``dropout`` on ``target_modules``
    (None: ``lora.default_target_modules``)."""

    error: ClassVar[type[FieldError]] = LoraSettingsError

    r: int = knob(8, integer(low=1))
    alpha: float = knob(16.0, number(above=0))
    dropout: float = knob(0.1, number(low=0, below=1))
    target_modules: tuple[str, ...] | None = knob(None, module_names)


@dataclass(frozen=True)
class AdamWSettings(KnobConfig):
    """AdamW: learning rate ``lr``, decoupled ``weight_decay``, moment decays ``betas``,
    denominator ``eps``."""

    error: ClassVar[type[FieldError]] = AdamWSettingsError

    lr: float = knob(2e-4, number(above=0))
    weight_decay: float = knob(0.0, number(low=0))
    betas: tuple[float, float] = knob((0.9, 0.999), betas)
    eps: float = knob(1e-8, number(above=0))


def _checks(config: type[KnobConfig], flat_names: dict[str, str]) -> dict[str, Check]:
    """``{flat knob name: check of the sub-config field it stands for}``."""
    by_name: dict[str, Field[Any]] = {spec.name: spec for spec in fields(config)}
    return {flat: by_name[name].metadata["check"] for flat, name in flat_names.items()}


# The flat knob names the features and training configs use for the shared knobs, mapped to
# the checks of the sub-config fields they stand for.
LORA_NAMES = {
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "target_modules": "target_modules",
}
ADAMW_NAMES = {"lr": "lr", "weight_decay": "weight_decay", "adam_betas": "betas", "adam_eps": "eps"}
LORA_KNOBS = _checks(LoraSettings, LORA_NAMES)
ADAMW_KNOBS = _checks(AdamWSettings, ADAMW_NAMES)


def lora_of(config: Any) -> LoraSettings:
    """The ``LoraSettings`` of a config with the flat LoRA knobs (``lora_r``...)."""
    return LoraSettings(**{name: getattr(config, flat) for flat, name in LORA_NAMES.items()})


def adamw_of(config: Any) -> AdamWSettings:
    """The ``AdamWSettings`` of a config with the flat AdamW knobs (``lr``...)."""
    return AdamWSettings(**{name: getattr(config, flat) for flat, name in ADAMW_NAMES.items()})


# How a training sequence's target-token NLLs make its loss (``training.target_loss``; the
# features stage takes its gradients with the same loss). Applied in
# ``features.sequences.per_sample_loss``:
# - ``mean``: their mean (the paper's SFT loss). A one-token answer (" C") then carries its
#   whole loss on the answer/refuse decision, a five-token refusal (" I don't know.") a fifth:
#   the later refusal tokens are easy once " I" is chosen.
# - ``decision``: the first target token, where answering and refusing part, plus the mean of
#   the rest (each part weighs 1; a one-token target is just its token).
# - ``sum``: their sum (longer targets weigh more).
TARGET_LOSSES = ("mean", "decision", "sum")
