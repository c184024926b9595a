"""The sweep stage against plain random search, and its parallel throughput and orchestration overhead.

Runs in a temporary copy of the project (its data/splits must exist: run `make run` first), against one
Prefect server started for the benchmark.

1. Efficiency (per task and seed, same search space, same trial budget, same epochs per trial):
   KerasTuner's RandomSearch (the peer) trains every trial to the end; `mlstrategy stage sweep` (caviar:
   a coarse round that screens a ninth of the epochs, then a finer one pruned by successive halving, its
   first rung shared with the screened trials, the best third of which it opens with, resumed).
   Score of a trial: its dev accuracy after its last epoch. The peer's best score is the bar; the figure
   is the epochs our sweep spent (all trials, in order of completion) until a finished trial reached the
   bar, over the epochs the peer spent to find its best (its whole budget: it cannot know its best before
   the end). Target: at most 1/3. Also printed: the peer's epochs up to its best trial. Two tasks: the
   default data (dev 352 examples: a trial's dev accuracy has a standard error of about 0.02, as wide as
   the spread between good configurations) and a synthetic one with a dev set of 5,000 (about 0.006),
   where the bar is set by configurations more than by luck. Per task, a reference from the peer's own
   curves (all seeds, no training of its own): how often 16 random configurations, all screened at the
   first rung and the best trained on within the same third (3 of them after screening all 16), reach
   the best of 16 others; and how often they do all trained to the end, about 1/2 since both sides draw
   alike. With the same trial budget as the peer, only better than random configurations (coarse to
   fine) can meet the target in more than about half the runs.
2. Throughput: the same sweep (2 rounds of `--trials`, same seed, no pruning nor screening, so both runs
   train the same trials) with workers=1 and workers=2 on this machine's cores. Target: 2 workers at least
   1.7x the trials per second of 1 worker (trial span: from the first trial's start in its worker to the
   last one's end, the pool's start excluded; with the start included as well). Pairs of runs alternate
   (`--repeats`, median of their ratios): this shared machine's speed drifts by a third between runs.
3. Overhead per trial with 1 worker: the trial span minus the training inside the trials, per trial
   (Prefect task runs, Optuna storage, model save, latency check). Target: under 0.5 s.
Usage: python benchmarks/bench_sweep.py [--seeds 3] [--tasks default,synthetic] [--rounds 2] [--trials 8]
       [--epochs 20] [--no-throughput] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pipeline import (  # noqa: E402
    BIN,
    copy_project,
    isolated_env,
    set_params,
    start_prefect_server,
)
from components import search_space  # noqa: E402
from pipelines.running.runtime import configure_environment  # noqa: E402

configure_environment()


def write_synthetic_splits(project: Path, seed: int = 0) -> None:
    """A 10-class task with 1,000 train and 5,000 dev rows (scikit-learn's make_classification). On the
    default data the dev set has 352 examples, so a trial's dev accuracy carries a standard error of
    about 0.02, as wide as the spread between good configurations: the best of 16 random trials is then
    a lucky draw as much as a better configuration. Here it is about 0.006."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=6000,
        n_features=20,
        n_informative=10,
        n_redundant=4,
        n_classes=10,
        n_clusters_per_class=1,
        class_sep=1.0,
        flip_y=0.03,
        random_state=seed,
    )
    frame = pd.DataFrame(x.astype("float32"), columns=[f"f{i}" for i in range(x.shape[1])])
    frame.insert(0, "label", y.astype("int64"))
    frame.insert(0, "source", "phone")
    frame.insert(0, "id", [f"s{i}" for i in range(len(frame))])
    splits = project / "data" / "splits"
    for name, part in (
        ("train", frame[:1000]),
        ("dev", frame[1000:]),
        ("train_dev", frame[:0]),
        ("test", frame[:0]),
    ):
        part.to_parquet(splits / f"{name}.parquet", index=False)


def run_sweep(project: Path, env: dict, sweep: dict) -> tuple[dict, list]:
    """Run the stage; returns sweep.json and the study's finished trials (FrozenTrial)."""
    import optuna

    set_params(project, {"sweep": sweep})
    done = subprocess.run(
        [str(BIN / "mlstrategy"), "stage", "sweep"], cwd=project, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-4000:])
    summary = json.loads((project / "metrics" / "sweep.json").read_text())
    storage = sweep.get("storage") or f"sqlite:///{project / 'sweeps' / 'study.db'}"
    study = optuna.load_study(study_name=summary["study"], storage=storage)
    trials = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    return summary, trials


