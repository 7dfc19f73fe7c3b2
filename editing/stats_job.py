"""MLP key statistics C = E[k kᵀ] as a sharded job: float64 sums and counts per shard, merged exactly.

The corpus is cut as :func:`editing.covariance.compute_cov` cuts it (the first ``tokens`` real
tokens of its pieces, in order), then grouped into fixed batches of ``batch_size`` pieces: a
batch is the unit of work, so each key is computed in the same batch whatever the sharding, and
``Σ k kᵀ`` is accumulated in float64 (products included). The merged C therefore differs from a
single-process float64 computation over the same tokens only by the order of float64 additions.

>>> import workbench
>>> s = workbench.load("factworld")
>>> stats = sharded_layer_stats(s, 0, tokens=300, shard_size=2)
>>> stats.tokens, stats.cov.shape == (s.info.d_mlp, s.info.d_mlp)
(300, True)
"""
from __future__ import annotations

import base64

import torch
from torch import Tensor

from workbench import runner, sites
from workbench.activations import run_to_sites
from workbench.errors import WorkbenchError, check_layer
from workbench.tokens import encode

from editing.covariance import DEFAULT_TOKENS, LayerStats, corpus_pieces, corpus_texts


def pack(t: Tensor) -> str:
    """A float64 tensor as base64 bytes (exact, JSON-able)."""
    return base64.b64encode(t.detach().to("cpu", torch.float64).contiguous().numpy().tobytes()).decode("ascii")


def unpack(text: str, d: int) -> Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.float64).view(d, d).clone()


def plan(session, corpus: str | None, tokens: int, batch_size: int = 8, max_len: int = 128) -> tuple[str, list]:
    """``(corpus name, items)``: each item a batch ``[[piece, tokens to take], ...]``, ``tokens`` in all."""
    if tokens < 1:
        raise WorkbenchError("--tokens must be at least 1")
    name, texts = corpus_texts(session, corpus)
    pieces = corpus_pieces(session, texts, max_len)
    lengths = [len(ids) for ids in session.tokenizer(pieces)["input_ids"]]
    chosen, left = [], tokens
    for piece, n in zip(pieces, lengths):
        if left <= 0:
            break
        chosen.append([piece, min(n, left)])
        left -= min(n, left)
    return name, [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]


def _key_rows(session, batches: list, layer: int):
    """Per batch, the keys of its taken tokens: ``(n, d_mlp)`` float64."""
    site = sites.mlp_key(layer)
    with torch.no_grad():
        for items in batches:
            batch = encode(session, [p for p, _ in items])
            keys = run_to_sites(session, batch, [site], position="all")[site]  # (B, T, d_mlp)
            yield torch.cat([keys[i, :take] for i, (_, take) in enumerate(items)]).double()


def stats_shard(session, batches: list, params: dict) -> dict:
    """The runner's work: ``Σ k kᵀ`` (float64) and the token count over the shard's batches."""
    total, count = None, 0
    for rows in _key_rows(session, batches, params["layer"]):
        total = rows.T @ rows if total is None else total + rows.T @ rows
        count += rows.shape[0]
    return {"d": int(total.shape[0]), "count": count, "sum": pack(total)}


def merge_stats(parts: list[dict]) -> dict:
    """Add the shards' float64 sums and counts (in shard order)."""
    total = unpack(parts[0]["sum"], parts[0]["d"])
    for part in parts[1:]:
        total += unpack(part["sum"], part["d"])
    return {"d": parts[0]["d"], "count": sum(p["count"] for p in parts), "sum": pack(total)}


def sharded_cov(session, layer: int, corpus: str | None = None, tokens: int = DEFAULT_TOKENS, out=None,
                engine=None, shard_size: int = 4, model_spec: dict | None = None, batch_size: int = 8):
    """``(C in float64, tokens, corpus name, runner outcome)`` computed as a sharded job (in this
    process, or on Ray with ``engine``). The driver's ``session`` plans the corpus (its tokenizer);
    Ray workers load ``model_spec``."""
    layer = check_layer(layer, session.n_layers)
    name, items = plan(session, corpus, tokens, batch_size)
    job = runner.Job("stats", items, stats_shard, merge_stats, {"layer": layer, "corpus": name, "tokens": tokens},
                     shard_size)
    spec = model_spec or {"spec": session.name, "dtype": str(session.dtype)[6:]}
    outcome = runner.run(job, spec, out=out, engine=engine or runner.InProcess(session))
    merged = outcome.result
    return unpack(merged["sum"], merged["d"]) / merged["count"], merged["count"], name, outcome


def sharded_layer_stats(session, layer: int, corpus: str | None = None, tokens: int = DEFAULT_TOKENS,
                        **run_options) -> LayerStats:
    """:func:`sharded_cov` as the :class:`~editing.covariance.LayerStats` editing uses (float32 C)."""
    cov, count, name, _ = sharded_cov(session, layer, corpus, tokens, **run_options)
    return LayerStats(layer, cov.float(), count, name)


def float64_sum(session, layer: int, corpus: str | None, tokens: int, batch_size: int = 8) -> tuple[Tensor, int]:
    """The single-process reference: ``(KᵀK, n)`` with every key of the same tokens in one float64
    product (a different order of additions than the shards' sums)."""
    _, items = plan(session, corpus, tokens, batch_size)
    keys = torch.cat(list(_key_rows(session, items, check_layer(layer, session.n_layers))))  # (n, d_mlp)
    return keys.T @ keys, keys.shape[0]
