"""Logit lens: read the residual stream after every layer through the final norm and unembedding.

Shows at which depth the model's answer appears ("when does Paris show up?").

>>> from workbench import load
>>> s = load("factworld", device="cpu")
>>> r = logit_lens(s, "The Eiffel Tower is located in the city of", target=" Paris")
>>> r.layers[-1]["top"][0]["token"]
' Paris'
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites
from workbench.activations import run_to_sites
from workbench.errors import WorkbenchError
from workbench.tokens import encode

MAX_K = 100  # top tokens per layer and position: more would only fill the screen


@dataclass(frozen=True)
class LensResult:
    """Per layer: the top-k next tokens at the last position and the target's probability.

    ``probs`` holds the lens distribution at every (layer, position) for the grid views:
    ``top_ids[l, p, j]`` is the j-th most likely token at layer l, position p.
    """

    prompt: str
    tokens: tuple[str, ...]  # the prompt's tokens, as text
    target: str | None
    target_id: int | None
    top_ids: Tensor  # (layers, pos, k) long
    top_probs: Tensor  # (layers, pos, k)
    target_probs: Tensor | None  # (layers, pos)
    top_strings: tuple[tuple[tuple[str, ...], ...], ...]  # (layers, pos, k)

    @property
    def layers(self) -> list[dict]:
        """JSON-ready rows for the last position."""
        rows = []
        for layer in range(self.top_ids.shape[0]):
            top = [{"token": tok, "prob": float(p)} for tok, p in zip(self.top_strings[layer][-1], self.top_probs[layer, -1])]
            target_prob = None if self.target_probs is None else float(self.target_probs[layer, -1])
            rows.append({"layer": layer, "top": top, "target_prob": target_prob})
        return rows

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "tokens": list(self.tokens), "target": self.target, "layers": self.layers}


def unembed_residual(session, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... vocab"]:
    """Logits that the model would output if ``resid`` were the final residual stream."""
    return session.bridge.unembed(session.bridge.ln_final(resid))


def target_token(session, target: str) -> int:
    """First token id of ``target`` (e.g. ``" Paris"``); an empty target is a clear error."""
    if not target or not target.strip():
        raise WorkbenchError("empty target: give the answer text, e.g. ' Paris'")
    ids = session.token_ids(target)
    if not ids:
        raise WorkbenchError(f"target {target!r} tokenizes to nothing")
    return ids[0]


def logit_lens(session, prompt: str, target: str | None = None, k: int = 5) -> LensResult:
    """The logit lens of ``prompt`` at every layer and position, with ``target``'s probability."""
    vocab = session.info.vocab_size
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(vocab, MAX_K):
        raise WorkbenchError(f"k must be a whole number from 1 to {min(vocab, MAX_K)} (top tokens per layer), got {k!r}")
    batch = encode(session, [prompt])
    layer_sites = [sites.resid_post(layer) for layer in range(session.n_layers)]
    stored = run_to_sites(session, batch, layer_sites, position="all")
    with torch.no_grad():
        resid = torch.stack([stored[name][0] for name in layer_sites])  # (layers, pos, d_model)
        probs = unembed_residual(session, resid).float().softmax(-1)  # (layers, pos, vocab)
        top_probs, top_ids = probs.topk(k, dim=-1)
    target_id = None if target is None else target_token(session, target)
    target_probs = None if target_id is None else probs[..., target_id].cpu()
    strings = tuple(tuple(tuple(session.tokenizer.decode([i]) for i in pos_ids) for pos_ids in layer_ids)
                    for layer_ids in top_ids.tolist())
    tokens = tuple(session.tokenizer.decode([i]) for i in batch.input_ids[0].tolist())
    return LensResult(prompt, tokens, target, target_id, top_ids.cpu(), top_probs.cpu(), target_probs, strings)
