"""The basic-recipe loop's decisions, with a stand-in for training whose outcome follows the config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from components.config import TrainConfig
from components.diagnosis import Errors, Sizes
from components.recipe import (
    ACTIONS,
    SYNTHESIZE,
    Action,
    Outcome,
    Request,
    Setup,
    Synthesis,
    basic_recipe,
    next_knob,
)

SIZES = Sizes(train=5_000, train_dev=2_000, dev=2_000)


def outcome(train: float, train_dev: float, dev: float, **measures: float) -> Outcome:
    return Outcome(Errors(train=train, train_dev=train_dev, dev=dev), 1 - dev, dict(measures))


def test_the_knobs_follow_the_course_order():
    assert [k.name for k in ACTIONS["avoidable_bias"]] == [
        "train a bigger model",
        "train longer",
        "use a better optimization algorithm",
        "search the hyperparameters",
    ]
    assert isinstance(ACTIONS["variance"][0], Action) and "regularization" in ACTIONS["variance"][0].name
    assert [k.name for k in ACTIONS["data_mismatch"]] == [SYNTHESIZE, "address data mismatch"]
    assert all(isinstance(k, Request) for k in ACTIONS["dev_overfit"])
    assert next_knob("avoidable_bias", {"train a bigger model": 1}).name == "train longer"


def test_bias_is_cut_by_a_bigger_model_and_the_log_says_so():
    # A stand-in for training: error falls with the width of the model, and nothing else matters.
    def evaluate(setup: Setup) -> Outcome:
        width = setup.config.hidden_units[0]
        error = max(0.3 / width, 0.02)
        return outcome(error, error + 0.005, error + 0.01)

    start = Setup(TrainConfig(hidden_units=(1,)))
    result = basic_recipe(start, evaluate(start), evaluate, 0.01, SIZES, max_iterations=3, trials=2)
    first = result.iterations[0]
    assert (first.gap, first.action, first.kept) == ("avoidable_bias", "train a bigger model", True)
    assert first.gap_after < first.gap_before / 2
    assert first.dev_metric_after > first.dev_metric_before
    assert result.stopped_because == "no problem remains"
    assert result.diagnosis.principal == "none"
    assert result.setup.config.hidden_units[0] >= 4


def test_two_iterations_without_improvement_stop_the_loop():
    stuck = outcome(0.20, 0.21, 0.22)
    result = basic_recipe(
        Setup(TrainConfig()), stuck, lambda setup: stuck, 0.01, SIZES, max_iterations=5, trials=1
    )
    assert [step.kept for step in result.iterations] == [False, False]
    assert [step.action for step in result.iterations] == ["train a bigger model", "train longer"]
    assert result.stopped_because == "two iterations without improvement"


def test_data_mismatch_is_synthesized_away_when_synthesis_helps():
    # A stand-in: synthesized data like dev closes the mismatch, the stronger the better up to 1.
    def evaluate(setup: Setup) -> Outcome:
        strength = setup.synthesis.strength if setup.synthesis else 0.0
        dev = 0.20 - 0.17 * min(strength, 1.0)
        return outcome(
            0.01, 0.015 + 0.1 * strength * (setup.synthesis.mode == "add" if setup.synthesis else 0), dev
        )

    start = Setup(TrainConfig())
    result = basic_recipe(start, evaluate(start), evaluate, 0.01, SIZES, trials=4)
    first = result.iterations[0]
    assert (first.gap, first.action, first.kept) == ("data_mismatch", SYNTHESIZE, True)
    assert [t["params"]["synthesis"]["mode"] for t in first.trials] == ["replace", "add", "replace", "add"]
    strengths = [t["params"]["synthesis"]["strength"] for t in first.trials]
    assert strengths == sorted(strengths) and strengths[0] >= 0.5 and strengths[-1] <= 1.5  # weak to strong
    assert isinstance(result.setup.synthesis, Synthesis) and result.setup.synthesis.strength >= 0.75
    assert first.gap_after < first.gap_before


def test_a_gap_only_the_user_can_close_is_a_request():
    mismatch = outcome(0.01, 0.015, 0.20)
    result = basic_recipe(
        Setup(TrainConfig()), mismatch, lambda s: mismatch, 0.01, SIZES, unavailable={SYNTHESIZE}
    )
    assert result.iterations == []
    assert result.stopped_because == "only problems that need you remain: data_mismatch"
    assert "synthesize" in result.requests["data_mismatch"]


def test_a_change_that_breaks_a_satisficing_bound_is_not_kept():
    def evaluate(setup: Setup) -> Outcome:  # bigger is better and slower
        width = setup.config.hidden_units[0]
        return outcome(0.3 / width, 0.3 / width, 0.3 / width, latency_p95_ms=float(width))

    start = Setup(TrainConfig(hidden_units=(1,)))
    result = basic_recipe(
        start, evaluate(start), evaluate, 0.01, SIZES, bounds={"latency_p95_ms": 1.5}, max_iterations=1
    )
    assert not result.iterations[0].kept
    assert result.setup == start


def test_the_budget_ends_the_loop():
    def evaluate(setup: Setup) -> Outcome:  # every doubling helps a little
        error = 0.3 / setup.config.hidden_units[0] ** 0.1
        return outcome(error, error, error)

    start = Setup(TrainConfig(hidden_units=(1,)))
    result = basic_recipe(start, evaluate(start), evaluate, 0.01, SIZES, max_iterations=2, trials=1)
    assert len(result.iterations) == 2 and all(step.kept for step in result.iterations)
    assert result.stopped_because == "budget spent (2 iterations)"
    assert dataclasses.asdict(result.iterations[0])["params"]["hidden_units"][0] > 1


@pytest.mark.parametrize("gap", ["data_mismatch", "dev_overfit"])
def test_every_gap_without_a_knob_has_words_for_the_user(gap):
    knob = next_knob(gap, {SYNTHESIZE})
    assert isinstance(knob, Request) and knob.what_to_do


def test_a_search_trial_changes_top_level_knobs_and_keeps_the_nested_configs():

    from components.recipe import Draw, Setup, _search

    config = TrainConfig(columns=(("age", "numeric"),))
    changes = _search(config, Draw(np.random.default_rng(0)))
    assert changes and not any(isinstance(value, dict) for value in changes.values())
    changed = Setup(config).changed(changes).config
    assert changed.augment.mixes is False and changed.tabular == config.tabular


def test_the_loops_learning_rate_draws_read_the_sweeps_own_definition_of_the_knob():
    from components.recipe import Draw, _optimizer
    from components.search_space import DEFAULT_SPACE

    config = TrainConfig()
    linear = {"learning_rate": {"low": 0.01, "high": 0.02, "scale": "linear"}}
    drawn = [
        _optimizer(config, Draw(np.random.default_rng(i), i % 3, 3, linear))["learning_rate"]
        for i in range(30)
    ]
    assert all(0.01 <= value <= 0.02 for value in drawn)  # its range and its scale, not the default's
    # Stratified along that axis: trial k of 3 draws in the k-th third of the range.
    assert all(0.01 + (i % 3) / 300 <= value <= 0.01 + (i % 3 + 1) / 300 for i, value in enumerate(drawn))
    low, high = DEFAULT_SPACE["learning_rate"]["low"], DEFAULT_SPACE["learning_rate"]["high"]
    by_default = _optimizer(config, Draw(np.random.default_rng(0), 0, 1))["learning_rate"]
    assert low <= by_default <= high


def test_a_knob_at_a_quantile_of_its_sampling_axis():
    from components.search_space import Hyperparameter

    assert Hyperparameter("learning_rate", 1e-4, 1e-2, "log").at(0.5) == pytest.approx(1e-3)
    assert Hyperparameter("beta_1", 0.9, 0.999, "beta").at(0.5) == pytest.approx(0.99)
    assert Hyperparameter("units", 16, 256, "int_log").at(0.5) == 64
    assert Hyperparameter("layers", 1, 3, "int").at(0.99) == 3
    assert Hyperparameter("batch_size", choices=(32, 64, 128)).at(0.5) == 64
