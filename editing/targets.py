"""What ROME and MEMIT share: context prefixes, averaged MLP keys and optimised residual deltas.

A delta is a vector added to the residual stream after ``layer`` (equivalently to the MLP output
of ``layer``) at the subject's last token, optimised so that the new target becomes likely after
every prefixed prompt, while a KL term on "{subject} is a" keeps the subject's other properties.

Fast schedule (default): the prompts run once up to ``layer`` (the part below never changes),
each optimisation step resumes at ``layer + 1`` (:mod:`editing.resume`), only the positions that
are scored are unembedded, and each edit stops once it holds. Reference schedule
(``fast=False``): every step runs the whole model with a hook, up to ``steps`` steps, stopping
once the total loss is below ``early_stop_loss`` (the reference code's rule; its own defaults are
:data:`REFERENCE_DELTA`).
Deltas of several requests are optimised together (rows never interact; Adam is per
coordinate), which is what MEMIT needs for a batch of 100 edits.
"""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites
from workbench.activations import collect
from workbench.generation import generate
from workbench.lens import unembed_residual
from workbench.tokens import fill, subject_last_positions

from editing.resume import capture, storing
from editing.scoring import target_batch

log = logging.getLogger(__name__)

STARTERS = ("The", "Therefore", "Because", "I", "You")
KL_PROMPT = "{} is a"


# Defaults measured on factworld (layer 0; ES / PS / NS). ROME, with u optimised through the per-context gains:
# all 120 single edits 0.992 / 0.929 / 0.992 (clamp 4, stop 0.1: 0.992 / 0.939 / 0.990); 50 sequential edits,
# the first 50 requests: 0.94 / 0.89 / 0.827 (clamp 4, stop 0.1: 0.94 / 0.91 / 0.784); the last 50, a check
# not used to choose: 0.88 / 0.84 / 0.885 (clamp 4, stop 0.1: 0.84 / 0.82 / 0.841). MEMIT, 100 edits at
# lambda 300 (editing.memit): 0.91 / 0.83 / 0.78 (clamp 4, stop 0.1, lambda 100: 0.89 / 0.85 / 0.65); on
# requests 21-120, a partly fresh check: 0.91 / 0.86 / 0.78 (0.93 / 0.88 / 0.68). The clamp bounds the
# write (ROME's u, MEMIT's z - h) at clamp_norm_factor x the clean value's norm; smaller writes leak less
# into other subjects' keys. lr 1.0 instead of 0.5 changed little (30 requests, before the gains).
@dataclass(frozen=True)
class DeltaHparams:
    lr: float = 0.5
    steps: int = 50
    weight_decay: float = 0.5
    clamp_norm_factor: float = 2.0
    kl_factor: float = 0.0625
    early_stop_loss: float = 0.2
    fast: bool = True
    # fast schedule: an edit stops once it holds (P(new answer) >= hold_prob in every context and mean
    # NLL < early_stop_loss); one that does not hold after ``steps`` keeps going up to ``max_steps`` while
    # the clamp grows to ``max_clamp_norm_factor``, so easy edits stay small and hard ones still take
    hold_prob: float = 0.5
    max_steps: int = 150
    max_clamp_norm_factor: float = 6.0


# Sequential editing (editing.sequential_bench): smaller writes and no growing budget, so that later edits
# do not swamp earlier ones. Chosen on the tuning half of fresh_requests(240, seed=17) (see the README).
SEQUENTIAL_DELTA = DeltaHparams(clamp_norm_factor=1.25, max_clamp_norm_factor=1.25)


# The reference ROME's own v* defaults (its GPT-2 XL hyperparameters): a whole-model forward per step, at
# most 20 steps, stopping once the total loss is below 0.05, the write clamped at 4 x the clean value's
# norm, over 20 generated prefixes (10 of 5 tokens, 10 of 10) plus the plain prompt.
REFERENCE_DELTA = DeltaHparams(steps=20, clamp_norm_factor=4.0, early_stop_loss=0.05, fast=False)
REFERENCE_PREFIXES = 20


def context_prefixes(session, n: int = 10, seed: int = 0) -> tuple[str, ...]:
    """``n`` short texts sampled from the model itself (seeded): half 5 tokens, half 10 tokens long."""
    out = []
    for i in range(n):
        length = 5 if i < (n + 1) // 2 else 10
        starter = STARTERS[i % len(STARTERS)]
        text = starter + generate(session, starter, max_new_tokens=length, temperature=1.0, top_k=5,
                                  seed=seed + i, stop_at_eos=False).completion
        out.append(" ".join(text.replace("{", " ").replace("}", " ").split()) + ". ")
    return tuple(out)


