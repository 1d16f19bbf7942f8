"""Batched greedy decoding and the evaluation files on the tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grait_engine.artifacts import read_manifest
from grait_engine.evaluation.decode import greedy_outputs
from grait_engine.evaluation.evaluate import EvaluationCancelled, evaluate_model, evaluate_set
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.prompts import build_prompt
from grait_engine.records.item import Item

ITEMS = [
    Item(id="q0", question="What is the capital of France?", answers=("Paris",)),
    Item(id="q1", question="Who wrote Hamlet, the long play about a prince?", answers=("x",)),
    Item(id="q2", question="Legs?", answers=("eight",)),
    Item(id="q3", question="Where does the river flow to, past the valley?", answers=("sea",)),
    Item(id="q4", question="Mountain?", answers=("valley",)),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(ModelSpec(str(tiny_model_dir)))


def test_batched_equals_one_at_a_time(tiny) -> None:
    model, tokenizer = tiny
    prompts = [build_prompt(item, "refuse", (), tokenizer) for item in ITEMS]
    ids = [item.id for item in ITEMS]
    batched = greedy_outputs(model, tokenizer, prompts, ids, 8, batch_size=3)
    single = [
        greedy_outputs(model, tokenizer, [p], [i], 8)[0] for p, i in zip(prompts, ids, strict=True)
    ]
    assert batched == single
    assert all("\n" not in out for out in batched)


def test_evaluate_model_writes_predictions(tiny, tmp_path: Path) -> None:
    model, tokenizer = tiny
    seen: list[tuple[str, int, int]] = []
    out = evaluate_model(
        model,
        tokenizer,
        ITEMS,
        "basic",
        tmp_path / "p.jsonl",
        batch_size=2,
        progress=lambda stage, done, total, _msg: seen.append((stage, done, total)),
    )
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == [item.id for item in ITEMS]
    assert {"id", "output", "label"} == set(lines[0])
    assert out["n"] == 5
    assert out["pc"] + out["pw"] + out["pr"] + out["unparsed"] == pytest.approx(100.0)
    assert seen[-1] == ("evaluate", 5, 5) and len(seen) == 3


def test_evaluate_set_block_and_cancel(tiny, tmp_path: Path) -> None:
    model, tokenizer = tiny
    block = evaluate_set(model, tokenizer, ITEMS[:2], tmp_path, tuned_model=model)
    assert list(block) == ["init_basic", "init_refuse", "tuned"]
    assert "ths" not in block["init_basic"]
    assert block["init_refuse"] == block["tuned"]  # same model, same prompt
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest["eval"] == json.loads(json.dumps(block))
    assert (tmp_path / "tuned" / "predictions.jsonl").is_file()
    with pytest.raises(EvaluationCancelled):
        evaluate_set(model, tokenizer, ITEMS, tmp_path / "c", cancel=lambda: True)
    assert not (tmp_path / "c" / "init_basic" / "predictions.jsonl").exists()


def test_peft_model_and_choice_items(tiny_model_dir: Path, tmp_path: Path) -> None:
    from grait_engine.lora import attach_lora

    base, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    choice = [
        Item(id=f"c{i}", question=q, choices={"A": "Paris", "B": "Rome"}, answer="A")
        for i, q in enumerate(["Capital of France?", "Which river flows to the sea?"])
    ]
    before = evaluate_model(base, tokenizer, choice, "refuse", tmp_path / "base.jsonl")
    tuned = attach_lora(base, 4, 8.0, 0.1, seed=0)  # lora_B = 0: same outputs
    tuned.train()  # evaluation must switch dropout off itself
    after = evaluate_model(tuned, tokenizer, choice, "refuse", tmp_path / "tuned.jsonl")
    assert before == after
    assert (tmp_path / "base.jsonl").read_text() == (tmp_path / "tuned.jsonl").read_text()


def test_peft_base_runs_with_the_adapter_disabled(tiny_model_dir: Path, tmp_path: Path) -> None:
    from grait_engine.lora import attach_lora, lora_parameters

    plain, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    expected = evaluate_set(plain, tokenizer, ITEMS, tmp_path / "plain")
    model, _ = load_model(ModelSpec(str(tiny_model_dir)))
    peft = attach_lora(model, 4, 8.0, 0.0, seed=0)
    with torch.no_grad():  # a strong adapter, so tuned outputs differ
        for name, param in lora_parameters(peft):
            if "lora_B" in name:
                param.normal_(0, 5.0, generator=torch.Generator().manual_seed(0))
    block = evaluate_set(peft, tokenizer, ITEMS, tmp_path / "peft", tuned_model=peft)
    assert block["init_basic"] == expected["init_basic"]
    assert block["init_refuse"] == expected["init_refuse"]
    base_lines = (tmp_path / "plain" / "init_refuse" / "predictions.jsonl").read_text()
    tuned_lines = (tmp_path / "peft" / "tuned" / "predictions.jsonl").read_text()
    assert base_lines == (tmp_path / "peft" / "init_refuse" / "predictions.jsonl").read_text()
    assert tuned_lines != base_lines


def _sentencepiece_tokenizer():
    """A SentencePiece-style BPE tokenizer (``▁`` word prefix, as Llama-2's), trained here on
    a few lines, with a vocabulary small enough to cut the refusal into many pieces."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import PreTrainedTokenizerFast

    lines = [
        "Question: Where was Ada born?",
        "A. Paris B. Rome C. Oslo D. Bern",
        "Answer: C",
        "I do not know. Don't ask. I know that.",
    ] * 20
    raw = SentencePieceBPETokenizer()
    raw.train_from_iterator(
        lines, vocab_size=80, min_frequency=1, special_tokens=["<unk>", "<pad>", "<s>", "</s>"]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )


class _RefusingModel(torch.nn.Module):
    """Decodes `` I don't know.`` then a newline after any prompt, as a tuned model would."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"max_position_embeddings": 512})()
        self.reply = tokenizer(" I don't know.\n", add_special_tokens=False)["input_ids"]

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        reply = torch.tensor(self.reply[:max_new_tokens]).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, reply], dim=1)


def test_choice_budget_fits_a_sentencepiece_refusal(tmp_path: Path) -> None:
    from grait_engine.evaluation.evaluate import DEFAULT_MAX_NEW_TOKENS, decode_budget

    tokenizer = _sentencepiece_tokenizer()
    refusal = tokenizer(" I don't know.", add_special_tokens=False)["input_ids"]
    assert len(refusal) > DEFAULT_MAX_NEW_TOKENS["choice"]  # the old fixed budget cut it
    item = Item(
        id="q",
        question="Where was Ada born?",
        answer="C",
        choices={"A": "Paris", "B": "Rome", "C": "Oslo", "D": "Bern"},
    )
    assert decode_budget(tokenizer, [item]) == len(refusal) + 1
    rates = evaluate_model(
        _RefusingModel(tokenizer), tokenizer, [item], "refuse", tmp_path / "p.jsonl"
    )
    assert rates["pr"] == 100.0 and rates["unparsed"] == 0.0
