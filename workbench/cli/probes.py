"""``workbench probe``: a layer sweep with controls, transfer, plots, a saved probe and the causal check.

    workbench probe --model factworld --dataset factworld_country --causal --json out.json --plot sweep.png
    workbench probe --model factworld --dataset factworld_country --causal --causal-layer 0
    workbench probe --dataset cities --test-dataset neg_cities --method mass-mean --layers 2,4,6
    workbench probe --dataset my.csv --text-column sentence --label-column y --save-probe best
"""
from __future__ import annotations

import argparse

from workbench.cli.options import (add_json_option, add_report_option, fraction, load_from_args,
                                    non_negative_float, positive_int, seed_int)
from workbench.tokens import ONE_VECTOR


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("probe", parents=[common], help="linear probes on every layer, with controls")
    p.add_argument("--dataset", required=True, help="built-in name (cities, neg_cities, sp_en_trans, world_places, "
                   "known_1000[:P30], factworld_country, factworld_continent, factworld_truth, ...) or CSV/JSONL")
    p.add_argument("--method", choices=("logistic", "mass-mean", "ridge"), default=None,
                   help="default: logistic for classes, ridge for values")
    p.add_argument("--layers", default="all", help="all, or comma-separated layers (negative from the end)")
    p.add_argument("--position", choices=ONE_VECTOR, default=None,
                   help="default: the dataset's (last for statements, subject_last for entities)")
    p.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                   help="fit the random-label control task and report selectivity (default on)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated split / control seeds")
    p.add_argument("--test-fraction", type=fraction, default=0.2)
    p.add_argument("--test-dataset", default=None, help="also score the probes on this dataset (generalisation)")
    p.add_argument("--limit", type=positive_int, default=None, help="keep a seeded subset of about N rows (whole entities)")
    p.add_argument("--l2", type=non_negative_float, default=1.0, help="logistic L2 strength (1/C, on the summed loss)")
    p.add_argument("--whiten", action="store_true", help="mass-mean: whiten by the shared covariance (LDA)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="metric per layer with the control line")
    p.add_argument("--pca-plot", default=None, metavar="FILE.png", help="PCA of the best layer, coloured by label")
    p.add_argument("--save-probe", default=None, metavar="FILE", help="save the best layer's probe "
                   "(FILE.safetensors + FILE.json)")
    p.add_argument("--causal", action="store_true", help="steer along the best probe and measure the answer")
    p.add_argument("--causal-layer", type=int, default=None, help="steer at this layer instead of the best one "
                   "(at subject_last, early layers move the answer most: later ones have little attention left)")
    p.add_argument("--alphas", default="0,0.25,0.5,1,2", help="causal check: push sizes (x mean activation norm)")
    p.add_argument("--causal-prompts", type=positive_int, default=64)
    p.add_argument("--causal-plot", default=None, metavar="FILE.png")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    p.add_argument("--cache-dir", default=None, help="activation cache (default $WORKBENCH_CACHE/activations)")
    for column in ("text", "label", "value", "entity", "subject"):
        p.add_argument(f"--{column}-column", default=None, help=f"user data: name of the {column} column")
    add_json_option(p)
    add_report_option(p)
    p.set_defaults(handler=cmd_probe)
    _register_shift(subparsers, common)


def _floats(text: str) -> list[float]:
    from workbench.errors import WorkbenchError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise WorkbenchError(f"{text!r}: give comma-separated numbers") from None


def _columns(args) -> dict:
    return {f"{c}_column": getattr(args, f"{c}_column") for c in ("text", "label", "value", "entity", "subject")}


def cmd_probe(args):
    from workbench.plots import save_png

    from probes import plots
    from probes.causal import require_answers, steering_curve
    from probes.datasets import load_dataset
    from probes.store import ActivationStore
    from probes.sweep import sweep

    dataset = load_dataset(args.dataset, limit=args.limit, **_columns(args))  # a bad file fails before loading
    if args.causal:
        require_answers(dataset)
    test_dataset = None if args.test_dataset is None else load_dataset(args.test_dataset, limit=args.limit)
    session = load_from_args(args)
    fit_options = {"l2": args.l2} if args.method in (None, "logistic") and dataset.task != "regression" else {}
    if args.method == "mass-mean":
        fit_options = {"whiten": args.whiten}
    result = sweep(session, dataset, method=args.method, layers=args.layers, position=args.position,
                   seeds=[int(v) for v in _floats(args.seeds)], control=args.control, test_dataset=test_dataset,
                   test_fraction=args.test_fraction, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                   batch_size=args.batch_size, **fit_options)
    out = result.to_dict()
    if args.plot:
        save_png(plots.sweep_figure(result), args.plot)
    if args.pca_plot:
        store = ActivationStore(session, dataset, result.position, cache_dir=args.cache_dir,
                                use_cache=not args.no_cache, batch_size=args.batch_size)
        x = store.layers([result.best_layer])[0]
        save_png(plots.pca_figure(x, dataset.labels, dataset.classes,
                                  f"{dataset.name}, layer {result.best_layer} (PCA)"), args.pca_plot)
    if args.save_probe:
        out["saved_probe"] = str(result.probe.save(args.save_probe))
    if args.causal:
        probe = result.probe
        if args.causal_layer is not None:  # the first seed's probe at that layer (cached activations)
            probe = sweep(session, dataset, method=args.method, layers=[args.causal_layer], position=args.position,
                          seeds=[int(v) for v in _floats(args.seeds)][:1], control=False,
                          test_fraction=args.test_fraction, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                          batch_size=args.batch_size, **fit_options).probe
        curve = steering_curve(session, probe, dataset, _floats(args.alphas), result.position,
                               n_prompts=args.causal_prompts, batch_size=args.batch_size)
        out["causal"] = curve.to_dict()
        if args.causal_plot:
            save_png(plots.causal_figure(curve), args.causal_plot)

    def report():  # drawn only for --report
        from workbench.plots import png_bytes
        from workbench.report import ModelCard, Report

        images = [png_bytes(plots.sweep_figure(result))]
        if args.causal:
            images.append(png_bytes(plots.causal_figure(curve)))
        return Report(f"Probe sweep: {dataset.name}", (ModelCard.from_session(session),),
                      (result.to_section(images, curve if args.causal else None),))

    return out, _text(out), report


def _text(out: dict) -> str:
    lines = [f"{out['method']} probe, {out['dataset']} ({out['position']}), {out['n_train']} train / "
             f"{out['n_test']} test rows, seeds {out['seeds']}"]
    for row in out["layers"]:
        line = f"layer {row['layer']:>2}: {row['metric']} {row['value']:.3f} ± {row['std']:.3f}"
        if row["control"] is not None:
            line += f"  control {row['control']:.3f}  selectivity {row['selectivity']:+.3f}"
        for key in ("auc", "km_error", f"transfer_{row['metric']}"):
            if key in row:
                line += f"  {key} {row[key]:.3f}"
        lines.append(line + ("  <- best" if row["layer"] == out["best_layer"] else ""))
    if "causal" in out:
        lines.append(f"causal check at {out['causal']['site']} ({out['causal']['position']}), "
                     f"{out['causal']['n_prompts']} prompts:")
    for row in out.get("causal", {}).get("curve", []):
        lines.append(f"alpha {row['alpha']:>5}: P(target) {row['p_target']:.3f} (random dir "
                     f"{row['p_target_random']:.3f})  P(original) {row['p_original']:.3f} (random dir "
                     f"{row['p_original_random']:.3f})  flips {row['flip_rate']:.2f}")
    return "\n".join(lines)


# ---- probe-shift: the probe read before and after an edit (composes probes and editing) ----------
FACTWORLD_SETS = {"factworld_country": "country_set", "factworld_continent": "continent_set"}


def _register_shift(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("probe-shift", parents=[common],
                              help="train a probe, edit a fact, read the probe on the subject before and after")
    p.add_argument("--dataset", default="factworld_country", help="classification dataset (built-in or CSV/JSONL)")
    p.add_argument("--min-count", type=positive_int, default=None,
                   help="factworld_country/continent: keep classes with this many subjects (France has 9)")
    p.add_argument("--prompt", required=True, help="edit prompt with {} where the subject goes")
    p.add_argument("--subject", required=True)
    p.add_argument("--target", required=True, help="the new answer of the edit")
    p.add_argument("--new-class", default=None, help="probe class of the new answer (default: the target's class)")
    p.add_argument("--old-class", default=None, help="probe class of the old answer (default: the subject's class)")
    p.add_argument("--probe-method", choices=("logistic", "mass-mean"), default="logistic")
    p.add_argument("--layers", default="all", help="all, or comma-separated layers")
    p.add_argument("--edit-method", choices=("rome", "memit"), default="rome")
    p.add_argument("--edit-layer", default=None, help="edited layer (default: the model's), or auto")
    p.add_argument("--no-cov", action="store_true", help="edit with C = I instead of key statistics (faster)")
    p.add_argument("--seed", type=seed_int, default=0, help="probe split and edit seed")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="before/after curves")
    add_json_option(p)
    add_report_option(p)
    p.set_defaults(handler=cmd_probe_shift)


def cmd_probe_shift(args):
    from contextlib import ExitStack

    from workbench.errors import WorkbenchError
    from workbench.plots import save_png

    from editing import EditRequest, applied, edit, undo  # the CLI composes both packages
    from probes import factworld_sets
    from probes.datasets import load_dataset
    from probes.shift import probe_shift, shift_figure

    if args.min_count is not None:
        if args.dataset not in FACTWORLD_SETS:
            raise WorkbenchError(f"--min-count applies to {' and '.join(FACTWORLD_SETS)}, not {args.dataset!r}")
        dataset = getattr(factworld_sets, FACTWORLD_SETS[args.dataset])(min_count=args.min_count)
    else:
        dataset = load_dataset(args.dataset)
    session = load_from_args(args)
    request = EditRequest(args.prompt, args.subject, args.target)
    made = edit(session, request, args.edit_method, args.edit_layer, no_cov=args.no_cov, seed=args.seed)
    undo(session, len(made.edits))  # re-applied (and undone) inside probe_shift

    def edited():
        stack = ExitStack()
        for value in made.edits:
            stack.enter_context(applied(session, value))
        return stack

    shift = probe_shift(session, dataset, args.subject, edited, new_class=args.new_class,
                        target=args.target, old_class=args.old_class, prompt=args.prompt, method=args.probe_method,
                        layers=args.layers, seed=args.seed, edit_info={"method": made.method,
                                                                       "layers": list(made.layers)})
    if args.plot:
        save_png(shift_figure(shift), args.plot)
    out = {"edit": made.to_dict(), "shift": shift.to_dict()}
    lines = [f"{made.method.upper()} at layer(s) {list(made.layers)}: {out['edit']['before']['top_token']!r} -> "
             f"{out['edit']['after']['top_token']!r}; probe {shift.method} on {shift.dataset} "
             f"read at {shift.position} of {shift.text!r}"]
    for b, a in zip(shift.before, shift.after):
        old = "" if b.p_old is None else f"P({shift.old_class}) {b.p_old:.3f} -> {a.p_old:.3f}  "
        lines.append(f"layer {b.layer}: reads {b.predicted} ({b.p_predicted:.2f}) -> {a.predicted} "
                     f"({a.p_predicted:.2f})  {old}P({shift.new_class}) {b.p_new:.3f} -> {a.p_new:.3f}")
    lines.append(shift.summary)

    def report():
        from workbench.plots import png_bytes
        from workbench.report import ModelCard, Report

        return Report(f"Probe shift: {args.subject} ->{request.target_new}", (ModelCard.from_session(session),),
                      (made.to_section(), shift.to_section(png_bytes(shift_figure(shift)))))

    return out, "\n".join(lines), report