def contexts(request, prefixes: Sequence[str]) -> list[str]:
    """The request's prompt, plain and after each prefix (subject filled in)."""
    return [request.text] + [p + request.text for p in prefixes]


def context_subjects(request, prefixes: Sequence[str]) -> list:
    """Per context (same order as :func:`contexts`), the subject with its offset where ``{}`` stands."""
    at = request.subject_at
    return [at] + [at.shifted(len(p)) for p in prefixes]


@dataclass(frozen=True)
class Rows:
    """The optimisation's prompts: per request, its contexts (plain, then after each prefix), then
    the KL prompt "{subject} is a"."""

    prompts: tuple[str, ...]
    subjects: tuple[str, ...]
    owner: tuple[int, ...]  # request index of each row
    is_kl: tuple[bool, ...]


def rows_for(requests: Sequence, prefixes: Sequence[str]) -> Rows:
    prompts, subjects, owner, is_kl = [], [], [], []
    for i, req in enumerate(requests):
        texts = contexts(req, prefixes) + [KL_PROMPT.format(req.subject)]
        prompts += texts
        subjects += context_subjects(req, prefixes) + [fill(KL_PROMPT, req.subject)[1]]
        owner += [i] * len(texts)
        is_kl += [False] * (len(texts) - 1) + [True]
    return Rows(tuple(prompts), tuple(subjects), tuple(owner), tuple(is_kl))


def row_keys(session, rows: Rows, layer: int) -> Float[Tensor, "rows d_mlp"]:
    """The MLP key at ``layer`` at the subject's last token of every row (float64)."""
    site = sites.mlp_key(layer)
    return collect(session, list(rows.prompts), [site], position="subject_last", subjects=list(rows.subjects),
                   dtype=torch.float64)[site]


def mean_keys(rows: Rows, keys: Float[Tensor, "rows d_mlp"]) -> Float[Tensor, "n d_mlp"]:
    """Per request, the mean key over its contexts (not the KL prompt): r-ROME's k*."""
    owner = torch.tensor(rows.owner)
    use = ~torch.tensor(rows.is_kl)
    return torch.stack([keys[(owner == i) & use].mean(0) for i in range(int(owner.max()) + 1)])


def average_keys(session, requests: Sequence, layer: int, prefixes: Sequence[str]) -> Float[Tensor, "n d_mlp"]:
    """Per request, the MLP key at ``layer`` at the subject's last token, averaged over contexts (r-ROME's k*)."""
    rows = rows_for(requests, prefixes)
    return mean_keys(rows, row_keys(session, rows, layer))


@dataclass(frozen=True)
class UpdateGeometry:
    """How a rank-one update ``W += u (C⁻¹k*)ᵀ / (k*ᵀC⁻¹k*)`` reaches the model: the MLP output at
    *every* token changes by ``gain * u`` with ``u = v* - anchor``, where ``gain = kᵀ direction`` for
    that token's own key k, ``direction = C⁻¹k* / k*ᵀC⁻¹k*`` and ``anchor = W k* + b``. The subject's
    last token in a context whose key differs from the averaged key (often the plain prompt, when the
    subject starts the text) gets a gain far from 1, and the other tokens (the rest of the subject,
    the relation's words) get gains of their own: together they are the update's exact effect."""

    direction: Float[Tensor, "n d_mlp"]
    anchor: Float[Tensor, "n d_model"]


