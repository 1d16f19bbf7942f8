"""Stage 1: the knowledge probe (the ik/idk split is the ``split`` package).

Import from the defining modules::

    from grait_engine.probe.config import ProbeConfig
    from grait_engine.probe.stage import run_probe
    probe = run_probe(model, tokenizer, items, probe_dir, config=ProbeConfig(), seed=0)

``config``, ``answers``, ``metrics`` and ``store`` are torch-free.
"""
