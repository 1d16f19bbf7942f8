"""Stage 6: the weighted LoRA fine-tune, checkpointed and resumable (METHOD.md).

Import from the defining modules::

    from grait_engine.training.config import TrainingConfig
    from grait_engine.training.loss import Example
    from grait_engine.training.stage import run_training
    result = run_training(m0, tokenizer, examples, TrainingConfig(), train_dir, seed=0)

``config`` is torch-free (the service validates hyperparameters with ``TrainingConfig``).
"""
