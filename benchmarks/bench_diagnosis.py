"""The diagnosis and the recipe loop on the planted-problem scenarios, and latency repeatability.

1. Each scenario (components/scenarios.py) on 20 seeds: how often the planted problem is named principal
   (target: at least 19 of 20 per scenario).
2. The recipe loop with its default budget (params.yaml improve) on scenarios avoidable_bias and variance:
   the planted gap before and after (target: cut by at least half).
3. The p95 latency of one model measured twice (each the median of 5 blocks of 200 calls): the ratio
   (target: within 20%).
Usage: python benchmarks/bench_diagnosis.py [--seeds 20] [--recipe-seeds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from pipelines.running.runtime import configure_environment

configure_environment()

from components.diagnosis import diagnose  # noqa: E402
from components.evaluation import latency_p95_ms  # noqa: E402
from components.recipe import SYNTHESIZE, Setup, basic_recipe  # noqa: E402
from components.scenarios import SCENARIOS, make_scenario, run_scenario, scenario_outcome  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--recipe-seeds", type=int, default=3)
    args = parser.parse_args()
    improve = yaml.safe_load((ROOT / "params.yaml").read_text())["improve"]
    summary: dict = {"named": {}, "recipe": {}}
    start = time.perf_counter()
    for kind in SCENARIOS:
        named = []
        for seed in range(args.seeds):
            scenario = make_scenario(kind, seed)
            errors, sizes = run_scenario(scenario)
            named.append(diagnose(errors, scenario.bayes_error, 0.02, sizes).principal)
        hits = named.count(kind)
        summary["named"][kind] = hits
        others = {name: named.count(name) for name in set(named) - {kind}}
        print(
            f"{kind:16} named principal in {hits:2}/{args.seeds} seeds (target >= 19); otherwise {others}",
            flush=True,
        )
    for kind in ("avoidable_bias", "variance"):
        cuts = []
        for seed in range(args.recipe_seeds):
            scenario = make_scenario(kind, seed)
            _, sizes = run_scenario(scenario)
            baseline = scenario_outcome(scenario)
            before = diagnose(baseline.errors, scenario.bayes_error, 0.02, sizes).gaps[kind]
            result = basic_recipe(
                Setup(scenario.config),
                baseline,
                lambda setup, s=scenario: scenario_outcome(s, setup.config),
                scenario.bayes_error,
                sizes,
                max_iterations=improve["max_iterations"],
                trials=improve["trials"],
                seed=seed,
                unavailable={SYNTHESIZE},  # a scenario's inputs are not images
            )
            after = result.diagnosis.gaps[kind]
            cuts.append(1 - after / before)
            print(
                f"recipe on {kind:14} seed {seed}: gap {before:.3f} -> {after:.3f} "
                f"(cut {1 - after / before:.0%}), "
                f"dev accuracy {baseline.dev_metric:.3f} -> {result.outcome.dev_metric:.3f}; "
                f"{len(result.iterations)} iterations, {result.stopped_because}",
                flush=True,
            )
        summary["recipe"][kind] = cuts
    from components.config import TrainConfig
    from components.training import train

    scenario = make_scenario("data_mismatch", 0)
    x, y = scenario.splits["train"]
    model, _ = train(TrainConfig(hidden_units=(128, 64), epochs=2), x, y, 2)
    x_dev = scenario.splits["dev"][0]
    runs = [
        latency_p95_ms(lambda i: model.predict_on_batch(x_dev[i % 500 : i % 500 + 1]), n_calls=200)
        for _ in range(2)
    ]
    ratio = max(runs) / min(runs)
    summary["latency_p95_ms"] = runs
    print(
        "latency p95 of one model, two runs (median of 5 blocks of 200 calls): "
        f"{runs[0]:.3f} and {runs[1]:.3f} ms, "
        f"ratio {ratio:.2f} (target <= 1.2)"
    )
    summary["seconds"] = time.perf_counter() - start
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
