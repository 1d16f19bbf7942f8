"""Stages 1-2: the knowledge probe and the ik/idk split.

Import from the defining modules::

    from grait_engine.probe.config import ProbeConfig
    from grait_engine.probe.split import run_split
    from grait_engine.probe.stage import run_probe
    probe = run_probe(model, tokenizer, items, probe_dir, config=ProbeConfig(), seed=0)
    split = run_split(probe_dir, split_dir, tau=0.5)

``config``, ``answers``, ``metrics``, ``store`` and ``split`` are torch-free.
"""
