"""Stage 2: the ik/idk split of a finished probe.

Its own package, like every stage (``run_<stage>`` in ``stage.py``): it reads the probe's
files, not its code, and feeds the selection and the methods. Import from the defining
module::

    from grait_engine.split.stage import load_split, run_split
    split = run_split(probe_dir, split_dir, tau=0.5)

``stage`` is torch-free (the service's knobs import ``check_tau`` and ``DEFAULT_TAU``).
"""