@contextmanager
def frozen_weights(session) -> Iterator[None]:
    """No gradients for the model's own weights (only the delta is optimised)."""
    params = [p for p in session.model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def holds(logp: Float[Tensor, "scored"], score_rows: Tensor, owner: Tensor, n_rows: int, n_requests: int,
          hold_prob: float) -> Tensor:
    """Per request, whether the whole new answer has probability ≥ ``hold_prob`` in *every* one of its
    contexts (the plain prompt included): ``logp`` is each scored target token's log-probability.
    With ``hold_prob`` ≥ 0.5 every target token is then the top one (greedy decoding gives the answer).

    >>> lp = torch.tensor([-0.1, -0.2, -2.0])          # rows 0, 0, 1; row 1 fails
    >>> holds(lp, torch.tensor([0, 0, 1]), torch.tensor([0, 0]), 2, 1, 0.5).tolist()
    [False]
    """
    row = torch.zeros(n_rows, device=logp.device).index_add(0, score_rows, logp)  # log P(answer) per row
    row_ok = row >= math.log(hold_prob)
    failing = torch.zeros(n_requests, device=logp.device).index_add(0, owner, (~row_ok).float())
    return failing == 0


def clamp_factor(hp: "DeltaHparams", step: int) -> float:
    """The norm clamp's factor after ``step`` steps: ``clamp_norm_factor`` within the first ``steps``,
    then growing linearly to ``max_clamp_norm_factor`` at ``max_steps`` (only edits that do not hold yet
    are still moving then).

    >>> hp = DeltaHparams(steps=10, max_steps=30, clamp_norm_factor=2.0, max_clamp_norm_factor=4.0)
    >>> clamp_factor(hp, 5), clamp_factor(hp, 20), clamp_factor(hp, 30)
    (2.0, 3.0, 4.0)
    """
    if not hp.fast or step <= hp.steps or hp.max_steps <= hp.steps:
        return hp.clamp_norm_factor
    grown = (step - hp.steps) / (hp.max_steps - hp.steps)
    return hp.clamp_norm_factor + (hp.max_clamp_norm_factor - hp.clamp_norm_factor) * min(grown, 1.0)


def essence_drift(log_init: Float[Tensor, "n vocab"], log_new: Float[Tensor, "n vocab"]) -> Float[Tensor, "n"]:
    """The reference's KL term, ``KL(new ‖ init) = Σ p_new (log p_new − log p_init)`` per row.

    >>> p = torch.tensor([[0.5, 0.5]]).log(); q = torch.tensor([[0.9, 0.1]]).log()
    >>> round(float(essence_drift(p, q)[0]), 4)   # 0.9 ln 1.8 + 0.1 ln 0.2
    0.3681
    """
    return torch.nn.functional.kl_div(log_init, log_new, log_target=True, reduction="none").sum(-1)


@dataclass(frozen=True)
class DeltaResult:
    delta: Float[Tensor, "n d_model"]  # optimised addition at the subject's last token
    init: Float[Tensor, "n d_model"]  # the clean value at ``site`` there (first, unprefixed context); ROME: the anchor
    steps: int
    losses: tuple[float, ...]  # final NLL per request
    history: tuple[float, ...] = ()  # mean NLL over requests at each step
    taken: tuple[int, ...] = ()  # per request, the step at which the edit first held (0: it never did)


def optimise_deltas(session, requests: Sequence, layer: int, prefixes: Sequence[str],
                    hp: DeltaHparams = DeltaHparams(), site_kind: str = "mlp_out",
                    geometry: UpdateGeometry | None = None) -> DeltaResult:
    """Optimise one delta per request, added after ``layer`` at its subject's last token.

    ``init`` is read at ``site_kind`` (``mlp_out`` for ROME's v*, ``resid_post`` for MEMIT's z).
    With a ``geometry`` (ROME) the delta is the update's ``u`` itself: every token of every row gets
    what the final rank-one update will add there, ``gain * delta`` (:class:`UpdateGeometry`), instead
    of the same delta at the subject only, and
    the returned ``init`` is the anchor (so ``v* = init + delta`` either way). Weight decay and the
    norm clamp then act on ``u``, the size of the weight change.
    """
    if layer == session.n_layers - 1:
        log.warning("layer %d is the last one: a change at the subject cannot reach the answer there; "
                    "choose an earlier layer", layer)
    device = session.device
    spec = rows_for(requests, prefixes)
    prompts, subjects, owner, is_kl = list(spec.prompts), list(spec.subjects), list(spec.owner), list(spec.is_kl)
    targets = ["" if kl else requests[i].target_new for i, kl in zip(owner, is_kl)]
    tb = target_batch(session, prompts, targets)
    subj_pos = subject_last_positions(tb.batch, subjects).to(device)
    rows = torch.arange(len(prompts), device=device)
    owner_t, kl_t = torch.tensor(owner, device=device), torch.tensor(is_kl, device=device)
    first_rows = torch.tensor([owner.index(i) for i in range(len(requests))], device=device)
    mask, ids = tb.mask.to(device), tb.ids.to(device)
    kl_rows = rows[kl_t]
    kl_pos = subj_pos[kl_t]  # the reference's: the subject's last token of "{subject} is a"

    stored: dict[str, Tensor] = {}
    init_site, resid_site, key_site = sites.site(site_kind, layer), sites.resid_post(layer), sites.mlp_key(layer)
    wanted = {init_site, resid_site} | ({key_site} if geometry is not None else set())
    with torch.no_grad():
        blocks, logits = capture(session, tb.batch, storing(stored, wanted))
        kl_ref = logits[kl_rows, kl_pos].float().log_softmax(-1)  # (n, vocab)
    init = stored[init_site][first_rows, subj_pos[first_rows]].float()  # (n, d_model)
    base = stored[resid_site]
    delta = torch.zeros_like(init, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=hp.lr)
    score_rows, score_pos = mask.nonzero(as_tuple=True)
    n_tokens = torch.zeros(len(requests), device=device).index_add_(0, owner_t[score_rows], torch.ones_like(
        score_rows, dtype=torch.float32))

    if geometry is not None:
        anchor = geometry.anchor.to(device, init.dtype)
        direction = geometry.direction.to(device, torch.float64)[owner_t]  # (rows, d_mlp)
        gains = torch.einsum("rpk,rk->rp", stored[key_site].double(), direction).to(init.dtype)  # (rows, pos)

    def with_delta(hidden: Tensor, d: Tensor) -> Tensor:  # the update's change added to the layer's output
        if geometry is None:  # the reference: one delta at each row's subject, nowhere else
            return hidden.index_put((rows, subj_pos), d[owner_t].to(hidden.dtype), accumulate=True)
        return hidden + (gains.unsqueeze(-1) * d[owner_t].unsqueeze(1)).to(hidden.dtype)  # every token

    def hidden_with(d: Tensor) -> Tensor:
        return with_delta(base, d)

    def final_logits(d: Tensor) -> tuple[Tensor, Tensor]:
        if hp.fast:
            final = blocks.run(session, hidden_with(d), start=layer + 1, unembed=False)
            return (unembed_residual(session, final[score_rows, score_pos]),
                    unembed_residual(session, final[kl_rows, kl_pos]))

        def add(tensor, *, hook):  # noqa: ARG001
            return with_delta(tensor, d)

        with session.bridge.hooks(fwd_hooks=[(resid_site, add)]):
            full = session.forward(tb.batch.input_ids, tb.batch.attention_mask)
        return full[score_rows, score_pos], full[kl_rows, kl_pos]

    losses = torch.zeros(len(requests))
    history: list[float] = []
    done = torch.zeros(len(requests), dtype=torch.bool, device=device)
    taken = torch.zeros(len(requests), dtype=torch.long)  # the step at which each edit first held (0: never)
    limit = max(hp.steps, hp.max_steps) if hp.fast else hp.steps
    step = 0
    with frozen_weights(session), torch.enable_grad():
        for step in range(1, limit + 1):
            opt.zero_grad()
            target_logits, kl_logits = final_logits(delta)
            logp = target_logits.float().log_softmax(-1).gather(-1, ids[score_rows, score_pos, None]).squeeze(-1)
            per_request = torch.zeros(len(requests), device=device).index_add(0, owner_t[score_rows], -logp)
            nll = per_request / n_tokens.clamp(min=1)  # mean NLL per target token, per request
            kl = essence_drift(kl_ref, kl_logits.float().log_softmax(-1))  # (n,)
            decay = hp.weight_decay * delta.norm(dim=-1) / init.norm(dim=-1).pow(2)
            loss = (nll + hp.kl_factor * kl + decay).sum()
            losses = nll.detach().cpu()
            history.append(float(losses.mean()))
            if hp.fast:
                held = holds(logp.detach(), score_rows, owner_t, len(prompts), len(requests),
                             hp.hold_prob) & (nll.detach() < hp.early_stop_loss)
                taken[(held & ~done).cpu()] = step
                done |= held
                if bool(done.all()):
                    break
            elif float(loss.detach()) / len(requests) < hp.early_stop_loss:  # the reference's rule: total loss small
                break
            if step == limit:
                break
            loss.backward()
            kept = delta.detach()[done].clone()
            opt.step()
            with torch.no_grad():
                delta[done] = kept  # an edit that holds stays as it is (the smallest change that takes)
                bound = clamp_factor(hp, step) * init.norm(dim=-1, keepdim=True)
                scale = (bound / delta.norm(dim=-1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)
                delta.mul_(scale)
    log.info("delta optimisation: %d steps, final nll %s", step, [round(float(x), 4) for x in losses])
    init = init if geometry is None else anchor.expand_as(init)
    return DeltaResult(delta.detach().float().cpu(), init.cpu(), step, tuple(float(x) for x in losses),
                       tuple(history), tuple(int(t) for t in taken))

