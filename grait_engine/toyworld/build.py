"""Build a toy knowledge world on disk, or reuse the one already there.

Layout of ``out_dir`` (API.md)::

    model/                      Hugging Face model directory (safetensors) with tokenizer
    data/{open,choice}/{train,test_id,test_ood}.jsonl   (+ val, val_ood when configured)
    truth.json                  per item id: seen, seen_wrong, known, p_value, class,
                                relation, popularity
    stats.json                  build figures: sizes, timings, greedy check per class,
                                knowledge per exposure bin and popularity quintile, the
                                probe's AUROC against the truth per task type
                                (``probe_auroc``), the build machine (CPU capability
                                and model, torch version and threads)
    config.json                 the resolved ToyWorldConfig
    manifest.json               sha256 of every file above, written last

Every item carries ``meta: {"relation", "seen", "known"}``: ``seen`` counts the sightings
of the fact's value in the corpus, ``known`` is measured after pretraining
(``check.measure_known``: the fact was seen, and asked its open question 0-shot the model
answers greedily with its value and gives it at least half its probability, or more than
it ever gives that value for a person never seen with the relation; ``truth.json`` keeps
that probability as ``p_value``).

A directory whose manifest is complete and whose config hash matches is reused as is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from grait_engine.artifacts import (
    MANIFEST,
    atomic_write_json,
    config_hash,
    read_manifest,
    write_manifest,
)
from grait_engine.machine import machine_facts
from grait_engine.records.item import Item, Task
from grait_engine.records.jsonl import write_items
from grait_engine.toyworld.check import (
    Truth,
    check_knowledge,
    knowledge_curves,
    measure_known,
    probe_auroc,
)
from grait_engine.toyworld.config import ToyWorldConfig
from grait_engine.toyworld.corpus import make_corpus
from grait_engine.toyworld.pretrain import pretrain
from grait_engine.toyworld.qa import make_datasets, split_facts
from grait_engine.toyworld.tokenizer import train_tokenizer
from grait_engine.toyworld.world import Fact, make_facts, make_relations

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# (step name, done, total, message) -> None
Progress = Callable[[str, int, int, str], None]
TASK_TYPES: tuple[Task, ...] = ("open", "choice")


@dataclass(frozen=True)
class ToyWorld:
    """Paths of a built world and its build figures."""

    root: Path
    config_hash: str
    cached: bool
    stats: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def truth_path(self) -> Path:
        return self.root / "truth.json"

    def data_path(self, task: Task, split: str) -> Path:
        return self.root / "data" / task / f"{split}.jsonl"


def world_hash(config: ToyWorldConfig) -> str:
    return config_hash(config.to_dict())


def load_existing(out_dir: Path, config: ToyWorldConfig) -> ToyWorld | None:
    """The world in ``out_dir`` if it is complete and was built from ``config``."""
    manifest = read_manifest(out_dir, verify=False)
    if manifest is None or manifest.get("config_hash") != world_hash(config):
        return None
    return ToyWorld(out_dir, world_hash(config), True, manifest.get("stats", {}))


def build_toyworld(
    config: ToyWorldConfig, out_dir: str | Path, progress: Progress | None = None
) -> ToyWorld:
    """Build the world of ``config`` into ``out_dir`` (or reuse it); returns its paths.

    Side effects: writes the layout above; builds with ``config.n_threads`` torch threads
    (the number in use is restored afterwards).
    """
    out = Path(out_dir)
    existing = load_existing(out, config)
    if existing is not None:
        return existing
    previous = torch.get_num_threads()
    if config.n_threads:
        torch.set_num_threads(config.n_threads)
    try:
        return _build(config, out, progress)
    finally:
        torch.set_num_threads(previous)


def _build(config: ToyWorldConfig, out: Path, progress: Progress | None) -> ToyWorld:
    """Generate, pretrain, write and check the world of ``config`` into ``out``."""
    report = progress or (lambda *args: None)
    # A world of another config may be there: drop its manifest first, so an interrupted
    # rebuild is never taken for a complete world.
    (out / MANIFEST).unlink(missing_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    relations = make_relations(random.Random(f"relations:{config.seed}"), config.design)
    facts = make_facts(config, relations)
    corpus = make_corpus(config, facts, relations)
    datasets = make_datasets(split_facts(facts, config), relations, config.seed)
    timings["world_seconds"] = time.perf_counter() - started

    report("tokenizer", 0, 1, f"{len(corpus.documents)} documents")
    questions = [
        item.question for task in datasets.values() for items in task.values() for item in items
    ]
    tokenizer = train_tokenizer(corpus.documents + questions, config.vocab_size)
    model, train_stats = pretrain(
        config,
        tokenizer,
        corpus.documents,
        lambda done, total, msg: report("pretrain", done, total, msg),
    )
    timings["pretrain_seconds"] = train_stats.pop("train_seconds")

    report("check", 0, 1, "which facts the model knows; greedy answers per class")
    check_started = time.perf_counter()
    open_items = [item for items in datasets["open"].values() for item in items]
    measured = measure_known(model, tokenizer, open_items, corpus.seen)
    known = measured.known
    datasets = _with_truth(datasets, corpus.seen, known)
    _write_outputs(out, config, model, tokenizer, datasets, _truth(facts, corpus, measured))
    checks = _check(model, tokenizer, datasets, facts)
    report("check", 0, 1, "the knowledge probe against the truth")
    probe = {
        task: probe_auroc(model, tokenizer, datasets[task]["train"], known, config.seed)
        for task in TASK_TYPES
    }
    timings["check_seconds"] = time.perf_counter() - check_started
    timings["total_seconds"] = time.perf_counter() - started
    stats = {
        "n_facts": len(facts),
        "n_documents": len(corpus.documents),
        "sizes": {
            task: {s: len(items) for s, items in datasets[task].items()} for task in TASK_TYPES
        },
        **train_stats,
        **{k: round(v, 1) for k, v in timings.items()},
        **machine_facts(),
        "known_share": round(sum(known.values()) / max(1, len(known)), 4),
        "knowledge": knowledge_curves(
            measured, dict(corpus.seen), {f.id: f.popularity for f in facts}
        ),
        "check": checks,
        "probe_auroc": probe,
    }
    atomic_write_json(out / "stats.json", stats)
    write_manifest(out, world_files(out), {"config_hash": world_hash(config), "stats": stats})
    return ToyWorld(out, world_hash(config), False, stats)


def _with_truth(
    datasets: dict[Task, dict[str, list[Item]]], seen: dict[str, int], known: dict[str, bool]
) -> dict[Task, dict[str, list[Item]]]:
    """Every item with ``meta.seen`` and ``meta.known`` added (module doc)."""
    return {
        task: {
            split: [
                replace(
                    item,
                    meta={
                        **(item.meta or {}),
                        "seen": seen.get(item.id, 0),
                        "known": known[item.id],
                    },
                )
                for item in items
            ]
            for split, items in splits.items()
        }
        for task, splits in datasets.items()
    }


def _truth(facts: list[Fact], corpus: Any, measured: Truth) -> dict[str, Any]:
    """truth.json: per fact id, how often it was seen (right and wrong), if it is known and
    the probability the model gives its value (``check.measure_known``)."""
    return {
        fact.id: {
            "seen": corpus.seen.get(fact.id, 0),
            "seen_wrong": corpus.seen_wrong.get(fact.id, 0),
            "known": measured.known[fact.id],
            "p_value": round(measured.p_value[fact.id], 4),
            "class": fact.seen_class,
            "relation": fact.relation,
            "popularity": fact.popularity,
        }
        for fact in facts
    }


def _write_outputs(
    out: Path,
    config: ToyWorldConfig,
    model: PreTrainedModel,
    tokenizer: Any,
    datasets: dict[Task, dict[str, list[Item]]],
    truth: dict[str, Any],
) -> None:
    """Write model, tokenizer, data, truth and config."""
    model_dir = out / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    for task in TASK_TYPES:
        for split, items in datasets[task].items():
            write_items(out / "data" / task / f"{split}.jsonl", items, task)
    atomic_write_json(out / "truth.json", truth)
    atomic_write_json(out / "config.json", config.to_dict())


def world_files(out: Path) -> list[str]:
    """The files under ``out`` a world's manifest lists: every file but the manifest itself
    (sorted, relative names). Listing an earlier build's manifest made a rebuilt world's
    manifest fail its own check."""
    return sorted(
        str(path.relative_to(out))
        for path in out.rglob("*")
        if path.is_file() and path.relative_to(out) != Path(MANIFEST)
    )


def _check(
    model: torch.nn.Module,
    tokenizer: Any,
    datasets: dict[Task, dict[str, list[Item]]],
    facts: list[Fact],
) -> dict[str, Any]:
    """Greedy 0-shot check on the training pool, per task type and prompt style."""
    seen_class = {fact.id: fact.seen_class for fact in facts}
    return {
        f"{task}/{style}": check_knowledge(
            model, tokenizer, datasets[task]["train"], seen_class, style
        )
        for task in TASK_TYPES
        for style in ("basic", "refuse")
    }
