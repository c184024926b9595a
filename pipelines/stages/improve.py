"""Stage `improve`: the basic recipe as a loop (components.recipe). From the trained model and its
diagnosis, turn the knobs of the largest problem it can act on, a few trials at a time, keep what improves
the dev metric within the satisficing bounds; log each iteration as a nested MLflow run. Test is evaluated
once, for the model kept at the end. Writes models/improved.keras and metrics/improve.json."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components import diagnosis, recipe
from components.config import TrainConfig
from components.evaluation import TRIAL_MEASURES, Candidate, error_rate, metric, select
from components.train_dev import SPLITS
from components.training import load_model, predict_classes, train
from pipelines.running.runtime import execution_id
from pipelines.shared import synthesizer
from pipelines.shared.measure import trial_measures
from pipelines.store.artifacts import (
    DIAGNOSIS,
    EVALUATION,
    IMPROVE,
    IMPROVED_MODEL,
    MODEL,
    SWEEP,
    SWEEP_MODEL,
    atomic_output,
    read_json,
    require,
    write_json,
)
from pipelines.store.params import Params
from pipelines.store.tables import classes, feature_columns, read_splits, xy
from pipelines.tracking import runs


class Trainer:
    """Trains a setup (a config, on the split's training data or on synthesized data) and measures it on
    train, train_dev and dev: what the loop sees. Test is predicted only for the one model the loop keeps.
    Trained models are kept by setup so the kept one need not be trained again."""

    def __init__(self, params: Params) -> None:
        self.params, data = params, params.data
        self.frames, self.arrays = read_splits(data, SPLITS)
        self.labels = classes(data)
        self.classes = len(self.labels)
        self.metric = params.evaluate.optimizing_metric
        self.dev_weights = (
            self.frames["dev"][data.weight_column].to_numpy(np.float64) if data.weight_column else None
        )
        self.models: dict[recipe.Setup, object] = {}
        self.synthesized: dict[recipe.Synthesis, dict] = {}
        self.synthesizer: synthesizer.Synthesizer | None = None

    def arrays_for(self, setup: recipe.Setup) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The (x, y) arrays `setup` trains and is measured on: train and train_dev synthesized when it
        says so (dev and test never are)."""
        if setup.synthesis is None:
            return self.arrays
        if setup.synthesis not in self.synthesized:
            features = feature_columns(self.frames["train"].columns, self.params.data)
            if self.synthesizer is None:
                self.synthesizer = synthesizer.Synthesizer(self.params, self.frames, features)
            made, _ = self.synthesizer(self.frames, setup.synthesis.strength, setup.synthesis.mode)
            self.synthesized[setup.synthesis] = {
                **self.arrays,
                **{
                    name: xy(made[name], self.params.data, features, self.labels)
                    for name in made
                    if len(made[name])
                },
            }
        return self.synthesized[setup.synthesis]

    def error(self, model, split: str) -> float:
        x, y = self.arrays[split]
        return error_rate(y, predict_classes(model, x))

    def __call__(self, setup: recipe.Setup) -> recipe.Outcome:
        arrays = self.arrays_for(setup)
        model, _ = train(setup.config, *arrays["train"], self.classes)
        self.models[setup] = model
        return self.outcome(model, arrays)

    def outcome(self, model, arrays: dict | None = None) -> recipe.Outcome:
        arrays = arrays or self.arrays
        predicted = {
            name: predict_classes(model, arrays[name][0])
            for name in ("train", "train_dev", "dev")
            if name in arrays
        }
        errors = {name: error_rate(arrays[name][1], found) for name, found in predicted.items()}
        dev_metric = metric(self.metric, arrays["dev"][1], predicted["dev"], self.classes, self.dev_weights)
        return recipe.Outcome(diagnosis.Errors(**errors), dev_metric, self.measures(model))

    def measures(self, model) -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "model.keras")
            return trial_measures(model, self.arrays["dev"][0], Path(tmp) / "model.keras")


@task(cache_policy=NO_CACHE)
def run_recipe(
    params: Params,
    trainer: Trainer,
    setup: recipe.Setup,
    baseline: recipe.Outcome,
    sizes: diagnosis.Sizes,
    human: float,
):
    logger = get_run_logger()
    options = params.improve
    # Latency at the serving batch size is measured once, on the final model; trials are held to the rest.
    bounds = params.evaluate.trial_bounds

    def on_trial(iteration: int, gap: str, action: str, changes: dict, outcome: recipe.Outcome) -> None:
        logger.info(
            "iteration %d (%s: %s) trial %s -> dev %.4f", iteration, gap, action, changes, outcome.dev_metric
        )

    return recipe.basic_recipe(
        setup,
        baseline,
        trainer,
        human,
        sizes,
        bounds=bounds,
        higher_is_better=params.evaluate.higher_is_better,
        tolerance=params.diagnose.tolerance,
        max_iterations=options.max_iterations,
        trials=options.trials,
        seed=options.seed,
        on_trial=on_trial,
        unavailable=() if synthesizer.available(params) else {recipe.SYNTHESIZE},
        space=params.sweep.space,
    )


