"""Causal tracing (Meng et al. 2022): where does the model recall a fact?

Noise (default 3 × the std of the subject tokens' embeddings, 10 seeded samples) corrupts the
subject; then the clean state at one (token, layer) is restored and the probability of the true
answer is recorded. Kinds: ``resid`` (the residual after one layer), ``mlp`` and ``attn`` (the
module outputs over a window of consecutive layers: by default a quarter of the depth, 1 to 10
layers (:func:`default_window`), since a window spanning the model would flatten every row).

Exact schedule: the clean and corrupted runs are done once; a restoration that starts at layer
``l`` shares everything below ``l`` with the corrupted run, so it resumes there
(:mod:`editing.resume`) and only the last position is unembedded; many restorations share one
forward (rows). Tokens before the subject are identical in both runs, so their restorations
equal the corrupted probability and are not run. The reference code runs one full forward per
cell. ``method="attribution"``: attribution patching, the whole grid from one forward and one
backward pass (a first-order estimate; see its rank correlation with the exact grid).

>>> import workbench
>>> s = workbench.load("factworld")
>>> r = causal_trace(s, "The {} is located in the city of", "Eiffel Tower", kinds="mlp", samples=3)
>>> r.target, r.scores["mlp"].shape == (s.n_layers, len(r.tokens))
(' Paris', True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites
from workbench.errors import WorkbenchError
from workbench.lens import target_token
from workbench.report import Section, num, table
from workbench.tokens import encode, fill, subject_span

from editing.resume import capture, storing
from editing.targets import frozen_weights

KINDS = ("resid", "mlp", "attn")
_SITE = {"mlp": "mlp_out", "attn": "attn_out"}
ROW_BUDGET = 1 << 22  # values in one (rows, tokens, d_mlp) activation of a resumed forward


@dataclass(frozen=True)
class TraceResult:
    """Probabilities of ``target`` after restoring each (layer, token) state (``scores[kind]``)."""

    prompt: str
    subject: str
    target: str
    tokens: tuple[str, ...]
    subject_range: tuple[int, int]
    clean_prob: float
    corrupted_prob: float
    scores: dict[str, Float[Tensor, "layers tokens"]]
    noise: float
    samples: int
    window: int
    method: str = "exact"
    timings: dict = field(default_factory=dict)

    def peak(self, kind: str = "mlp") -> tuple[int, int]:
        """(layer, token) of the highest score."""
        grid = self.scores[kind]
        flat = int(grid.argmax())
        return flat // grid.shape[1], flat % grid.shape[1]

    def peak_layer(self, kind: str, token: int) -> int:
        """Layer of the highest ``kind`` score at token position ``token`` (``-1``: the last token).
        ROME's two sites: ``peak_layer("mlp", subject_range[1] - 1)`` (early, the subject's last
        token) and ``peak_layer("attn", -1)`` (late, the last token)."""
        return int(self.scores[kind][:, token].argmax())

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "subject": self.subject, "target": self.target, "tokens": list(self.tokens),
                "subject_range": list(self.subject_range), "clean_prob": self.clean_prob,
                "corrupted_prob": self.corrupted_prob, "noise": self.noise, "samples": self.samples,
                "window": self.window, "method": self.method,
                "scores": {k: v.tolist() for k, v in self.scores.items()}}

    def to_section(self, image: bytes | None = None) -> Section:
        """The report section: each kind's peak, the clean and corrupted probabilities, the heatmaps."""
        rows = [("restored", "peak score", "layer", "token")]
        for kind, grid in self.scores.items():
            layer, token = self.peak(kind)
            rows.append((kind, num(float(grid[layer, token])), layer, repr(self.tokens[token])))
        text = (f"Prompt {self.prompt!r}, subject {self.subject!r}, answer {self.target!r}: P(answer) clean "
                f"{num(self.clean_prob)}, with the subject corrupted {num(self.corrupted_prob)} ({self.method}, "
                f"{self.samples} noise samples, window {self.window}).")
        return Section(f"Causal trace: {self.subject}", "trace", text, (table(rows),), (image,) if image else ())


