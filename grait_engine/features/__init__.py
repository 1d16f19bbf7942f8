"""Gradient features (METHOD.md stage 3): warmup LoRA, batched per-sample Adam-preconditioned
projected gradients, written in resumable shards (``features_store`` format).

Import from the defining modules: ``config`` (torch-free), ``stage`` (``run_features``),
``warmup``, ``compute``, ``pergrad``, ``projection`` and ``sequences``.
"""
