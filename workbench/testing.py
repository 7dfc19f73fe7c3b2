"""Tiny random-init HF models of every supported family, saved to a directory (no downloads).

Used by the test suite and the benchmark. Architecture differences are data (a table), not
if-chains.

>>> import tempfile
>>> d = save_tiny_model("llama", tempfile.mkdtemp())
>>> (d / "model.safetensors").exists()
True
"""
from __future__ import annotations

from pathlib import Path

import torch

# family -> (config class name, keyword names for: layers, d_model, heads, d_mlp, context, extra)
FAMILIES: dict[str, tuple[str, dict[str, str], dict]] = {
    "gpt2": ("GPT2Config", dict(layers="n_layer", d_model="n_embd", heads="n_head", d_mlp="n_inner",
                                ctx="n_positions"), {}),
    "gptj": ("GPTJConfig", dict(layers="n_layer", d_model="n_embd", heads="n_head", d_mlp="n_inner",
                                ctx="n_positions"), {"rotary_dim": 4}),
    "gpt_neox": ("GPTNeoXConfig", dict(layers="num_hidden_layers", d_model="hidden_size",
                                       heads="num_attention_heads", d_mlp="intermediate_size",
                                       ctx="max_position_embeddings"), {}),
    "llama": ("LlamaConfig", dict(layers="num_hidden_layers", d_model="hidden_size", heads="num_attention_heads",
                                  d_mlp="intermediate_size", ctx="max_position_embeddings"),
              {"num_key_value_heads": 2}),
    "mistral": ("MistralConfig", dict(layers="num_hidden_layers", d_model="hidden_size",
                                      heads="num_attention_heads", d_mlp="intermediate_size",
                                      ctx="max_position_embeddings"), {"num_key_value_heads": 2}),
    "qwen2": ("Qwen2Config", dict(layers="num_hidden_layers", d_model="hidden_size", heads="num_attention_heads",
                                  d_mlp="intermediate_size", ctx="max_position_embeddings"),
              {"num_key_value_heads": 2}),
}

_TEXT = ("The Eiffel Tower is located in the city of Paris. The Colosseum is located in the city of Rome. "
         "Big Ben is in London, the capital of the United Kingdom. The Louvre is a museum in Paris, France. "
         "Where is the Statue of Liberty? It stands in New York. Berlin is the capital of Germany. ")


def tiny_tokenizer(directory: str | Path, vocab_size: int = 384):
    """A byte-level BPE tokenizer (GPT-2 style: no BOS added) trained on a fixed paragraph."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([_TEXT] * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    fast.save_pretrained(str(directory))
    return AutoTokenizer.from_pretrained(str(directory))


def tiny_config(family: str, n_layers: int = 2, d_model: int = 32, n_heads: int = 4, d_mlp: int | None = None,
                n_ctx: int = 64, vocab_size: int = 384, **overrides):
    """An HF config of ``family`` with the given sizes."""
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
    class_name, keys, extra = FAMILIES[family]
    sizes = dict(layers=n_layers, d_model=d_model, heads=n_heads, d_mlp=d_mlp or 4 * d_model, ctx=n_ctx)
    kwargs = {keys[k]: v for k, v in sizes.items()} | extra | dict(vocab_size=vocab_size) | overrides
    kwargs.setdefault("bos_token_id", 0)
    kwargs.setdefault("eos_token_id", 0)
    kwargs.setdefault("pad_token_id", 0)
    return getattr(transformers, class_name)(**kwargs)


def save_tiny_model(family: str, directory: str | Path, seed: int = 0, pickle_only: bool = False,
                    **sizes) -> Path:
    """Build a random-init ``family`` model with a tokenizer and save both to ``directory``."""
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(directory)
    config = tiny_config(family, vocab_size=max(len(tokenizer), sizes.pop("vocab_size", 0)), **sizes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    if pickle_only:
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
        config.save_pretrained(directory)
    else:
        model.save_pretrained(directory)
    return directory
