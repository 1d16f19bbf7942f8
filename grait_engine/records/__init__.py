"""Dataset records: the item type (``item``), the streaming validator (``validate``, with its
problems in ``problems``), JSONL I/O (``jsonl``) and importers (``importers``).

Torch-free: the service imports these modules.
"""
