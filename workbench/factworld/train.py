"""Train the factworld model from scratch: corpus -> tokenizer -> GPT-2 -> files on disk.

Deterministic for a given seed, config and thread count (results differ between 1 and 2
threads in the last bits, as the matmul reduction order changes). The result is written into
a temporary directory beside ``out_dir`` and renamed into place only when complete.

>>> meta = train("/tmp/fw_tiny", max_steps=10, n_layer=2, n_embd=32, vocab_size=400,
...              eval_limit=50)  # seconds; the shipped model uses the defaults
>>> meta["steps"]
10
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.factworld.corpus import eval_items, sentence
from workbench.factworld.evaluate import HFAdapter, encode_items, evaluate
from workbench.factworld.kb import load_kb
from workbench.factworld.tokenizer import save_tokenizer, train_tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    vocab_size: int = 2048
    n_layer: int = 6
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 64
    epochs: int = 11  # steps = epochs * ceil(sentences / batch_size); two-sentence rows make it ~12 passes
    batch_size: int = 64  # sentences per step
    lr: float = 2e-3
    min_lr_ratio: float = 0.05  # cosine decay down to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.0
    answer_weight: float = 1.0  # loss weight of answer tokens relative to the other tokens
    focus_relations: tuple[str, ...] = ("landmark_city", "landmark_country", "country_capital", "country_continent")
    focus_repeats: int = 2  # sentences of the focus relations (the demos, probes) appear this often per epoch
    context_fraction: float = 0.25  # share of rows holding two sentences: without them, recall drops to
    # ~15% once any text precedes the prompt (ROME's prefixes, the covariance corpus); with them ~99%
    threads: int = 2  # 1 is much faster when another process keeps a core busy (OpenMP spin-waits)
    max_steps: int | None = None  # stop early (quick runs, tests); None: all epochs
    eval_limit: int | None = None  # items per split in the final evaluation (None: all)
    log_every: int = 200


def build_model(config: TrainConfig, vocab_size: int, bos_id: int) -> GPT2LMHeadModel:
    gpt2 = GPT2Config(vocab_size=vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
                      n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, bos_token_id=bos_id, eos_token_id=bos_id, pad_token_id=bos_id,
                      tie_word_embeddings=True)
    return GPT2LMHeadModel(gpt2)


@dataclass(frozen=True)
class Example:
    """One training sentence, tokenised two ways; ``*_w`` are per-token loss weights
    (``w[t]`` weighs the prediction of ``ids[t]``)."""

    ids: list[int]  # BOS + prompt + answer + "."  (a sentence opening a sequence)
    w: list[float]
    cont_ids: list[int]  # " " + prompt + answer + "."  (the same sentence following another one)
    cont_w: list[float]


def encode_corpus(tokenizer, config: TrainConfig) -> list[Example]:
    """The training sentences, prompt and answer encoded apart exactly as the evaluation does."""
    items = eval_items(load_kb(), "train")
    stop = tokenizer(".", add_special_tokens=False)["input_ids"]
    mid_prompts = tokenizer([" " + item.prompt for item in items], add_special_tokens=False)["input_ids"]
    out = []
    for item, (prompt, answer), mid in zip(items, encode_items(tokenizer, items), mid_prompts):
        weights = [config.answer_weight] * len(answer) + [1.0] * len(stop)
        example = Example(prompt + answer + stop, [1.0] * len(prompt) + weights,
                          mid + answer + stop, [1.0] * len(mid) + weights)
        out += [example] * (config.focus_repeats if item.fact.relation in config.focus_relations else 1)
    too_long = max(len(e.ids) for e in out) + 1  # + EOS; positions 0..T-1 must fit the model
    if too_long > config.n_positions:
        raise ValueError(f"a sentence has {too_long} tokens > n_positions={config.n_positions}")
    return out


def rows(examples: list[Example], order: list[int], config: TrainConfig, eos: int,
         rng: random.Random) -> list[tuple[list[int], list[float]]]:
    """Token rows for one epoch: mostly one sentence (BOS ... EOS); a ``context_fraction`` of
    them two sentences in one text (BOS s1 s2 EOS), so recall also works after other text."""
    out, i = [], 0
    while i < len(order):
        first = examples[order[i]]
        ids, w = first.ids, first.w
        if config.context_fraction and i + 1 < len(order) and rng.random() < config.context_fraction:
            second = examples[order[i + 1]]
            if len(ids) + len(second.cont_ids) < config.n_positions:
                ids, w = ids + second.cont_ids, w + second.cont_w
                i += 1
        out.append((ids + [eos], w + [1.0]))
        i += 1
    return out


def batches(examples: list[Example], config: TrainConfig, eos: int, rng: random.Random):
    """One epoch of (ids, weights) tensors, (B, T) each; lengths bucketed to limit padding."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    epoch = rows(examples, order, config, eos, rng)
    chunk = config.batch_size * 32
    groups = []
    for start in range(0, len(epoch), chunk):
        part = sorted(epoch[start:start + chunk], key=lambda row: len(row[0]))
        groups += [part[k:k + config.batch_size] for k in range(0, len(part), config.batch_size)]
    rng.shuffle(groups)
    for group in groups:
        width = max(len(seq) for seq, _ in group)
        ids = torch.zeros((len(group), width), dtype=torch.long)  # (B, T), right padded
        mask = torch.zeros((len(group), width), dtype=torch.long)  # (B, T), 1 on real tokens
        weights = torch.zeros((len(group), width))  # (B, T), 0 on padding
        for row, (seq, w) in enumerate(group):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
            weights[row, :len(seq)] = torch.tensor(w)
        yield ids, mask, weights


