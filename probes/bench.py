"""Speed of the probe fitting against scikit-learn, as ratios measured in one run.

``probe_sweep_speedup``: logistic probes on every layer of an activation set (2,000 rows x 768,
12 layers: synthetic, anisotropic like a residual stream, with a planted label direction), our
L-BFGS (all layers in one program on a GPU, layer by layer on a CPU) vs ``StandardScaler`` +
``LogisticRegression`` (same C) layer by layer; the test accuracies of both are reported, and
also the ratio against scikit-learn with its BLAS on one thread (on a small, busy CPU its
default thread pool is what is slow). ``ridge_speedup``: all-alpha ridge with 5-fold CV
(:func:`probes.ridge.fit_ridge_cv`) vs ``RidgeCV`` (same alpha grid, efficient leave-one-out)
on 20,000 x 768 with two targets. scikit-learn is a dev-only dependency.
"""
from __future__ import annotations

import time

import torch

from workbench.bench import best_time
from workbench.errors import WorkbenchError

from probes.linear import fit_probes
from probes.ridge import ALPHAS, fit_ridge_cv


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise WorkbenchError("the probe benchmark compares with scikit-learn, a dev-only dependency: "
                             "pip install 'open-weights-workbench[dev]'") from None


def synthetic_activations(n: int, d: int, layers: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(layers, n, d)`` activations with a few large outlier dimensions and labels that depend
    on a planted direction (more readable in later layers), plus label noise."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.rand(d, generator=g) * 2 + 0.1
    scales[:4] = 30.0  # residual streams have a few massive dimensions
    direction = torch.randn(d, generator=g)
    latent = torch.randn(n, generator=g)
    y = (latent + 0.5 * torch.randn(n, generator=g) > 0).long()
    x = torch.randn(layers, n, d, generator=g) * scales
    strength = torch.linspace(0.05, 0.6, layers).view(layers, 1, 1)
    x += strength * latent.view(1, n, 1) * direction * scales.mean()
    return x, y


def _logistic_case(quick: bool):
    n, d, layers = (400, 128, 4) if quick else (2000, 768, 12)
    x, y = synthetic_activations(n, d, layers)
    n_train = int(0.8 * n)
    return x[:, :n_train].contiguous(), x[:, n_train:], y[:n_train], y[n_train:]


def _ridge_case(quick: bool):
    n, d = (4000, 128) if quick else (20000, 768)
    g = torch.Generator().manual_seed(1)
    scales = torch.rand(d, generator=g) * 3 + 0.1
    x = torch.randn(n + n // 4, d, generator=g) * scales
    y = x @ torch.randn(d, 2, generator=g) / d ** 0.5 + 2.0 * torch.randn(n + n // 4, 2, generator=g)
    return x[:n], x[n:], y[:n], y[n:]


def _ours(logistic, ridge) -> dict:
    train_x, test_x, train_y, test_y = logistic
    sites = [f"layer{i}" for i in range(train_x.shape[0])]
    fit = lambda: fit_probes(train_x, train_y, ("0", "1"), sites, "logistic", l2=1.0)  # noqa: E731
    probes, seconds = fit(), best_time(fit)
    accuracy = [float((p.predict(test_x[i]) == test_y).float().mean()) for i, p in enumerate(probes)]
    r_train_x, r_test_x, r_train_y, r_test_y = ridge
    ridge_fit, ridge_s = fit_ridge_cv(r_train_x, r_train_y), best_time(lambda: fit_ridge_cv(r_train_x, r_train_y))
    pred = r_test_x @ ridge_fit.weight.T + ridge_fit.bias
    r2 = 1 - ((pred - r_test_y) ** 2).sum() / ((r_test_y - r_test_y.mean(0)) ** 2).sum()
    return {"logistic_s": seconds, "accuracy": accuracy, "ridge_s": ridge_s, "r2": float(r2)}


def _sklearn_runs(logistic, ridge) -> dict:
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.preprocessing import StandardScaler

    train_x, test_x, train_y, test_y = (t.numpy() for t in logistic)
    start = time.perf_counter()
    accuracy = []
    for i in range(train_x.shape[0]):  # layer by layer, the usual loop
        scaler = StandardScaler().fit(train_x[i])
        model = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(train_x[i]), train_y)
        accuracy.append(float(model.score(scaler.transform(test_x[i]), test_y)))
    logistic_s = time.perf_counter() - start
    try:  # the same loop with scikit-learn's BLAS on one thread: on a busy small CPU its default
        from threadpoolctl import threadpool_limits  # thread pool can be many times slower

        with threadpool_limits(1):
            start = time.perf_counter()
            for i in range(train_x.shape[0]):
                scaler = StandardScaler().fit(train_x[i])
                LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(train_x[i]), train_y)
            one_thread_s = time.perf_counter() - start
    except ImportError:
        one_thread_s = float("nan")
    r_train_x, r_test_x, r_train_y, r_test_y = (t.numpy() for t in ridge)
    start = time.perf_counter()
    scaler = StandardScaler().fit(r_train_x)
    model = RidgeCV(alphas=ALPHAS).fit(scaler.transform(r_train_x), r_train_y)
    ridge_s = time.perf_counter() - start
    return {"logistic_s": logistic_s, "logistic_1thread_s": one_thread_s, "accuracy": accuracy, "ridge_s": ridge_s,
            "r2": float(model.score(scaler.transform(r_test_x), r_test_y))}


def probes_speed(quick: bool = False) -> dict:
    """Both ratios; our timings first (scikit-learn's BLAS threads can linger and slow what follows)."""
    _sklearn()
    logistic, ridge = _logistic_case(quick), _ridge_case(quick)
    ours = _ours(logistic, ridge)
    theirs = _sklearn_runs(logistic, ridge)
    gap = max(abs(a - b) for a, b in zip(ours["accuracy"], theirs["accuracy"]))
    return {"probe_sweep_speedup": round(theirs["logistic_s"] / ours["logistic_s"], 2),
            "probe_sweep_s": round(ours["logistic_s"], 3), "probe_sweep_sklearn_s": round(theirs["logistic_s"], 3),
            "probe_sweep_speedup_vs_sklearn_1thread": round(theirs["logistic_1thread_s"] / ours["logistic_s"], 2),
            "probe_sweep_max_accuracy_gap": round(gap, 4), "probe_sweep_best_accuracy": round(max(ours["accuracy"]), 4),
            "probe_sweep_shape": list(logistic[0].shape[:1]) + [logistic[0].shape[1] + logistic[1].shape[1],
                                                                 logistic[0].shape[2]],
            "ridge_speedup": round(theirs["ridge_s"] / ours["ridge_s"], 2), "ridge_s": round(ours["ridge_s"], 3),
            "ridge_sklearn_s": round(theirs["ridge_s"], 3), "ridge_r2": round(ours["r2"], 4),
            "ridge_sklearn_r2": round(theirs["r2"], 4), "ridge_shape": [ridge[0].shape[0], ridge[0].shape[1]]}


BENCHMARKS = {"probes": probes_speed}
