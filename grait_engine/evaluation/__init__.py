"""Stage 7: greedy 0-shot evaluation, grading, rates and THS (METHOD.md).

Import from the defining modules: ``grade`` (``classify``, ``rates``, ``ths``; torch-free),
``evaluate`` (``evaluate_set``, ``evaluate_model``) and ``decode`` (``greedy_outputs``)::

    from grait_engine.evaluation.evaluate import evaluate_set
    block = evaluate_set(m0, tokenizer, test_items, eval_dir, tuned_model=m0_with_adapter)
"""
