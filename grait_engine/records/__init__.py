"""Dataset records: the item type, the streaming validator, JSONL I/O and importers.

Torch-free: the service imports this package.
"""

from grait_engine.records.importers import (
    FORMAT_TASKS,
    FORMATS,
    detect_format,
    import_arc,
    import_dataset,
    import_mmlu_dir,
    import_mmlu_file,
    import_nq,
)
from grait_engine.records.item import TASKS, Item, Task
from grait_engine.records.jsonl import (
    check_items,
    encode_item,
    encode_items,
    iter_items,
    read_items,
    write_items,
)
from grait_engine.records.validate import (
    MAX_LINE_BYTES,
    MAX_PROBLEMS,
    DatasetError,
    Problem,
    StreamingValidator,
    Summary,
    validate_file,
    validate_stream,
)

__all__ = [
    "FORMATS",
    "FORMAT_TASKS",
    "MAX_LINE_BYTES",
    "MAX_PROBLEMS",
    "TASKS",
    "DatasetError",
    "Item",
    "Problem",
    "StreamingValidator",
    "Summary",
    "Task",
    "check_items",
    "detect_format",
    "encode_item",
    "encode_items",
    "import_arc",
    "import_dataset",
    "import_mmlu_dir",
    "import_mmlu_file",
    "import_nq",
    "iter_items",
    "read_items",
    "validate_file",
    "validate_stream",
    "write_items",
]
