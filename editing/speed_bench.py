"""Speed of editing, as ratios measured in one run (``workbench bench --only editing``).

``rome_edit_cost``: one ROME edit with our defaults (fast schedule, 10 prefixes, stop once the
edit holds) divided by the same edit with the reference code's defaults (every step runs the
whole model on the plain prompt and 20 prefixes, at most 20 steps, stop at total loss < 0.05),
median over a few requests (``_range``: the lowest and highest ratio); statistics are cached and
prefixes generated outside the timing on both sides. ``stats_cost``: covariance statistics over N tokens at layer
L divided by a plain forward over the same tokens stopped at layer L's MLP key.
``trace_speedup``: the one-forward-per-cell reference schedule (estimated as cells × a plain HF
forward of one cell's batch: samples + 1 rows) divided by the exact three-kind trace.
``attribution_*``: the approximate trace's speed-up and rank correlation with the exact grid.
The reference cell runs through the session (the bridge, which its hooks need);
``trace_speedup_vs_plain_hf_cells`` uses a plain HF forward per cell instead (the bridge's own
overhead then counts against the trace). Measured on a random-init GPT-2-small-size model,
and on factworld when it is installed.
"""
from __future__ import annotations

import logging
import time

import torch

from workbench.speed_bench import best_time, bench_prompts, gpt2_small_session
from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

PROMPT = "The {} is located in the city of"
EDITS = (("Eiffel Tower", "Rome", "Paris"), ("Colosseum", "Paris", "Rome"), ("Big Ben", "Berlin", "London"),
         ("Louvre", "Madrid", "Paris"), ("Statue of Liberty", "Tokyo", "New York"))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def rome_cost(session, requests, layer: int, stats) -> dict:
    """Our default ROME edit against the reference code's own defaults, request by request.

    Both sides get the same cached statistics and prompts; each generates its own prefixes
    (ours: 10, the reference's: 20, outside the timing). The reference side is our restatement
    of its schedule (:data:`editing.targets.REFERENCE_DELTA`, one delta at the subject), not its code."""
    import statistics

    from editing.apply import applied
    from editing.evaluate import evaluate
    from editing.rome import RomeHparams, compute
    from editing.targets import REFERENCE_DELTA, REFERENCE_PREFIXES, context_prefixes

    sides = {"default": (RomeHparams(layer), context_prefixes(session, 10, 0)),
             "reference": (RomeHparams(layer, n_prefixes=REFERENCE_PREFIXES, delta=REFERENCE_DELTA, exact_effect=False),
                           context_prefixes(session, REFERENCE_PREFIXES, 0))}
    seconds = {name: [] for name in sides}
    efficacy = {name: [] for name in sides}
    steps = {name: [] for name in sides}
    for request in requests:
        for name, (hp, prefixes) in sides.items():
            edit, took = _timed(lambda: compute(session, request, hp, stats, prefixes))
            seconds[name].append(took)
            steps[name].append(edit.stats["steps"])
            with applied(session, edit):
                efficacy[name].append(evaluate(session, [request], fluency_prompts=0).means["efficacy"])
    ratios = [a / b for a, b in zip(seconds["default"], seconds["reference"])]
    return {"rome_edit_cost": round(statistics.median(ratios), 3),
            "rome_edit_cost_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "rome_edits_timed": len(ratios),
            **{f"rome_{name}_s": round(statistics.median(v), 3) for name, v in seconds.items()},
            **{f"rome_{name}_steps": steps[name] for name in sides},
            **{f"rome_efficacy_{name}": round(statistics.mean(v), 3) for name, v in efficacy.items()}}


def trace_cost(session, plain, request, samples: int = 10, repeats: int = 1) -> dict:
    from editing.trace import causal_trace, rank_correlation
    from workbench.tokens import encode

    exact, exact_s = _timed(lambda: causal_trace(session, request.prompt, request.subject, samples=samples))
    approx = causal_trace(session, request.prompt, request.subject, samples=samples, method="attribution")
    approx_s = best_time(lambda: causal_trace(session, request.prompt, request.subject, samples=samples,
                                              method="attribution"), repeats)
    batch = encode(session, [request.text] * (samples + 1))
    with torch.no_grad():  # the reference schedule runs through the session (hooks need the bridge)
        cell_s = best_time(lambda: session.forward(batch.input_ids, batch.attention_mask), 3)
        plain_s = best_time(lambda: plain(batch.input_ids, attention_mask=batch.attention_mask), 3)
    cells = 3 * session.n_layers * len(exact.tokens)
    ref_s = cells * cell_s
    return {"trace_speedup": round(ref_s / exact_s, 3), "trace_exact_s": round(exact_s, 3),
            "trace_reference_estimate_s": round(ref_s, 3),
            "trace_speedup_vs_plain_hf_cells": round(cells * plain_s / exact_s, 3),
            "attribution_speedup_vs_exact": round(exact_s / approx_s, 2),
            "attribution_rank_corr": {k: round(rank_correlation(exact.scores[k], approx.scores[k]), 3)
                                      for k in exact.scores}}


