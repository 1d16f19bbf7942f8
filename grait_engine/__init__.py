"""GRAIT as a library: probe, split, gradient features, selection, weighting, training, eval.

Import rules (checked by tests/test_import_rules.py): this package imports nothing of
``app``, ``worker`` or ``grait_cli``. The torch-free modules listed in ``TORCH_FREE_MODULES``
may be imported by the service; nothing else of the engine may.
"""

__version__ = "0.1.0"

# Modules the service (``app``) may import: they must never import torch, transformers or peft.
TORCH_FREE_MODULES = (
    "grait_engine",
    "grait_engine.records",
    "grait_engine.records.item",
    "grait_engine.records.validate",
    "grait_engine.records.jsonl",
    "grait_engine.records.importers",
    "grait_engine.records.fields",
    "grait_engine.records.problems",
    "grait_engine.selection",
    "grait_engine.selection.config",
    "grait_engine.selection.inputs",
    "grait_engine.probe",
    "grait_engine.probe.config",
    "grait_engine.probe.answers",
    "grait_engine.probe.metrics",
    "grait_engine.probe.store",
    "grait_engine.probe.split",
    "grait_engine.evaluation",
    "grait_engine.evaluation.grade",
    "grait_engine.training",
    "grait_engine.training.config",
    "grait_engine.methods",
    "grait_engine.features",
    "grait_engine.features.config",
    "grait_engine.pipeline",
    "grait_engine.pipeline.config",
    "grait_engine.pipeline.outputs",
    "grait_engine.pipeline.runtime",
    "grait_engine.callbacks",
    "grait_engine.prompts",
    "grait_engine.artifacts",
    "grait_engine.errors",
    "grait_engine.lazy",
    "grait_engine.reporting",
    "grait_engine.reporting.data",
    "grait_engine.reporting.plots",
    "grait_engine.reporting.render",
    "grait_engine.reporting.files",
)
