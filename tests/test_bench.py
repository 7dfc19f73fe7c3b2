"""The core benchmark runs and reports ratios (values are not asserted: timings are noisy here)."""
from __future__ import annotations

from workbench.bench import core_speed


def test_core_bench_quick_reports_ratios():
    result = core_speed(quick=True)
    assert result["capture_overhead"] > 0 and result["stop_early_ratio"] > 0
    assert "4 layers" in result["core_model"]


def test_bench_leaves_autograd_on():
    import torch

    core_speed(quick=True)
    assert torch.is_grad_enabled()
