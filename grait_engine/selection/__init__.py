"""Stages 4-5: influence-based selection of ik/idk items and adaptive idk weights.

Import from the defining modules::

    from grait_engine.selection.config import SelectionConfig
    from grait_engine.selection.stage import run_selection
    result = run_selection(SelectionConfig(n_ik=4000, n_idk=1000), split, features_dir, out_dir)

``config`` and ``inputs`` are torch-free (the service may import them).
"""