def peer_random_search(project: Path, space: dict, trials: int, epochs: int, seed: int) -> list[dict]:
    """KerasTuner RandomSearch over the same space: [{score, epochs}] in trial order."""
    import keras
    import keras_tuner as kt

    from components.config import TrainConfig
    from components.models import build_model
    from components.training import make_optimizer
    from pipelines.store.params import load_params
    from pipelines.store.tables import classes as class_list
    from pipelines.store.tables import feature_columns, xy

    os.chdir(project)
    params = load_params()
    import pandas as pd

    frames = {
        name: pd.read_parquet(project / "data" / "splits" / f"{name}.parquet") for name in ("train", "dev")
    }
    features = feature_columns(frames["train"].columns, params.data)
    labels = class_list(params.data)
    (x, y), (x_dev, y_dev) = (xy(frames[name], params.data, features, labels) for name in ("train", "dev"))
    classes = len(labels)
    curves: list[list[float]] = []

    class Model(kt.HyperModel):
        def config(self, hp) -> TrainConfig:
            lr, beta, units = space["learning_rate"], space["beta_1"], space["units"]
            return dataclasses.replace(
                params.train,
                hidden_units=(hp.Int("units", units["low"], units["high"], sampling="log"),)
                * hp.Int("layers", space["layers"]["low"], space["layers"]["high"]),
                learning_rate=hp.Float("learning_rate", lr["low"], lr["high"], sampling="log"),
                beta_1=1 - hp.Float("one_minus_beta_1", 1 - beta["high"], 1 - beta["low"], sampling="log"),
                batch_size=hp.Choice("batch_size", space["batch_size"]["choices"]),
                epochs=epochs,
            )

        def build(self, hp):
            config = self.config(hp)
            model = build_model(config, x, classes)
            model.compile(
                optimizer=make_optimizer(config, -(-len(x) // config.batch_size)),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            return model

        def fit(self, hp, model, *args, **kwargs):
            history = model.fit(*args, batch_size=self.config(hp).batch_size, **kwargs)
            curves.append([float(v) for v in history.history["val_accuracy"]])
            return history

    class RandomSearch(kt.RandomSearch):
        # Imports tensorboard unconditionally under TensorFlow, only to patch a TensorBoard callback,
        # which this search does not use.
        def _configure_tensorboard_dir(self, callbacks, trial, execution=0) -> None:
            return None

    with tempfile.TemporaryDirectory() as tmp:
        tuner = RandomSearch(
            Model(),
            objective="val_accuracy",
            max_trials=trials,
            seed=seed,
            directory=tmp,
            project_name="peer",
            overwrite=True,
        )
        keras.utils.set_random_seed(seed)
        tuner.search(x, y, epochs=epochs, validation_data=(x_dev, y_dev), verbose=0)
    return [{"score": c[-1], "epochs": len(c), "curve": c} for c in curves]


def efficiency(project: Path, env: dict, seed: int, rounds: int, trials: int, epochs: int) -> dict:
    space = yaml.safe_load((project / "params.yaml").read_text())["sweep"]["space"]
    peer = peer_random_search(project, space, rounds * trials, epochs, seed)
    bar = max(t["score"] for t in peer)
    peer_epochs = sum(t["epochs"] for t in peer)
    best_at = next(i for i, t in enumerate(peer) if t["score"] == bar)
    summary, ours = run_sweep(
        project,
        env,
        {"seed": seed, "rounds": rounds, "trials": trials, "epochs": epochs, "pruner": "auto", "workers": 2},
    )
    spent, reached, trace = 0, None, []
    for t in sorted(ours, key=lambda t: t.datetime_complete):
        outcome = t.user_attrs["outcome"]
        spent += outcome["epochs"]
        trace.append([t.user_attrs["round"], outcome["epochs"], round(outcome["curve"][-1], 4)])
        if reached is None and t.state.name == "COMPLETE" and t.value >= bar:
            reached = spent
    return {
        "seed": seed,
        "peer_best": bar,
        "peer_epochs": peer_epochs,
        "peer_epochs_to_its_best": sum(t["epochs"] for t in peer[: best_at + 1]),
        "ours_best": summary["best"]["dev_metric"],
        "ours_epochs_total": summary["epochs_used"],
        "ours_epochs_to_bar": reached,
        "ratio": None if reached is None else reached / peer_epochs,
        "pruned": summary["pruned"],
        "peer_scores": [round(t["score"], 4) for t in peer],
        "peer_curves": [[round(v, 4) for v in t["curve"]] for t in peer],
        "trace": trace,  # ours in order of completion: [round, epochs, last dev metric]
    }


def halving_reference(
    curves: list[list[float]], configurations: int, budget: float, draws: int = 4000, seed: int = 0
) -> dict | None:
    """How often random configurations reach the best of as many other random configurations trained to
    the end (the peer's bar), from the peer's own curves (every configuration it trained, all seeds of a
    task: no training of its own). Each draw takes `configurations` curves for the bar and as many others:

    - `rate`: those others all screened at successive halving's first rung, then as many of the best as
      `budget` epochs allow trained to the end (one rung: the most configurations it can finish);
    - `ceiling`: the others all trained to the end. Both sides draw alike, so this is about 1/2 whatever
      the epochs: no method that samples as many configurations at random as the peer beats it.

    None when the pool holds fewer than two draws or the curves are too short to screen."""
    if len({len(curve) for curve in curves}) != 1 or len(curves) < 2 * configurations:
        return None
    pool = np.array(curves)
    epochs = pool.shape[1]
    screen = search_space.first_rung(epochs)
    if screen >= epochs:
        return None
    finish = min(configurations, max(0, int((budget - configurations * screen) // (epochs - screen))))
    rng = np.random.default_rng(seed)
    reached = ceiling = 0
    for _ in range(draws):
        drawn = rng.choice(len(pool), 2 * configurations, replace=False)
        ours, peer = drawn[:configurations], drawn[configurations:]
        bar = pool[peer, -1].max()
        best = ours[np.argsort(-pool[ours, screen - 1], kind="stable")[:finish]]
        reached += bool(finish) and pool[best, -1].max() >= bar
        ceiling += pool[ours, -1].max() >= bar
    return {
        "screen": screen,
        "finish": finish,
        "pool": len(pool),
        "draws": draws,
        "rate": float(reached / draws),
        "ceiling": float(ceiling / draws),
    }


def span(trials: list) -> tuple[float, float]:
    """Seconds from the first trial's start (in its worker) to the last one's end; training inside them."""
    start = min(t.user_attrs["outcome"]["started_at"] for t in trials)
    end = max(t.datetime_complete.timestamp() for t in trials)
    return end - start, sum(t.user_attrs["outcome"]["training_s"] for t in trials)


def throughput_run(project: Path, env: dict, args: argparse.Namespace, workers: int, repeat: int) -> dict:
    """One sweep without pruning on `workers` workers; the same trials every time (same seed, a study
    store of its own)."""
    started = time.perf_counter()
    summary, trials = run_sweep(
        project,
        env,
        {
            "seed": 100,
            "storage": f"sqlite:///{project / 'sweeps' / f'throughput-{workers}-{repeat}.db'}",
            "rounds": args.rounds,
            "trials": args.trials,
            "epochs": args.epochs,
            "pruner": "none",
            "coarse_epochs": None,  # every trial trains to the end, as last stop's figures did
            "workers": workers,
        },
    )
    trial_span, training = span(trials)
    return {
        "trials": len(trials),
        "span_s": trial_span,
        "training_s": training,
        # Inside the task but not training: reading the study, saving the model, the latency check.
        "in_task_s": sum(t.user_attrs["outcome"]["task_s"] for t in trials) - training,
        "stage_s": time.perf_counter() - started,
        "wall_s": summary["wall_s"],
    }


def use_task(project: Path, task: str) -> None:
    """Put the task's splits in the project: the default data's (8x8 images: a CNN), or the synthetic
    one's (a table: an MLP)."""
    splits = project / "data" / "splits"
    shutil.rmtree(splits, ignore_errors=True)
    shutil.copytree(ROOT / "data" / "splits", splits)
    default = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["image_shape"]
    set_params(project, {"data": {"image_shape": default if task == "default" else None}})
    if task == "synthetic":
        write_synthetic_splits(project)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="efficiency runs per task (0: skip them)")
    parser.add_argument(
        "--tasks",
        default="default,synthetic",
        help="efficiency on: default (the default data, dev 352), synthetic (train 1,000, dev 5,000)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8, help="per round; the peer gets rounds x trials")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--throughput", action=argparse.BooleanOptionalAction, default=True, help="measure workers 1 vs 2"
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved throughput pairs (median)")
    args = parser.parse_args()
    if not (ROOT / "data" / "splits" / "train.parquet").is_file():
        raise SystemExit("data/splits is missing: run `make run` first")
    results: dict = {"efficiency": [], "throughput": {}}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        copy_project(project)
        env = isolated_env(Path(tmp), stage_server=False)
        start_prefect_server(project, env)
        try:
            for task in args.tasks.split(",") if args.seeds else []:
                use_task(project, task)
                for seed in range(args.seeds):
                    row = efficiency(project, env, seed, args.rounds, args.trials, args.epochs)
                    results["efficiency"].append({"task": task, **row})
                    ratio = "never reached" if row["ratio"] is None else f"{row['ratio']:.2f}"
                    print(
                        f"{task} seed {seed}: peer best dev accuracy {row['peer_best']:.4f} after "
                        f"{row['peer_epochs']} epochs ({row['peer_epochs_to_its_best']} up to its best "
                        f"trial); ours reached it after {row['ours_epochs_to_bar']} epochs (ratio {ratio}, "
                        f"target <= 0.33); ours best {row['ours_best']:.4f} in {row['ours_epochs_total']} "
                        f"epochs, {row['pruned']} pruned",
                        flush=True,
                    )
                rows = [row for row in results["efficiency"] if row["task"] == task]
                met = sum(row["ratio"] is not None and row["ratio"] <= 1 / 3 for row in rows)
                configurations = args.rounds * args.trials  # the peer's trials
                reference = halving_reference(
                    [curve for row in rows for curve in row["peer_curves"]],
                    configurations,
                    rows[0]["peer_epochs"] / 3,
                )
                results.setdefault("reference", {})[task] = reference
                print(
                    f"{task}: ours reached the peer's best within 1/3 of its epochs in {met} of "
                    f"{len(rows)} runs"
                    + (
                        ""
                        if reference is None
                        else f"; from the peer's {reference['pool']} curves ({reference['draws']} draws), "
                        f"{configurations} random configurations screened for "
                        f"{reference['screen']} epochs, the best {reference['finish']} trained on within "
                        f"the same 1/3, reach the best of {configurations} others in "
                        f"{reference['rate']:.0%}; all trained to the end, in {reference['ceiling']:.0%} "
                        "(the ceiling of random sampling with the peer's trial budget)"
                    ),
                    flush=True,
                )
            if not args.throughput:
                return print(json.dumps(results, default=str))
            use_task(project, "default")
            pairs = []
            for repeat in range(args.repeats):  # interleaved: a burst of other work hits both sides
                timings = {}
                for workers in (1, 2):
                    timings[workers] = throughput_run(project, env, args, workers, repeat)
                    row = timings[workers]
                    print(
                        f"repeat {repeat}, {workers} worker(s): {row['trials']} trials in "
                        f"{row['span_s']:.1f} s (flow {row['wall_s']:.1f} s, stage process "
                        f"{row['stage_s']:.1f} s), training inside trials {row['training_s']:.1f} s",
                        flush=True,
                    )
                one, two = timings[1], timings[2]
                pairs.append(
                    {
                        "timings": timings,
                        "speedup_span": one["span_s"] / two["span_s"],
                        "speedup_flow": one["wall_s"] / two["wall_s"],
                        "overhead_per_trial_s": (one["span_s"] - one["training_s"]) / one["trials"],
                        "in_task_per_trial_s": one["in_task_s"] / one["trials"],
                    }
                )
            summary = {
                key: float(np.median([pair[key] for pair in pairs]))
                for key in ("speedup_span", "speedup_flow", "overhead_per_trial_s", "in_task_per_trial_s")
            }
            results["throughput"] = {"repeats": pairs, "median": summary}
            each = ", ".join(f"{pair['speedup_span']:.2f}x" for pair in pairs)
            print(
                f"throughput 2 workers / 1 worker: median {summary['speedup_span']:.2f}x over the trials "
                f"({each}), {summary['speedup_flow']:.2f}x with the pool start (target >= 1.7)\n"
                f"overhead per trial (1 worker): median {summary['overhead_per_trial_s']:.3f} s "
                f"(target < 0.5), of which {summary['in_task_per_trial_s']:.3f} s inside the task (model "
                "save, latency check, study) and the rest between tasks (Prefect, the pool, the study)",
                flush=True,
            )
        finally:
            subprocess.run([str(BIN / "prefect"), "server", "stop"], env=env, capture_output=True)
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