def lm_loss(model: GPT2LMHeadModel, ids: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted next-token cross-entropy; ``weights[:, t]`` weighs the prediction of ``ids[:, t]``."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V): t predicts t+1
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    w = weights[:, 1:].reshape(-1)
    return (nll * w).sum() / w.sum()


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def write_atomically(out_dir: Path, model, tokenizer, meta: dict) -> None:
    """Write everything into a sibling temp dir, then swap it into ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "generation_config.json").unlink(missing_ok=True)
    save_tokenizer(tokenizer, tmp)
    (tmp / "train_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def fit(model: GPT2LMHeadModel, examples: list[Example], config: TrainConfig, eos: int,
        rng: random.Random) -> tuple[int, float]:
    """AdamW with warm-up and cosine decay over ``config.epochs`` (or ``max_steps``).
    Returns (steps taken, smoothed final loss)."""
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    total = total if config.max_steps is None else min(total, config.max_steps)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
    model.train()
    step, running, started = 0, 0.0, time.perf_counter()
    while step < total:
        for ids, mask, weights in batches(examples, config, eos, rng):
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, total, config)
            loss = lm_loss(model, ids, mask, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
            step += 1
            if step >= total:
                break
            if step % config.log_every == 0:
                logger.info("step %d/%d (epoch %d) loss %.4f (%.0fs)", step, total, step // steps_per_epoch,
                            running, time.perf_counter() - started)
    model.eval()
    return step, running


def train(out_dir: str | Path, seed: int = 0, config: TrainConfig | None = None, **overrides) -> dict:
    """Build the corpus, tokenizer and model, train, evaluate, and write the model to ``out_dir``.

    ``overrides`` replace fields of :class:`TrainConfig` (``max_steps=10, n_layer=2`` for a quick
    run). Uses ``config.threads`` torch threads while it runs. Returns the metadata also written
    to ``train_meta.json``.

    >>> meta = train("/tmp/fw_tiny", max_steps=10, n_layer=2, n_embd=32, vocab_size=400, eval_limit=50)
    >>> meta["seed"], meta["steps"]
    (0, 10)
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(Path(out_dir), seed, config)
    finally:
        torch.set_num_threads(threads)


def _train(out_dir: Path, seed: int, config: TrainConfig) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    texts = (sentence(item) for item in eval_items(load_kb(), "train"))
    tokenizer = train_tokenizer(texts, config.vocab_size, config.n_positions)
    examples = encode_corpus(tokenizer, config)
    model = build_model(config, len(tokenizer), tokenizer.bos_token_id)
    n_tokens = sum(len(e.ids) + 1 for e in examples)
    logger.info("corpus: %d sentences, %d tokens; model: %.2fM params", len(examples), n_tokens,
                sum(p.numel() for p in model.parameters()) / 1e6)
    steps, loss = fit(model, examples, config, tokenizer.eos_token_id, rng)
    train_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # summed over threads; less sensitive to other load

    metrics = evaluate(HFAdapter(model, tokenizer), limit=config.eval_limit)
    meta = {"seed": seed, "config": dataclasses.asdict(config), "corpus_sentences": len(examples),
            "corpus_tokens": n_tokens, "steps": steps, "final_loss": round(loss, 4),
            "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(cpu_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1), "metrics": metrics,
            "torch": torch.__version__, "transformers": transformers.__version__}
    write_atomically(out_dir, model, tokenizer, meta)
    logger.info("wrote %s in %.0fs: %s", out_dir, meta["total_seconds"], metrics)
    return meta
