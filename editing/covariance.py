"""Second moment C = E[k kᵀ] of MLP keys at one layer, over a text corpus, cached on disk.

ROME and MEMIT solve against C so an edit disturbs typical keys as little as possible. Only the
layers up to the MLP key are run (the forward stops there), sums accumulate in float64, and the
result is cached in the user cache directory under a key made of: a hash of exactly the weights
the keys depend on (embeddings, blocks below the layer, the layer's own input side: so edits of
MLP output projections at this layer or above keep the cache valid), the layer, the corpus hash
and the token count.

>>> import workbench
>>> s = workbench.load("factworld")
>>> stats = layer_stats(s, layer=0)           # computed once, then read from the cache
>>> stats.cov.shape == (s.info.d_mlp, s.info.d_mlp), stats.corpus
(True, 'factworld')
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites
from workbench.activations import batches, run_to_sites
from workbench.errors import WorkbenchError, check_layer
from workbench.gram import add_gram, mirror
from workbench.modules import matrix
from workbench.tokens import encode

log = logging.getLogger(__name__)

DEFAULT_TOKENS = 100_000
CHUNK_CHARS = 600  # corpus texts are cut into pieces of about this many characters


@dataclass(frozen=True)
class LayerStats:
    """C = E[k kᵀ] (float32, CPU) of the MLP keys at ``layer`` over ``tokens`` corpus tokens."""

    layer: int
    cov: Float[Tensor, "d_mlp d_mlp"]
    tokens: int
    corpus: str
    identity: bool = False  # True for the C = I fallback (no statistics)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "tokens": self.tokens, "corpus": self.corpus, "identity": self.identity,
                "trace": float(self.cov.trace())}


def cache_dir() -> Path:
    """``$WORKBENCH_CACHE/stats`` or ``~/.cache/open-weights-workbench/stats``."""
    root = os.environ.get("WORKBENCH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) \
        / "open-weights-workbench"
    return Path(root) / "stats"


# ---- corpus ------------------------------------------------------------------------------------------
def corpus_texts(session, corpus: str | None) -> tuple[str, list[str]]:
    """``(name, texts)``: factworld's own corpus, a local text file or folder, or a named HF dataset."""
    if corpus is None:
        if session.source.kind != "factworld":
            raise WorkbenchError("covariance statistics need a text corpus for this model: pass --corpus FILE|DIR "
                                 "(or a Hugging Face dataset name), or --no-cov to use C = I")
        from workbench.factworld.corpus import training_sentences
        from workbench.factworld.kb import load_kb

        sentences = list(training_sentences(load_kb()))
        return "factworld", _pack(sentences)
    path = Path(os.path.expanduser(corpus))
    if path.is_file():
        return str(path.resolve()), _pack(path.read_text(encoding="utf-8", errors="replace").split("\n"))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in {".txt", ".md", ".jsonl", ""})
        if not files:
            raise WorkbenchError(f"corpus folder {path} holds no .txt files")
        lines = [line for p in files for line in p.read_text(encoding="utf-8", errors="replace").split("\n")]
        return str(path.resolve()), _pack(lines)
    return corpus, _pack(_hf_dataset(corpus))


def _hf_dataset(name: str) -> list[str]:
    try:
        import datasets
    except ImportError:
        raise WorkbenchError(f"corpus {name!r} is not a file or folder, and the `datasets` package is missing") from None
    parts = name.split(":")
    try:
        ds = datasets.load_dataset(parts[0], parts[1] if len(parts) > 1 else None, split="train", streaming=True)
        return [row["text"] for _, row in zip(range(20_000), ds) if row.get("text")]
    except Exception as exc:  # network or name problems
        raise WorkbenchError(f"cannot read corpus {name!r}: not a local file or folder, and the HF dataset is not "
                             f"reachable ({type(exc).__name__}); pass --corpus PATH") from None


def _pack(lines: list[str]) -> list[str]:
    """Join short lines into pieces of about CHUNK_CHARS characters (fewer, fuller sequences)."""
    out, current = [], ""
    for line in (s.strip() for s in lines):
        if not line:
            continue
        current = f"{current} {line}" if current else line
        if len(current) >= CHUNK_CHARS:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    if not out:
        raise WorkbenchError("the corpus is empty")
    return out


