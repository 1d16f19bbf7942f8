"""GRAIT as a library: probe, split, gradient features, selection, weighting, training, eval.

Import rules (checked by tests/test_import_rules.py): this package imports nothing of
``app``, ``worker`` or ``grait_cli``; the service imports only the torch-free engine modules
that test lists. Package ``__init__`` files hold no code: import from the defining module.
"""

__version__ = "0.1.0"
