"""Each method's training data for a tune job: the entries the final fine-tune trains on.

``method_examples`` builds them from the split (``methods.build_examples``); for grait it
first runs the ``features`` and ``select`` stages (``select_stage``), for CRaFT the
``rehearse`` and ``reprobe`` stages (``knowledge_flow``). Each stage's directory and key come
from the ``job.Job`` it is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grait_engine.artifacts import read_manifest
from grait_engine.methods import MethodExamples, build_examples
from grait_engine.pipeline.job import Job
from grait_engine.records.item import Item


def method_examples(
    job: Job,
    model: Any,
    tokenizer: Any,
    items: list[Item],
    probe_dir: Path,
    split_doc: dict[str, Any],
    root: list[Any],
) -> MethodExamples:
    """The method's training entries (running features and selection for grait)."""
    from grait_engine.probe.store import read_probe
    from grait_engine.split.stage import load_split

    c = job.config
    split = load_split(job.cache_dir / "stages" / f"split-{job.keys['split']}")
    if c.method == "grait":
        selection = select_stage(job, model, tokenizer, items, split, split_doc, root)
        return build_examples("grait", split, c.n_ik, c.n_idk, c.seed, selection=selection)
    certainty = None
    if c.method in ("corcer_rait", "craft"):
        certainty = {r["id"]: float(r["certainty"]) for r in read_probe(probe_dir)[1]}
    if c.method == "craft":
        assert certainty is not None
        flow, notes = knowledge_flow(job, model, tokenizer, items, split_doc, certainty)
        examples = build_examples(
            "craft", split, c.n_ik, c.n_idk, c.seed, certainty=certainty, flow=flow
        )
        return MethodExamples("craft", examples.entries, (*notes, *examples.notes))
    return build_examples(c.method, split, c.n_ik, c.n_idk, c.seed, certainty=certainty)


def knowledge_flow(
    job: Job,
    model: Any,
    tokenizer: Any,
    items: list[Item],
    split_doc: dict[str, Any],
    certainty: dict[str, float],
) -> tuple[dict[str, float], list[str]]:
    """CRaFT's rehearsal and second probe: ``({id: c~_i - c_i}, notes)`` over the pool.

    Stage ``rehearse`` fine-tunes a LoRA on M0 over the rehearsal set (gold answers, the
    job's training recipe); stage ``reprobe`` probes that rehearsed model like stage 1.
    Both are cached stages. Afterwards the LoRA is taken out again: ``model`` is M0.
    """
    from grait_engine.lora import remove_lora
    from grait_engine.methods import rehearsal_ids
    from grait_engine.probe.stage import run_probe
    from grait_engine.probe.store import read_probe
    from grait_engine.training.loss import Example
    from grait_engine.training.stage import run_training

    c, cb = job.config, job.callbacks
    correctness = {k: float(v) for k, v in split_doc["correctness"].items()}
    ids, notes = rehearsal_ids(correctness, certainty, c.tau)
    by_id = {item.id: item for item in items}
    rehearsal = [Example(by_id[i], False, 1.0) for i in ids]
    rehearse_out = job.stage_dir(
        "rehearse", [job.keys["probe"], ids, c.resolved()["training"], c.seed]
    )
    trained = job.timed(
        "rehearse",
        lambda: run_training(
            model,
            tokenizer,
            rehearsal,
            c.training,
            rehearse_out,
            seed=c.seed,
            model_revision=c.model_revision,
            callbacks=cb.renamed("rehearse"),
        ),
    )
    reprobe_out = job.stage_dir("reprobe", [job.keys["rehearse"], c.probe.to_dict(), c.seed])
    try:
        job.timed(
            "reprobe",
            lambda: run_probe(
                trained.model,
                tokenizer,
                items,
                reprobe_out,
                config=c.probe,
                shots=job.shots,
                seed=c.seed,
                model_revision=f"{c.model_revision}+rehearse-{job.keys['rehearse']}",
                batch_size=job.batch_size,
                callbacks=cb.renamed("reprobe"),
            ),
        )
    finally:
        remove_lora(trained.model)  # back to M0 for the final fine-tune
    after = {r["id"]: float(r["correctness"]) for r in read_probe(reprobe_out)[1]}
    notes.append(f"rehearsal on {len(ids)} items")
    return {i: after[i] - correctness[i] for i in correctness}, notes


def select_stage(
    job: Job,
    model: Any,
    tokenizer: Any,
    items: list[Item],
    split: Any,
    split_doc: dict[str, Any],
    root: list[Any],
) -> dict[str, Any]:
    """Features (keyed by the probe, not the split) then selection; returns selection.json."""
    from grait_engine.features.stage import SpeedSettings, run_features
    from grait_engine.selection.stage import run_selection

    c, cb = job.config, job.callbacks
    selection = c.selection
    assert selection is not None
    features_out = job.stage_dir(
        "features",
        [*root, job.keys["probe"], c.features.to_dict(), c.training.target_loss, c.seed],
    )
    speed = SpeedSettings(batch_size=job.batch_size, memory_budget_mb=c.runtime.memory_budget_mb)
    features = job.timed(
        "features",
        lambda: run_features(
            c.features,
            model,
            tokenizer,
            items,
            split_doc["correctness"],
            features_out,
            seed=c.seed,
            speed=speed,
            callbacks=cb,
            target_loss=c.training.target_loss,
        ),
    )
    # What "auto" became on this machine (model dtype, device kind, projection dtype).
    manifest = read_manifest(features.directory) or {}
    job.stages["features"]["compute"] = manifest.get("compute")
    parts = [job.keys["features"], job.keys["split"], selection.knobs(), c.seed]
    select_out = job.stage_dir("select", parts)
    result = job.timed(
        "select",
        lambda: run_selection(
            selection,
            split,
            features.features_dir,
            select_out,
            seed=c.seed,
            callbacks=cb,
        ),
    )
    selection_doc: dict[str, Any] = json.loads(result.path.read_text())
    return selection_doc
