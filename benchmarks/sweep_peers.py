"""The tuners a Keras user would pick instead of `mlstrategy stage sweep`, on the same search space, data,
model builder and epoch budget: KerasTuner's RandomSearch and Hyperband, and Optuna's TPESampler with its
HyperbandPruner, each at its documented defaults apart from the space, the budget and the seed.

One search per process (`python benchmarks/sweep_peers.py METHOD --project DIR --seed N --out FILE`), in a
project whose data/splits exist: it writes the trials in the order they ended, each {"epochs": epochs it
trained, "score": its dev accuracy after its last epoch}, the record `bench_sweep.py` draws its anytime
curves from.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("random", "hyperband", "tpe")


class Task:
    """A project's train and dev data, its class count and the trial config builder the sweep uses."""

    def __init__(self, project: Path, epochs: int) -> None:
        from pipelines.store.params import load_params
        from pipelines.store.tables import classes, read_splits

        os.chdir(project)
        self.params = load_params()
        _, arrays = read_splits(self.params.data, ("train", "dev"))
        (self.x, self.y), (self.x_dev, self.y_dev) = arrays["train"], arrays["dev"]
        self.classes = len(classes(self.params.data))
        self.epochs = epochs

    def config(self, values: dict[str, Any], epochs: int | None = None):
        """The TrainConfig of a point of the space ({name: config value}), as the sweep builds its trials."""
        return self.params.trial_config(values, epochs or self.epochs)


def keras_tuner(task: Task, space: Any, method: str, budget: int, seed: int) -> list[dict]:
    """KerasTuner's RandomSearch (budget / epochs trials) or Hyperband (max_epochs = the trials' epochs,
    factor 3, iterations until the budget is spent), objective val_accuracy: the models the sweep builds,
    compiled with its optimizer, trained by Keras' `fit` under the tuner's own callbacks (Hyperband goes
    on from a trial's saved best epoch)."""
    import keras
    import keras_tuner as kt

    from components.models import build_model
    from components.training import make_optimizer

    class BudgetSpent(kt.errors.FatalError):  # a FatalError ends the search; any other fails a trial
        pass

    ended: list[dict] = []

    def values(hp: Any) -> dict[str, Any]:
        found = {}
        for p in space.parameters:
            if p.scale == "choice":
                found[p.name] = hp.Choice(p.name, list(p.choices))
            elif p.scale == "beta":
                found[p.name] = 1 - hp.Float(p.key, 1 - p.high, 1 - p.low, sampling="log")
            elif p.scale in ("int", "int_log"):
                sampling = "log" if p.scale == "int_log" else "linear"
                found[p.name] = hp.Int(p.name, int(p.low), int(p.high), sampling=sampling)
            else:
                sampling = "log" if p.scale == "log" else "linear"
                found[p.name] = hp.Float(p.name, p.low, p.high, sampling=sampling)
        return found

    class Model(kt.HyperModel):
        def build(self, hp: Any) -> keras.Model:
            config = task.config(values(hp))
            model = build_model(config, task.x, task.classes)
            steps = -(-len(task.y) // config.batch_size)
            model.compile(
                optimizer=make_optimizer(config, steps),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            return model

        def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
            if sum(t["epochs"] for t in ended) >= budget:
                raise BudgetSpent(f"{budget} epochs trained")
            history = model.fit(*args, batch_size=task.config(values(hp)).batch_size, **kwargs)
            ended.append({"epochs": len(history.epoch), "score": float(history.history["val_accuracy"][-1])})
            return history

    class Quiet:
        # KerasTuner imports TensorBoard under TensorFlow only to patch a callback no search here uses.
        def _configure_tensorboard_dir(self, callbacks: Any, trial: Any, execution: int = 0) -> None:
            return None

    with tempfile.TemporaryDirectory() as tmp:
        common = {"objective": "val_accuracy", "seed": seed, "directory": tmp, "overwrite": True}
        if method == "random":
            tuner = type("RandomSearch", (Quiet, kt.RandomSearch), {})(
                Model(), max_trials=budget // task.epochs, **common
            )
        else:
            tuner = type("Hyperband", (Quiet, kt.Hyperband), {})(
                Model(), max_epochs=task.epochs, factor=3, hyperband_iterations=100, **common
            )
        keras.utils.set_random_seed(seed)
        with contextlib.suppress(BudgetSpent):
            tuner.search(
                task.x, task.y, epochs=task.epochs, validation_data=(task.x_dev, task.y_dev), verbose=0
            )
    return ended


def optuna_tpe(task: Task, space: Any, budget: int, seed: int) -> list[dict]:
    """Optuna's TPESampler with its HyperbandPruner, trials until the budget is spent: each trial the
    sweep's own trainer (components.sweep.run_trial), reporting its dev accuracy every epoch."""
    import optuna
    from optuna.trial import TrialState

    from components.evaluation import metric
    from components.sweep import run_trial

    def score(y: Any, predicted: Any) -> float:
        return metric("accuracy", y, predicted, task.classes)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler, pruner = optuna.samplers.TPESampler(seed=seed), optuna.pruners.HyperbandPruner()
    # Named: the pruner puts a trial in a bracket by a hash of the study's name, random when unnamed.
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner, study_name=f"tpe-{seed}"
    )
    ended: list[dict] = []
    while sum(t["epochs"] for t in ended) < budget:
        trial = study.ask(space.distributions())

        def on_epoch(epoch: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        config = task.config(space.values(trial.params))
        _, result = run_trial(
            config, (task.x, task.y), (task.x_dev, task.y_dev), task.classes, score, on_epoch
        )
        ended.append({"epochs": result.epochs, "score": result.dev_metric})
        if result.pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, result.dev_metric)
    return ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("--project", type=Path, required=True, help="a project whose data/splits exist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=320, help="epochs, all trials together")
    parser.add_argument("--epochs", type=int, default=20, help="of a trial trained to the end")
    parser.add_argument("--out", type=Path, required=True, help="JSON: the trials in the order they ended")
    args = parser.parse_args()
    from pipelines.running.runtime import configure_environment

    configure_environment()
    from components.search_space import SearchSpace

    task = Task(args.project.resolve(), args.epochs)
    space = SearchSpace.from_params(task.params.sweep.space, task.params.sweep.focus)
    if args.method == "tpe":
        ended = optuna_tpe(task, space, args.budget, args.seed)
    else:
        ended = keras_tuner(task, space, args.method, args.budget, args.seed)
    args.out.write_text(json.dumps(ended))


if __name__ == "__main__":
    main()
