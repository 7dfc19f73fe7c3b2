"""What the app's figures teach: the causal check's default layer shows the effect where there is
one, and its words name the steered-to answers with their probabilities before and after."""
from __future__ import annotations

import pytest

from workbench.app import views

pytest.importorskip("workbench.factworld")


@pytest.fixture(scope="module")
def factworld():
    import workbench

    return workbench.load("factworld")


def test_the_default_steering_layer_moves_the_answer_on_a_held_out_dataset(factworld):
    """The rule (probes.causal.steering_layer) was chosen on factworld_country; here it is checked
    on factworld_continent: the push along the probe beats the same push in a random direction."""
    from probes import load_dataset, sweep
    from probes.causal import steering_curve, steering_layer

    data = load_dataset("factworld_continent", limit=400)
    result = sweep(factworld, data, seeds=(0,))
    layer = steering_layer(result)
    assert result.score(layer).value >= result.score(result.best_layer).value - 0.05
    assert all(s.value < result.score(result.best_layer).value - 0.05 for s in result.layers if s.layer < layer)
    probe = sweep(factworld, data, layers=[layer], seeds=(0,), control=False).probe
    curve = steering_curve(factworld, probe, data, alphas=(0, 2), n_prompts=48)
    top = curve.rows[-1]
    assert top["p_target"] > 1.3 * top["p_target_random"] and top["p_target"] > curve.rows[0]["p_target"]
    words = views.describe_steering(curve, layer, result.best_layer, tolerance=0.05)
    assert "steered to" in words and "within 0.05" in words
    example = curve.examples[0]
    assert example["target"] != example["original"]
    assert f"**{example['target'].strip()}**" in words
