"""Probes: is a property readable from the activations, where, and does the model use it?

datasets -> cached activations -> fitted probes (logistic, mass-mean, ridge) -> layer sweeps with
control tasks, selectivity and transfer -> causal check (steer along the direction).

>>> from workbench import load
>>> from probes import load_dataset, sweep, steering_curve
>>> s = load("factworld", device="cpu")
>>> ds = load_dataset("factworld_country")
>>> result = sweep(s, ds, seeds=(0, 1))                       # every layer, with the control task
>>> curve = steering_curve(s, result.probe, ds)               # doctest: +SKIP
"""
from probes.causal import CausalResult, steering_curve
from probes.dataset import ProbeDataset, grouped_split, make_dataset, split
from probes.datasets import BUILTINS, load_dataset, load_file
from probes.linear import METHODS, Probe, fit_probes
from probes.ridge import RidgeFit, fit_ridge_cv
from probes.store import ActivationStore, layer_activations
from probes.sweep import LayerScore, SweepResult, sweep, sweep_activations

__all__ = ["ActivationStore", "BUILTINS", "CausalResult", "LayerScore", "METHODS", "Probe", "ProbeDataset",
           "RidgeFit", "SweepResult", "fit_probes", "fit_ridge_cv", "grouped_split", "layer_activations",
           "load_dataset", "load_file", "make_dataset", "split", "steering_curve", "sweep", "sweep_activations"]
