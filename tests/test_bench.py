"""The probe benchmark compares like with like: same accuracy and R² as scikit-learn."""
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is a dev-only dependency")

from probes.bench import probes_speed  # noqa: E402


def _check(result: dict) -> None:
    assert result["probe_sweep_max_accuracy_gap"] <= 0.01
    assert abs(result["ridge_r2"] - result["ridge_sklearn_r2"]) < 1e-3
    assert result["probe_sweep_speedup"] > 0 and result["ridge_speedup"] > 0


def test_probe_bench_quick_on_cpu():
    result = probes_speed(quick=True)
    assert result["probes_device"] == "cpu"
    _check(result)


@pytest.mark.gpu
def test_probe_bench_quick_on_gpu():
    result = probes_speed(quick=True, device="cuda")
    assert result["probes_device"].startswith("cuda")
    _check(result)
