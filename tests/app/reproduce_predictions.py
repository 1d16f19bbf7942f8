"""Decode a test set with a downloaded GRAIT model the way the README tells a user to, using
transformers and peft only (nothing of GRAIT): run as a script in a fresh process.

    python reproduce_predictions.py BASE ADAPTER|- ITEMS.jsonl OUT.json

``BASE``: the base model folder; ``ADAPTER``: a job's downloaded ``adapter/`` folder, or
``-`` to decode ``BASE`` alone (a merged export). Writes ``{"outputs": [...], "logits":
[...]}`` to OUT.json: per item, the answer (first line of the greedy continuation,
stripped) and the logits of its first new token.
"""

from __future__ import annotations

import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

INSTRUCTION = {
    "choice": "The following are multiple choice questions (with answers){about}.",
    "open": "Answer the following questions with a short answer.",
}
REFUSE = " If you do not know the answer, reply with I don't know."
REFUSAL = " I don't know."


def prompt(item: dict, tokenizer) -> str:
    """The refuse prompt the tuned model was trained and evaluated with (0-shot)."""
    task = "choice" if item.get("choices") else "open"
    subject = item.get("subject") if task == "choice" else None
    about = f" about {subject.replace('_', ' ')}" if subject else ""
    lines = [f"Question: {item['question']}"]
    lines += [f"{letter}. {text}" for letter, text in (item.get("choices") or {}).items()]
    user = INSTRUCTION[task].format(about=about) + REFUSE + "\n\n" + "\n".join(lines)
    if not tokenizer.chat_template:
        return user + "\nAnswer:"
    opened = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    return opened + "Answer:"


def budget(items: list[dict], tokenizer) -> int:
    """New tokens: 4 (choice) or 16 (open), raised to fit the refusal or a letter plus one."""
    task = "choice" if items[0].get("choices") else "open"
    targets = [REFUSAL] + [" " + letter for item in items for letter in item.get("choices") or {}]
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets)
    return max(4 if task == "choice" else 16, longest + 1)


def main(base: str, adapter: str, items_path: str, out_path: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter != "-":
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    with open(items_path, encoding="utf-8") as handle:
        items = [json.loads(line) for line in handle if line.strip()]
    new_tokens = budget(items, tokenizer)
    outputs, logits = [], []
    for item in items:
        text = prompt(item, tokenizer)
        # BOS as the tokenizer adds it, unless a chat template already wrote it.
        inputs = tokenizer(
            text, return_tensors="pt", add_special_tokens=not tokenizer.chat_template
        )
        with torch.no_grad():
            out = model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=new_tokens,
                return_dict_in_generate=True,
                output_scores=True,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new = out.sequences[0, inputs["input_ids"].shape[1] :]
        outputs.append(tokenizer.decode(new, skip_special_tokens=True).split("\n")[0].strip())
        logits.append(out.scores[0][0].tolist())
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump({"outputs": outputs, "logits": logits}, handle)


if __name__ == "__main__":
    main(*sys.argv[1:5])
