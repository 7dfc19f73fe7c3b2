"""Byte-level BPE tokenizer trained on the factworld corpus.

The vocabulary is small (2,048 by default) so that most subjects span several tokens, as they
do in real models (" Eiffel Tower" -> " E" "iff" "el" " Tower"). ``<|endoftext|>`` (id 0) is BOS,
EOS and PAD; the post-processor prepends it to every encoding, with offsets (0, 0).

>>> tok = train_tokenizer(["The Eiffel Tower is located in the city of Paris."], vocab_size=300)
>>> ids = tok("The Eiffel Tower")["input_ids"]
>>> ids[0] == tok.bos_token_id
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, max_length: int = 64) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` (deduplicated and sorted first, so the result
    depends only on the set of texts) and wrap it as a ``PreTrainedTokenizerFast``."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(sorted(set(texts)), trainer)
    bos_id = bpe.token_to_id(SPECIAL)
    bpe.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=True),
        processors.TemplateProcessing(single=f"{SPECIAL} $A", pair=f"{SPECIAL} $A {SPECIAL} $B:1",
                                      special_tokens=[(SPECIAL, bos_id)]),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL,
                                   unk_token=SPECIAL, model_max_length=max_length, padding_side="right")


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (read by older
    transformers releases; ``AutoTokenizer.from_pretrained(directory)`` loads all of them)."""
    tokenizer.save_pretrained(directory)
    special = {"bos_token": SPECIAL, "eos_token": SPECIAL, "pad_token": SPECIAL, "unk_token": SPECIAL}
    (Path(directory) / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
