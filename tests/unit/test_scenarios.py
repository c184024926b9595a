"""Each planted scenario, on one seed, is diagnosed as the problem planted in it; the recipe loop cuts the
planted avoidable bias (real Keras training: about a minute in all)."""

from __future__ import annotations

import pytest

from components.diagnosis import diagnose
from components.recipe import SYNTHESIZE, Setup, basic_recipe
from components.scenarios import SCENARIOS, make_scenario, run_scenario, scenario_outcome


@pytest.mark.parametrize("kind", SCENARIOS)
def test_the_planted_problem_is_the_principal_one(kind):
    scenario = make_scenario(kind, seed=0)
    errors, sizes = run_scenario(scenario)
    found = diagnose(errors, scenario.bayes_error, 0.02, sizes)
    assert found.principal == kind, found.to_dict()


def test_the_recipe_loop_cuts_the_planted_bias():
    scenario = make_scenario("avoidable_bias", seed=0)
    _, sizes = run_scenario(scenario)
    result = basic_recipe(
        Setup(scenario.config),
        scenario_outcome(scenario),
        lambda setup: scenario_outcome(scenario, setup.config),
        scenario.bayes_error,
        sizes,
        max_iterations=2,
        trials=2,
        unavailable={SYNTHESIZE},  # a scenario's inputs are not images
    )
    first = result.iterations[0]
    assert (first.gap, first.action, first.kept) == ("avoidable_bias", "train a bigger model", True)
    assert first.dev_metric_after > first.dev_metric_before
    planted = result.iterations[0].gap_before
    assert result.diagnosis.gaps["avoidable_bias"] <= planted / 2
    assert [step.gap for step in result.iterations] == ["avoidable_bias"] * len(result.iterations)