def stats_cost(session, layer: int, texts: list[str], tokens: int) -> dict:
    from editing.covariance import compute_cov, corpus_pieces
    from workbench import sites
    from workbench.activations import batches, run_to_sites
    from workbench.tokens import encode

    cov_s = best_time(lambda: compute_cov(session, layer, texts, tokens, progress=False), 2)
    _, count = compute_cov(session, layer, texts, tokens, progress=False)
    pieces = corpus_pieces(session, texts)  # the very pieces and batches the statistics read

    def plain():
        seen = 0
        with torch.no_grad():
            for chunk in batches(len(pieces), 8, False):
                batch = encode(session, pieces[chunk])
                run_to_sites(session, batch, [sites.mlp_key(layer)], position="all")
                seen += int(batch.attention_mask.sum())
                if seen >= tokens:
                    break
        return seen

    plain_s = best_time(plain, 2)
    return {"stats_cost": round(cov_s / plain_s, 3), "stats_tokens": count, "stats_plain_tokens": plain()}


def _requests(session, n: int) -> list:
    from editing.requests import EditRequest, prepare

    return [prepare(session, EditRequest(PROMPT, subject, new, target_true=true), autofill=False)
            for subject, new, true in EDITS[:n]]


def editing_speed(quick: bool = False, device: str = "cpu") -> dict:
    """The editing figures; always on the CPU (``device`` is recorded, not used): the reference
    timings they are compared with are CPU timings."""
    from editing.covariance import get_stats, layer_stats
    from editing.requests import EditRequest, prepare

    torch.set_grad_enabled(True)
    results: dict = {"editing_device": "cpu"}
    session, plain, directory = gpt2_small_session(quick)
    layer = session.n_layers // 2 - 1
    texts = [" ".join(bench_prompts(64))] * (8 if quick else 40)
    corpus = directory / "bench-corpus.txt"
    corpus.write_text("\n".join(texts))
    stats = layer_stats(session, layer, corpus=str(corpus), tokens=2_000 if quick else 20_000)
    requests = _requests(session, 2 if quick else len(EDITS))
    request = requests[0]
    # C = I here: the bench corpus is too repetitive for a full-rank C at d_mlp 3072 (both sides get the same)
    random_part = rome_cost(session, requests, layer, get_stats(session, layer, no_cov=True))
    results |= {f"{k}_random_init" if k.startswith("rome_edit") else f"random_init_{k}": v
                for k, v in random_part.items()}
    results |= stats_cost(session, layer, texts, 2_000 if quick else 20_000)
    results |= trace_cost(session, plain, request, samples=10)
    results["editing_model"] = f"gpt2 random-init, {session.n_layers} layers, d_model {session.info.d_model}"
    try:
        from workbench import load

        fw = load("factworld", device="cpu")
    except WorkbenchError as exc:
        results["factworld"] = f"skipped: {exc}"
        return results
    from editing.rome import resolve_layer
    from transformers import AutoModelForCausalLM

    from editing.quality_bench import benchmark_set

    request = prepare(fw, EditRequest(PROMPT, "Eiffel Tower", "Rome"))
    at = resolve_layer(fw, None, request)
    fw_stats = layer_stats(fw, at)
    results |= {f"{k}_factworld" if k.startswith("rome_edit") else f"factworld_{k}": v
                for k, v in rome_cost(fw, benchmark_set(fw, 2 if quick else 6), at, fw_stats).items()}
    fw_plain = AutoModelForCausalLM.from_pretrained(fw.source.directory, attn_implementation="eager").eval()
    results |= {f"{k}_factworld": v for k, v in trace_cost(fw, fw_plain, request, 10, 1 if quick else 2).items()}
    return results