def start_from_sweep(
    params: Params, trainer: Trainer, trained: recipe.Outcome
) -> tuple[TrainConfig, recipe.Outcome] | None:
    """The sweep's chosen trial (config and outcome) when the selection rule prefers it to the trained
    model: the better dev metric among the two that meet every satisficing bound."""
    if not SWEEP.is_file():
        return None
    best = read_json(SWEEP, "sweep")["best"]
    if not best or not best["satisficing_met"]:
        return None
    model = load_model(require(SWEEP_MODEL, "sweep"))
    found = trainer.outcome(model)
    bounds = params.evaluate.trial_bounds
    higher = params.evaluate.higher_is_better
    candidates = [
        Candidate("train", trained.dev_metric, trained.measures),
        Candidate("sweep", found.dev_metric, found.measures),
    ]
    chosen = select(candidates, bounds, higher).chosen
    if chosen is None or chosen.name != "sweep":
        return None
    config = params.trial_config(best["params"])
    trainer.models[recipe.Setup(config)] = model
    return config, found


@flow(name="improve")
def improve_flow(params: Params) -> dict:
    logger = get_run_logger()
    evaluation, found = read_json(EVALUATION, "evaluate"), read_json(DIAGNOSIS, "diagnose")
    trainer = Trainer(params)
    errors = {k: v for k, v in evaluation["errors"].items() if k != "test"}
    baseline = recipe.Outcome(
        diagnosis.Errors(**errors),
        evaluation["optimizing"]["dev"],
        {k: v for k, v in evaluation["measures"].items() if k in TRIAL_MEASURES},
    )
    sizes = diagnosis.Sizes(**{k: v or None for k, v in evaluation["sizes"].items()})
    human = found["human_level_error"]
    start = start_from_sweep(params, trainer, baseline)
    config, origin = start or (params.train, baseline)
    if start is not None:
        logger.info("the sweep's best trial beats the trained model on dev: the loop starts from it")
    result = (
        run_recipe(params, trainer, recipe.Setup(config), origin, sizes, human)
        if params.improve.max_iterations
        else None
    )
    kept = result.setup if result else recipe.Setup(config)
    improved = result is not None and any(step.kept for step in result.iterations)
    if improved or start is not None:
        test_error = save_kept(trainer, kept)
    else:
        test_error = evaluation["errors"]["test"]
        with atomic_output(IMPROVED_MODEL) as tmp:
            shutil.copyfile(MODEL, tmp)
    final_errors = diagnosis.Errors(
        **{**(result.outcome if result else origin).errors.to_dict(), "test": test_error}
    )
    final = diagnosis.diagnose(
        final_errors, human, params.diagnose.tolerance, sizes, params.diagnose.alpha
    ).to_dict()
    iterations = [step.to_dict() for step in result.iterations] if result else []
    summary = {
        "started_from": "sweep" if start is not None else "train",
        "iterations": iterations,
        "stopped_because": result.stopped_because if result else "improve.max_iterations is 0",
        "requests": result.requests if result else {},
        "baseline": {"dev_metric": baseline.dev_metric, "errors": evaluation["errors"]},
        "final": final,
        "final_dev_metric": (result.outcome if result else origin).dev_metric,
        "final_params": kept.config.to_dict(),
        # Trained on synthesized data: synthesize.enabled with this strength and mode makes it the pipeline's.
        "final_synthesis": None if kept.synthesis is None else dataclasses.asdict(kept.synthesis),
        "improved": improved or start is not None,
    }
    log_iterations(params, iterations)
    write_json(IMPROVE, summary)
    logger.info(
        "improve: %d iterations, stopped: %s; dev %s %.4f -> %.4f",
        len(iterations),
        summary["stopped_because"],
        params.evaluate.optimizing_metric,
        baseline.dev_metric,
        summary["final_dev_metric"],
    )
    for gap, what in summary["requests"].items():
        logger.warning("%s: %s", gap, what)
    if kept.synthesis is not None:
        logger.info(
            "the kept model trains on synthesized data; to make it the pipeline's, set in params.yaml "
            "synthesize: {enabled: true, strength: %s, mode: %s}",
            kept.synthesis.strength,
            kept.synthesis.mode,
        )
    return summary


def save_kept(trainer: Trainer, kept: recipe.Setup) -> float | None:
    """Save the kept model as the pipeline's (models/improved.keras); its test error, read once now."""
    model = trainer.models[kept]
    test_error = trainer.error(model, "test") if "test" in trainer.arrays else None
    with atomic_output(IMPROVED_MODEL) as tmp:
        model.save(tmp)
    return test_error


def log_iterations(params: Params, iterations: list[dict]) -> None:
    """Each recipe iteration as a nested MLflow run of this execution."""
    for number, step in enumerate(iterations, 1):
        runs.log_nested_run(
            params.mlflow.experiment,
            execution_id(),
            f"recipe iteration {number}",
            {"changes": step["params"]},
            {
                "dev_metric_before": step["dev_metric_before"],
                "dev_metric_after": step["dev_metric_after"],
                f"gap/{step['gap']}/before": step["gap_before"],
                f"gap/{step['gap']}/after": step["gap_after"],
                **{f"error/{k}": v for k, v in step["errors_after"].items() if v is not None},
            },
            {
                "mlstrategy.iteration": str(number),
                "mlstrategy.gap": step["gap"],
                "mlstrategy.action": step["action"],
                "mlstrategy.outcome": "kept" if step["kept"] else "rejected",
            },
        )