def default_window(n_layers: int) -> int:
    """Layers restored together for the MLP and attention traces: a quarter of the depth, 1 to 10
    (ROME's 10 on GPT-2 XL's 48 layers; a 10-layer window on a 6-layer model restores everything at once).

    >>> default_window(6), default_window(12), default_window(48), default_window(2)
    (1, 3, 10, 1)
    """
    return max(1, min(10, n_layers // 4))


def _window(layer: int, window: int, n_layers: int) -> tuple[int, int]:
    return max(0, layer - window // 2), min(n_layers, layer - (-window // 2))


def _prepare(session, prompt: str, subject: str, target: str | None, kinds, samples: int, noise: float | None,
             seed: int):
    if "{}" not in prompt:
        raise WorkbenchError(f"prompt {prompt!r} must hold '{{}}' where the subject goes")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise WorkbenchError(f"unknown trace kind {bad[0]!r}: use {', '.join(KINDS)} or all")
    if samples < 1:
        raise WorkbenchError("--samples must be at least 1")
    text, at = fill(prompt, subject)
    batch = encode(session, [text])
    span = subject_span(batch, 0, at)  # the tokens where {} stands
    n_layers = session.n_layers
    stored: dict[str, Tensor] = {}
    names = [sites.EMBED] + [sites.resid_pre(l) for l in range(n_layers)] + [sites.resid_post(n_layers - 1)]
    names += [sites.site(_SITE[k], l) for k in kinds if k in _SITE for l in range(n_layers)]
    with torch.no_grad():
        blocks, logits = capture(session, batch, storing(stored, names))
    last = int(batch.lengths[0]) - 1
    if target is None:
        target_id = int(logits[0, last].argmax())
    else:
        target_id = target_token(session, target if target.startswith(" ") or prompt.endswith(" ") else " " + target)
    clean = {n: t[0] for n, t in stored.items()}
    emb = clean[sites.EMBED][span[0]:span[1]].float()
    scale = 3.0 * float(emb.std()) if noise is None else float(noise)
    gen = torch.Generator().manual_seed(seed)
    eps = (torch.randn(samples, span[1] - span[0], emb.shape[-1], generator=gen) * scale).to(session.device)
    clean_prob = float(logits[0, last].float().softmax(-1)[target_id])
    return text, batch, span, blocks, clean, eps, scale, last, target_id, clean_prob


def causal_trace(session, prompt: str, subject: str, target: str | None = None, kinds=KINDS, samples: int = 10,
                 noise: float | None = None, window: int | None = None, seed: int = 0, method: str = "exact",
                 max_rows: int | None = None) -> TraceResult:
    """Trace where ``subject``'s fact is recalled in ``prompt`` (``{}`` marks the subject).

    ``target`` defaults to the model's answer. Returns probabilities of the target per kind,
    ``(n_layers, n_tokens)``. ``max_rows``: rows per resumed forward (default: as many as keep
    one MLP activation near :data:`ROW_BUDGET` values; larger batches leave the CPU caches).
    ``window``: layers restored together for ``mlp`` and ``attn`` (None: :func:`default_window`).
    """
    kinds = tuple(KINDS if kinds in ("all", None) else ([kinds] if isinstance(kinds, str) else kinds))
    window = default_window(session.n_layers) if window is None else int(window)
    if window < 1:
        raise WorkbenchError(f"--window must be at least 1 (got {window})")
    if method not in ("exact", "attribution"):
        raise WorkbenchError(f"unknown trace method {method!r}: use exact or attribution")
    text, batch, span, blocks, clean, eps, scale, last, target_id, clean_prob = _prepare(
        session, prompt, subject, target, kinds, samples, noise, seed)
    ids = batch.input_ids.expand(samples, -1)
    mask = batch.attention_mask.expand(samples, -1)
    corrupted: dict[str, Tensor] = {}

    def corrupt(tensor, *, hook):  # noqa: ARG001
        return torch.cat([tensor[:, :span[0]], tensor[:, span[0]:span[1]] + eps.to(tensor.dtype),
                          tensor[:, span[1]:]], dim=1)

    if method == "attribution":
        scores, corrupted_prob = _attribution(session, ids, mask, corrupt, clean, kinds, window, last, target_id)
    else:
        n_layers = session.n_layers
        names = [sites.resid_pre(l) for l in range(n_layers)] + [sites.resid_post(n_layers - 1)]
        with torch.no_grad(), session.bridge.hooks(fwd_hooks=[(sites.EMBED, corrupt)] + storing(corrupted, names)):
            logits = session.forward(ids, mask)
        corrupted_prob = float(logits[:, last].float().softmax(-1)[:, target_id].mean())
        scores = _exact(session, blocks, clean, corrupted, kinds, span, window, last, target_id, samples,
                        corrupted_prob, max_rows)
    tokens = tuple(session.tokenizer.decode([i]) for i in batch.input_ids[0].tolist())
    return TraceResult(prompt, subject, session.decode([target_id]), tokens, span, clean_prob, corrupted_prob,
                       scores, scale, samples, window, method)


def _resid(states: dict, layer: int, n_layers: int) -> Tensor:
    """The residual entering block ``layer`` (``layer == n_layers``: the final residual)."""
    return states[sites.resid_pre(layer)] if layer < n_layers else states[sites.resid_post(n_layers - 1)]


def _exact(session, blocks, clean, corrupted, kinds, span, window, last, target_id, samples, corrupted_prob,
           max_rows) -> dict[str, Tensor]:
    n_layers = session.n_layers
    n_tokens = clean[sites.resid_pre(0)].shape[0]
    scores = {k: torch.full((n_layers, n_tokens), corrupted_prob) for k in kinds}
    cells = []  # (start, kind, layer, token, lo, hi)
    for kind in kinds:
        for layer in range(n_layers):
            for tok in range(span[0], n_tokens):  # earlier tokens: identical in both runs
                lo, hi = (layer, layer + 1) if kind == "resid" else _window(layer, window, n_layers)
                cells.append((layer + 1 if kind == "resid" else lo, kind, layer, tok, lo, hi))
    cells.sort()
    if max_rows is None:
        width = max(session.info.d_mlp, session.info.d_model)
        max_rows = min(512, ROW_BUDGET // (n_tokens * width))
    per_chunk = max(1, max_rows // samples)
    groups: dict[int, list] = {}
    for cell in cells:
        groups.setdefault(cell[0], []).append(cell)
    with torch.no_grad():
        for start, group in groups.items():
            for c0 in range(0, len(group), per_chunk):
                chunk = group[c0:c0 + per_chunk]
                probs = _run_cells(session, blocks, clean, corrupted, chunk, start, last, target_id, samples)
                for (_, kind, layer, tok, _, _), p in zip(chunk, probs):
                    scores[kind][layer, tok] = p
    return scores


def _run_cells(session, blocks, clean, corrupted, chunk, start, last, target_id, samples) -> list[float]:
    n_layers = session.n_layers
    device = session.device
    hidden = _resid(corrupted, start, n_layers).repeat(len(chunk), 1, 1)  # (cells*samples, T, d)
    toks = torch.tensor([c[3] for c in chunk], device=device).repeat_interleave(samples)
    rows = torch.arange(hidden.shape[0], device=device)
    resid_rows = torch.tensor([c[1] == "resid" for c in chunk], device=device).repeat_interleave(samples)
    if bool(resid_rows.any()):
        clean_state = _resid(clean, start, n_layers)  # (T, d)
        hidden[rows[resid_rows], toks[resid_rows]] = clean_state[toks[resid_rows]]
    hooks = []
    for kind in ("mlp", "attn"):
        mine = [c for c in chunk if c[1] == kind]
        if not mine:
            continue
        kind_rows = torch.tensor([c[1] == kind for c in chunk], device=device).repeat_interleave(samples)
        lo = torch.tensor([c[4] for c in chunk], device=device).repeat_interleave(samples)
        hi = torch.tensor([c[5] for c in chunk], device=device).repeat_interleave(samples)
        for layer in range(start, max(c[5] for c in mine)):
            name = sites.site(_SITE[kind], layer)
            sel = kind_rows & (lo <= layer) & (layer < hi)
            if bool(sel.any()):
                hooks.append((name, _restorer(rows[sel], toks[sel], clean[name])))
    with session.bridge.hooks(fwd_hooks=hooks):
        logits = blocks.run(session, hidden, start, positions=torch.full_like(rows, last))
    probs = logits.float().softmax(-1)[:, target_id].view(len(chunk), samples).mean(1)
    return probs.tolist()


def _restorer(rows: Tensor, toks: Tensor, clean_state: Tensor):
    def hook(tensor, *, hook):  # noqa: ARG001
        tensor = tensor.clone()
        tensor[rows, toks] = clean_state[toks].to(tensor.dtype)
        return tensor
    return hook


def _attribution(session, ids, mask, corrupt, clean, kinds, window, last, target_id):
    """First-order estimate of every restoration: P_corrupt + (clean − corrupt) · ∂P/∂state."""
    n_layers = session.n_layers
    states: dict[str, Tensor] = {}

    def keep(name):
        def hook(tensor, *, hook):  # noqa: ARG001
            tensor.retain_grad()
            states[name] = tensor
            return tensor
        return hook

    def corrupt_grad(tensor, *, hook):
        return corrupt(tensor, hook=hook).requires_grad_(True)

    names = {"resid": [sites.resid_pre(l + 1) if l + 1 < n_layers else sites.resid_post(l) for l in range(n_layers)],
             "mlp": [sites.mlp_out(l) for l in range(n_layers)], "attn": [sites.attn_out(l) for l in range(n_layers)]}
    wanted = sorted({n for k in kinds for n in names[k]}, key=sites.order)
    with frozen_weights(session), torch.enable_grad(), session.bridge.hooks(
            fwd_hooks=[(sites.EMBED, corrupt_grad)] + [(n, keep(n)) for n in wanted]):
        logits = session.forward(ids, mask)
        prob = logits[:, last].float().softmax(-1)[:, target_id].mean()
        prob.backward()
    base = float(prob.detach())
    clean_all = dict(clean)
    scores = {}
    for kind in kinds:
        per_layer = torch.stack([((clean_all[n].unsqueeze(0) - states[n].detach()) * states[n].grad).sum(-1).mean(0)
                                 for n in names[kind]]).float().cpu()  # (layers, T)
        if kind != "resid":
            per_layer = torch.stack([per_layer[slice(*_window(l, window, n_layers))].sum(0) for l in range(n_layers)])
        scores[kind] = base + per_layer
    return scores, base


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two grids."""
    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()).clamp(min=1e-12))


def peak_mlp_layer(session, request, samples: int = 10) -> int:
    """ROME's layer for a model without a table entry: the MLP trace's peak at the subject's last token."""
    result = causal_trace(session, request.prompt, request.subject, request.target_true, kinds=("mlp",),
                          samples=samples, window=default_window(session.n_layers))
    return result.peak_layer("mlp", result.subject_range[1] - 1)


def plot(result: TraceResult):
    """The three heatmaps (tokens × layers), subject tokens starred."""
    from workbench import plots

    plt = plots.plt
    kinds = list(result.scores)
    n_tok = len(result.tokens)
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), max(3.5, 0.45 * n_tok + 1.5)), squeeze=False)
    labels = [repr(t)[1:-1] + ("*" if result.subject_range[0] <= i < result.subject_range[1] else "")
              for i, t in enumerate(result.tokens)]
    span = "one layer" if result.window == 1 else f"{result.window} layers around each"
    titles = {"resid": "Restoring the hidden state (one layer)", "mlp": f"Restoring MLP outputs ({span})",
              "attn": f"Restoring attention outputs ({span})"}
    for ax, kind in zip(axes[0], kinds):
        grid = result.scores[kind].T.numpy()  # (tokens, layers)
        image = ax.imshow(grid, cmap=plots.SEQUENTIAL, aspect="auto", vmin=min(result.corrupted_prob, grid.min()))
        ax.set_yticks(range(n_tok), labels)
        ax.set_xlabel("layer")
        ax.set_title(titles[kind])
        fig.colorbar(image, ax=ax, label=f"P({result.target!r})")
    fig.suptitle(f"Causal trace ({result.method}, window {result.window} of {result.scores[kinds[0]].shape[0]} layers): "
                 f"P({result.target.strip()}) clean {result.clean_prob:.2f}, subject blurred {result.corrupted_prob:.2f}")
    fig.tight_layout()
    return fig