def _hash_texts(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def key_weights_hash(session, layer: int) -> str:
    """Hash of the weights the MLP keys at ``layer`` can depend on (not MLP output projections at
    ``layer`` or above, nor the blocks above ``layer``)."""
    skip = {matrix(session, layer, "mlp_out").weight.data_ptr()}
    for block in session.bridge.blocks[layer + 1:]:
        skip |= {p.data_ptr() for p in block.parameters()}
    digest = hashlib.sha256()
    seen: set[int] = set()
    for name, param in sorted(session.model.named_parameters()):
        ptr = param.data_ptr()
        if ptr in skip or ptr in seen:
            continue
        seen.add(ptr)
        digest.update(name.replace("._original_component", "").encode())
        digest.update(param.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


# ---- computing ---------------------------------------------------------------------------------------
def corpus_pieces(session, texts: list[str], max_len: int = 128) -> list[str]:
    """``texts`` cut into consecutive windows of at most ``max_len`` tokens (nothing dropped)."""
    tokenizer = session.tokenizer
    max_len = min(max_len, session.info.n_ctx - 4)  # margin: BOS, and re-tokenising a cut text can add a token
    pieces = [tokenizer.decode(ids[i:i + max_len]) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]
              for i in range(0, len(ids), max_len)]
    return [p for p in pieces if p.strip()]


def compute_cov(session, layer: int, texts: list[str], tokens: int, batch_size: int = 8,
                max_len: int = 128, progress: bool | None = None) -> tuple[Tensor, int]:
    """``(E[k kᵀ], n)`` over the first ``tokens`` real tokens of ``texts``."""
    site = sites.mlp_key(layer)
    d = session.info.d_mlp or matrix(session, layer, "mlp_out").as_out_in().shape[1]
    total = torch.zeros(d, d, dtype=torch.float64, device=session.device)
    count = 0
    pieces = corpus_pieces(session, texts, max_len)
    with torch.no_grad():
        for chunk in batches(len(pieces), batch_size, progress, desc=f"stats layer {layer}"):
            batch = encode(session, pieces[chunk])
            keys = run_to_sites(session, batch, [site], position="all")[site]  # (B, T, d_mlp), pads zeroed
            mask = batch.attention_mask.to(keys.device).bool()
            n_real = int(mask.sum())
            if count + n_real > tokens or n_real < 0.9 * mask.numel():  # real rows only (and the last batch cut)
                flat = keys[mask][: tokens - count]
            else:  # little padding: zero rows add nothing to the sum
                flat = keys.flatten(0, 1)
            add_gram(total, flat.float())
            count += min(n_real, tokens - count)
            if count >= tokens:
                break
    if count == 0:
        raise WorkbenchError("the corpus produced no tokens")
    if count < tokens:
        log.info("corpus has only %d tokens (asked for %d)", count, tokens)
    return (mirror(total) / count).float().cpu(), count


def layer_stats(session, layer: int, corpus: str | None = None, tokens: int = DEFAULT_TOKENS,
                use_cache: bool = True, progress: bool | None = None) -> LayerStats:
    """C at ``layer`` from the cache, or computed (and cached) when missing.

    >>> import workbench
    >>> layer_stats(workbench.load("factworld"), 0, tokens=20_000).tokens
    20000
    """
    layer = check_layer(layer, session.n_layers)
    if tokens < 1:
        raise WorkbenchError("--tokens must be at least 1")
    name, texts = corpus_texts(session, corpus)
    key = hashlib.sha256(json.dumps([key_weights_hash(session, layer), layer, _hash_texts(texts), tokens])
                         .encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.safetensors"
    if use_cache and path.exists():
        from safetensors.torch import load_file

        data = load_file(str(path))
        log.info("stats for layer %d from cache %s", layer, path)
        return LayerStats(layer, data["cov"], int(data["count"]), name)
    cov, count = compute_cov(session, layer, texts, tokens, progress=progress)
    if use_cache:
        from safetensors.torch import save as save_bytes

        from workbench.io import write_bytes

        write_bytes(path, save_bytes({"cov": cov.contiguous(), "count": torch.tensor(count)},
                                     metadata={"layer": str(layer), "corpus": name, "model": session.name}))
    return LayerStats(layer, cov, count, name)


def identity_stats(session, layer: int) -> LayerStats:
    """C = I: no statistics (the edit then ignores how keys are distributed)."""
    log.warning("no covariance statistics: using C = I (edits may disturb other facts more)")
    d = matrix(session, layer, "mlp_out").as_out_in().shape[1]
    return LayerStats(layer, torch.eye(d), 0, "identity", identity=True)


def get_stats(session, layer: int, no_cov: bool = False, **kwargs) -> LayerStats:
    return identity_stats(session, layer) if no_cov else layer_stats(session, layer, **kwargs)
