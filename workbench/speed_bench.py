"""Speed of the core, as ratios measured in one run (machines here are shared and noisy).

``capture_overhead``: residual stream of every layer at the last position for 64 prompts,
divided by a plain HF forward pass of the same batch. ``stop_early_ratio``: one site at layer
n/4, divided by the same plain forward (which includes the unembedding). Both on a random-init
model of GPT-2-small size built in memory, on ``--device`` (CPU unless asked).
"""
from __future__ import annotations

import tempfile
import time
from typing import Callable

import torch

from workbench import sites
from workbench.activations import collect
from workbench.tokens import encode

def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs after one warm-up (the least noisy estimate on a shared machine);
    each run waits for queued GPU work, if any, before it is timed as finished."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def gpt2_small_session(quick: bool = False, device: str = "cpu"):
    """``(session, plain_hf_model, directory)`` for a random-init GPT-2-small-size model on ``device``."""
    from transformers import AutoModelForCausalLM

    from workbench.session import load
    from workbench.testing import save_tiny_model

    sizes = dict(n_layers=4, d_model=256, n_heads=4, n_ctx=128) if quick else \
        dict(n_layers=12, d_model=768, n_heads=12, n_ctx=1024, vocab_size=50257)
    directory = save_tiny_model("gpt2", tempfile.mkdtemp(prefix="wb-bench-"), **sizes)
    session = load(str(directory), device=device, dtype="float32")
    plain = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").eval().to(session.device)
    return session, plain, directory


def bench_prompts(n: int = 64) -> list[str]:
    subjects = ["The Eiffel Tower", "The Colosseum", "Big Ben", "The Louvre", "The Statue of Liberty", "Berlin"]
    tails = ["is located in the city of", "is in the country of", "is a famous place in", "stands in"]
    return [f"{subjects[i % len(subjects)]} {tails[i % len(tails)]} and {i} more words here" for i in range(n)]


@torch.no_grad()
def core_speed(quick: bool = False, device: str = "cpu") -> dict:
    session, plain, _ = gpt2_small_session(quick, device)
    prompts = bench_prompts()
    batch = encode(session, prompts)
    ids, mask = batch.input_ids.to(session.device), batch.attention_mask.to(session.device)
    all_layers = [sites.resid_post(layer) for layer in range(session.n_layers)]
    quarter = [sites.resid_post(max(session.n_layers // 4 - 1, 0))]
    plain_s = best_time(lambda: plain(ids, attention_mask=mask))
    capture_s = best_time(lambda: collect(session, prompts, all_layers, batch_size=len(prompts)))
    early_s = best_time(lambda: collect(session, prompts, quarter, batch_size=len(prompts)))
    return {"capture_overhead": round(capture_s / plain_s, 3), "stop_early_ratio": round(early_s / plain_s, 3),
            "core_model": f"gpt2 random-init, {session.n_layers} layers, d_model {session.info.d_model}",
            "core_plain_forward_s": round(plain_s, 4), "core_device": str(session.device)}

