"""Export a tuned job's model as a standalone Hugging Face model (the service's ``export``
jobs): the job's LoRA adapter merged into the base weights, saved with the tokenizer.

The folder loads with ``AutoModelForCausalLM.from_pretrained(folder)`` and
``AutoTokenizer.from_pretrained(folder)`` alone (no peft), or with vLLM as a plain model.
Weights are safetensors only (``save_pretrained(safe_serialization=True)``); nothing is
loaded with remote code. The weights are in the dtype the model was loaded in (the
caller's ``ModelSpec``: float32 on a CPU worker, bfloat16 on a GPU one). Merging adds
``B @ A * alpha / r`` to each target weight: the merged model's logits differ from base +
adapter by float rounding only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def export_merged(model: Any, tokenizer: Any, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Merge the adapter in ``adapter_dir`` (peft format) into the base ``model`` (as
    ``modeling.load_model`` gives it, not quantized) and save it with ``tokenizer``.

    Output: ``out_dir`` holding ``config.json``, ``generation_config.json``,
    ``model*.safetensors`` (with an index when sharded) and the tokenizer files. The files
    are written to a hidden sibling folder first and moved in as a whole (``os.replace``),
    so a reader never sees half a model; an existing ``out_dir`` is replaced. Side effect:
    ``model``'s weights are changed in place (it is the merged model afterwards).
    """
    from grait_engine.lora import load_adapter, merge_adapter

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    merged = merge_adapter(load_adapter(model, adapter_dir))
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        merged.save_pretrained(str(staging), safe_serialization=True)
        tokenizer.save_pretrained(str(staging))
        _fsync_files(staging)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _fsync_files(folder: Path) -> None:
    """Flush every file of ``folder`` to disk before it is moved into place."""
    for file in sorted(folder.iterdir()):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
