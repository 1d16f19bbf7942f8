"""Shared test helpers for the engine: a tiny random Llama and its tokenizer, built offline.

``save_tiny_model(dir)`` writes a complete model directory (config.json, model.safetensors,
tokenizer files) that ``grait_engine.modeling.load_model`` loads like any Hub model. The
tokenizer is a byte-level BPE trained on a few sentences, so it encodes any text losslessly
(vocabulary ``TINY_VOCAB_SIZE``), and prepends ``<s>`` like Llama's. Everything is seeded:
two calls write identical weights and vocabularies.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TINY_VOCAB_SIZE = 320
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")

# Enough text for merges that make prompts and answers a few dozen tokens long.
CORPUS = (
    "The following are multiple choice questions (with answers) about world geography.",
    "Answer the following questions with a short answer.",
    "If you do not know the answer, reply with I don't know.",
    "Question: What is the capital of France?\nA. Paris\nB. Rome\nC. Madrid\nD. Berlin\nAnswer: A",
    "Question: Who wrote Hamlet?\nAnswer: William Shakespeare",
    "Question: How many legs does a spider have?\nAnswer: eight",
    "The river flows to the sea and the mountain stands over the valley.",
)

# A minimal Zephyr-like chat template: role headers, content, end-of-turn token.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_tokenizer(
    with_chat_template: bool = False, with_pad_token: bool = True
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ``<unk> <s> </s> <pad>`` (ids 0-3); BOS is prepended."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>" if with_pad_token else None,
    )
    if with_chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_llama_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """Hidden 32, 2 layers, 4 heads (2 KV heads), MLP 64, vocabulary of ``tokenizer``."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def save_tiny_model(
    directory: str | Path,
    with_chat_template: bool = False,
    with_pad_token: bool = True,
    seed: int = 0,
) -> Path:
    """Write a tiny random Llama and its tokenizer to ``directory`` (created if needed).

    Output: ``directory`` with config.json, generation_config.json, model.safetensors and
    the tokenizer files (plus the chat template when ``with_chat_template``). Weights depend
    only on ``seed``; the global RNG is left untouched.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(with_chat_template, with_pad_token)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_llama_config(tokenizer))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
