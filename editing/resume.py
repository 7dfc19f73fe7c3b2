"""Resume a forward pass at any block from a cached residual stream (exact, every family).

Causal tracing and ROME's value optimisation re-run the same prompts many times with a change
at one layer; everything below that layer never changes. TransformerBridge's own
``start_at_layer`` still executes the lower blocks, so this module records the arguments the HF
model passes to each block during one clean forward (attention mask, rotary position
embeddings, position ids: per block, so mixed sliding-window layouts stay exact) and later calls
the blocks from ``start`` upwards itself. Bridge hooks inside those blocks still fire.

>>> import torch, workbench
>>> from workbench import sites
>>> from workbench.tokens import encode, last_positions
>>> s = workbench.load("factworld")
>>> batch = encode(s, ["The Eiffel Tower is located in the city of"])
>>> stored = {}
>>> blocks, logits = capture(s, batch, storing(stored, [sites.resid_pre(3)]))    # one full forward
>>> resumed = blocks.run(s, stored[sites.resid_pre(3)], start=3, positions=last_positions(batch))  # blocks 3..
>>> torch.allclose(resumed[0], logits[0, -1], atol=1e-4)
True
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.lens import unembed_residual
from workbench.tokens import Batch


def _no_cache(value):
    """Drop KV-cache objects (calling a block again must not append to the clean run's cache)."""
    return None if "Cache" in type(value).__name__ else value


def _expand(value, n: int):
    """Broadcast captured batch-1 tensors (masks, positions, rotary tables) to ``n`` rows."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == 1 and n != 1:
        return value.expand(n, *value.shape[1:])
    if isinstance(value, tuple):
        return tuple(_expand(v, n) for v in value)
    return value


@dataclass
class BlockInputs:
    """The non-residual arguments of every block from one forward pass over a batch."""

    args: list[tuple]  # per block: positional arguments after the hidden state
    kwargs: list[dict]  # per block: keyword arguments
    batch_size: int

    def run(self, session, hidden: Float[Tensor, "rows pos d_model"], start: int,
            positions: Int[Tensor, "rows"] | None = None, unembed: bool = True) -> Tensor:
        """Blocks ``start..n_layers-1`` on ``hidden`` (the residual entering block ``start``), then
        the final norm and unembedding at ``positions`` (one per row; all positions when None);
        with ``unembed=False`` the final residual stream ``(rows, pos, d_model)`` instead.

        ``start == n_layers`` only unembeds. Rows may outnumber the captured batch only when it
        had one prompt (the captured tensors are broadcast).
        """
        n = hidden.shape[0]
        for layer in range(start, session.n_layers):
            args = tuple(_expand(_no_cache(a), n) for a in self.args[layer])
            kwargs = {k: _expand(_no_cache(v), n) for k, v in self.kwargs[layer].items()}
            if "use_cache" in kwargs:
                kwargs["use_cache"] = False
            out = session.bridge.blocks[layer](hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        if not unembed:
            return hidden
        if positions is not None:
            hidden = hidden[torch.arange(n, device=hidden.device), positions.to(hidden.device)]
        return unembed_residual(session, hidden)


def storing(stored: dict, names) -> list[tuple]:
    """Forward hooks that keep each named site's tensor (detached) in ``stored``."""
    def keep(name):
        def hook(tensor, *, hook):  # noqa: ARG001
            stored[name] = tensor.detach()
            return tensor
        return hook
    return [(name, keep(name)) for name in names]


def capture(session, batch: Batch, fwd_hooks: list | None = None) -> tuple[BlockInputs, Tensor]:
    """One forward over ``batch`` recording every block's arguments; returns them and the logits.

    ``fwd_hooks`` (``(site, fn)`` pairs) run during that forward, e.g. to store residuals.
    """
    args: list = [None] * session.n_layers
    kwargs: list = [None] * session.n_layers

    def recorder(layer: int):
        def pre_hook(module, a, kw):  # noqa: ARG001
            args[layer], kwargs[layer] = tuple(a[1:]), dict(kw)
        return pre_hook

    handles = [block.register_forward_pre_hook(recorder(i), with_kwargs=True)
               for i, block in enumerate(session.bridge.blocks)]
    try:
        with session.bridge.hooks(fwd_hooks=fwd_hooks or []):
            logits = session.forward(batch.input_ids, batch.attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return BlockInputs(args, kwargs, batch.input_ids.shape[0]), logits
