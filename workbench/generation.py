"""Text generation (greedy or sampled) through the session's model.

>>> from workbench import load
>>> s = load("factworld", device="cpu")
>>> generate(s, "The Eiffel Tower is located in the city of", max_new_tokens=1).completion
' Paris'
"""
from __future__ import annotations

import math

from dataclasses import asdict, dataclass

import torch

from workbench.errors import WorkbenchError
from workbench.tokens import encode


@dataclass(frozen=True)
class Generation:
    prompt: str
    completion: str
    sampled: bool
    seed: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def generate(session, prompt: str, max_new_tokens: int = 20, temperature: float = 0.0, top_k: int | None = None,
             seed: int | None = 0, stop_at_eos: bool = True) -> Generation:
    """Continue ``prompt``; ``temperature`` 0 is greedy, above 0 samples (seeded)."""
    if max_new_tokens < 1:
        raise WorkbenchError("max_new_tokens must be at least 1")
    if not math.isfinite(temperature) or temperature < 0:
        raise WorkbenchError(f"temperature must be 0 (greedy) or a positive finite number, got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise WorkbenchError(f"top_k must be at least 1, got {top_k!r}")
    if seed is not None and not 0 <= seed < 2**32:
        raise WorkbenchError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    batch = encode(session, [prompt])
    room = session.info.n_ctx - batch.input_ids.shape[1]
    if room <= 0:
        raise WorkbenchError(f"the prompt fills the model's whole context ({session.info.n_ctx} tokens); shorten it")
    sampled = temperature > 0
    kwargs = dict(max_new_tokens=min(max_new_tokens, room), do_sample=sampled,
                  pad_token_id=session.tokenizer.pad_token_id)
    if sampled:
        kwargs.update(temperature=temperature, top_k=top_k or 0)
    if not stop_at_eos:
        kwargs["eos_token_id"] = None
    generator_state = torch.random.get_rng_state()
    try:
        if sampled and seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            out = session.model.generate(batch.input_ids.to(session.device),
                                         attention_mask=batch.attention_mask.to(session.device), **kwargs)
    finally:
        torch.random.set_rng_state(generator_state)
    completion = session.decode(out[0, batch.input_ids.shape[1]:].tolist())
    return Generation(prompt, completion, sampled, seed if sampled else None)
