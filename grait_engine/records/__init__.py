"""Dataset records: the item type, the streaming validator, JSONL I/O and importers.

Torch-free: the service imports this package.
"""

from grait_engine.records.item import TASKS, Item, Task

__all__ = ["Item", "Task", "TASKS"]
