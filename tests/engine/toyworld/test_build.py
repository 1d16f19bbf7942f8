"""A built ``tiny`` toy world: layout of API.md, loadable model, valid data, cache reuse."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from grait_engine.artifacts import read_manifest
from grait_engine.machine import cpu_model
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.prompts import build_prompt, target_text
from grait_engine.records.jsonl import read_items
from grait_engine.toyworld import build_toyworld, preset
from grait_engine.toyworld.qa import SPLITS


def test_layout_and_data_validate(tiny_world):
    truth = json.loads(tiny_world.truth_path.read_text())
    for task in ("open", "choice"):
        for split in SPLITS:
            items = read_items(tiny_world.data_path(task, split), task)
            assert items, f"{task}/{split} is empty"
            assert all(item.id in truth for item in items)
            for item in items:  # ground truth in the data (meta.seen, meta.known)
                assert item.meta["seen"] == truth[item.id]["seen"]
                assert item.meta["known"] == truth[item.id]["known"]
    assert {entry["class"] for entry in truth.values()} == {"many", "rare", "never"}
    assert (tiny_world.model_dir / "model.safetensors").is_file()
    assert not list(tiny_world.model_dir.glob("*.bin"))
    assert read_manifest(tiny_world.root) is not None


def test_model_loads_and_tokenizer_covers_every_prompt(tiny_world):
    model, tokenizer = load_model(ModelSpec(str(tiny_world.model_dir)))
    assert not getattr(tokenizer, "chat_template", None)
    for task in ("open", "choice"):
        for item in read_items(tiny_world.data_path(task, "test_ood"), task)[:20]:
            for style in ("basic", "refuse"):
                text = build_prompt(item, style, tokenizer=tokenizer) + target_text(
                    item, refuse=True
                )
                ids = tokenizer(text)["input_ids"]
                assert ids[0] == tokenizer.bos_token_id
                assert tokenizer.decode(ids, skip_special_tokens=True) == text
                assert len(ids) < model.config.max_position_embeddings


def test_pretrained_model_answers_in_format(tiny_world):
    """Both prompt styles give parseable answers on the pretrained tiny model."""
    for key, per_class in tiny_world.stats["check"].items():
        assert per_class["all"].get("unparsed", 0.0) <= 0.05, key


def test_second_build_reuses_the_world(tiny_world):
    before = tiny_world.model_dir.joinpath("model.safetensors").stat().st_mtime_ns
    again = build_toyworld(preset("tiny", seed=0), tiny_world.root)
    assert again.cached and again.config_hash == tiny_world.config_hash
    assert tiny_world.model_dir.joinpath("model.safetensors").stat().st_mtime_ns == before


def test_cli_reuses_the_world(tiny_world):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grait_cli.main",
            "toyworld",
            "--out",
            str(tiny_world.root),
            "--size",
            "tiny",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "reused" in result.stdout


def test_cli_rejects_unknown_size():
    result = subprocess.run(
        [sys.executable, "-m", "grait_cli.main", "toyworld", "--out", "/tmp/x", "--size", "huge"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "invalid choice" in result.stderr


def test_stats_show_knowledge_rising_with_exposure(tiny_world):
    stats = json.loads((tiny_world.root / "stats.json").read_text())
    # The build machine, so that a world rebuilt elsewhere can be told apart.
    assert stats["cpu_capability"] and stats["cpu_model"] == cpu_model()
    assert stats["torch"] == torch.__version__ and stats["torch_threads"] == 1
    assert stats["transformers"] and stats["tokenizers"]
    curve = stats["knowledge"]["by_exposure"]
    assert curve["0"]["known"] == 0.0 < 0.1 < curve["64+"]["known"]
    # Every known fact is answered greedily right; greedy_right also counts lucky guesses.
    assert all(b["known"] <= b["greedy_right"] for b in curve.values())
    truth = json.loads(tiny_world.truth_path.read_text())
    never = [t for t in truth.values() if t["seen"] == 0]
    assert not any(t["known"] for t in never)  # a lucky guess is not knowledge


def test_known_is_a_right_answer_given_more_probability_than_a_guess(tiny_world):
    """truth.json's p_value is the probability of the gold answer after the 0-shot basic
    prompt (recomputed here from the full logits, one item at a time); a known fact was
    seen and is answered greedily right (the rule itself: test_truth.py)."""
    import torch

    from grait_engine.toyworld.check import grade, greedy_answers

    truth = json.loads(tiny_world.truth_path.read_text())
    model, tokenizer = load_model(ModelSpec(str(tiny_world.model_dir)))
    pool = read_items(tiny_world.data_path("open", "train"), "open")
    known_items = [item for item in pool if truth[item.id]["known"]][:10]
    unknown_items = [item for item in pool if not truth[item.id]["known"]][:10]
    assert known_items and unknown_items
    sample = known_items + unknown_items
    with torch.no_grad():
        for item in sample:
            prompt = build_prompt(item, "basic", tokenizer=tokenizer)
            prompt_ids = tokenizer(prompt)["input_ids"]
            full_ids = tokenizer(prompt + target_text(item))["input_ids"]
            log_probs = model(torch.tensor([full_ids])).logits[0].float().log_softmax(-1)
            total = sum(
                log_probs[k - 1, full_ids[k]].item() for k in range(len(prompt_ids), len(full_ids))
            )
            assert abs(truth[item.id]["p_value"] - float(torch.tensor(total).exp())) < 2e-3
    prompts = [build_prompt(item, "basic", tokenizer=tokenizer) for item in known_items]
    outputs = greedy_answers(model, tokenizer, prompts, 12)
    assert all(grade(i, o) == "correct" for i, o in zip(known_items, outputs, strict=True))


def test_stats_show_the_probe_against_the_truth(tiny_world):
    """stats.json records how well the engine's probe ranks known above unknown pool items."""
    stats = json.loads((tiny_world.root / "stats.json").read_text())
    truth = json.loads(tiny_world.truth_path.read_text())
    for task in ("open", "choice"):
        pool = read_items(tiny_world.data_path(task, "train"), task)
        probe = stats["probe_auroc"][task]
        assert probe["n_known"] == sum(truth[item.id]["known"] for item in pool)
        assert probe["n_known"] + probe["n_unknown"] == len(pool)
        assert 0.0 <= probe["idk_known"] <= 1.0
    # The tiny model's open answers track what it knows far better than chance.
    assert stats["probe_auroc"]["open"]["auroc"] > 0.75
    assert stats["probe_auroc"]["choice"]["auroc"] > 0.5


def test_a_rebuilt_world_lists_every_file_but_its_manifest(tmp_path):
    """A rebuild over an earlier world must not list the earlier manifest (it is rewritten
    last, so listing it made the new manifest fail its own check)."""
    from grait_engine.toyworld.build import world_files

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "stats.json").write_text("{}")
    assert world_files(tmp_path) == ["data/train.jsonl", "stats.json"]
