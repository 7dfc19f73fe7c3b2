"""The benchmarks run and report ratios (timings are noisy here, so only what could not be noise is
asserted: the probe benchmark compares like with like, the same accuracy and R² as scikit-learn)."""
from __future__ import annotations

import pytest

from workbench.speed_bench import core_speed


def test_core_bench_quick_reports_ratios():
    result = core_speed(quick=True)
    assert result["capture_overhead"] > 0 and result["stop_early_ratio"] > 0
    assert "4 layers" in result["core_model"] and result["core_device"] == "cpu"


def test_bench_leaves_autograd_on():
    import torch

    core_speed(quick=True)
    assert torch.is_grad_enabled()


@pytest.fixture(scope="module")
def probes_speed():
    pytest.importorskip("sklearn", reason="scikit-learn is a dev-only dependency")
    from probes.speed_bench import probes_speed

    return probes_speed


def _check(result: dict) -> None:
    assert result["probe_sweep_max_accuracy_gap"] <= 0.01
    assert abs(result["ridge_r2"] - result["ridge_sklearn_r2"]) < 1e-3
    assert result["probe_sweep_speedup"] > 0 and result["ridge_speedup"] > 0


def test_probe_bench_quick_on_cpu(probes_speed):
    result = probes_speed(quick=True)
    assert result["probes_device"] == "cpu"
    _check(result)


@pytest.mark.gpu
def test_probe_bench_quick_on_gpu(probes_speed):
    result = probes_speed(quick=True, device="cuda")
    assert result["probes_device"].startswith("cuda")
    _check(result)
