"""The sweep stage against the tuners a Keras user would pick instead, at equal budgets over many seeds;
and its parallel throughput and orchestration overhead.

Runs in temporary copies of the project, each task's splits made by its stages, against one Prefect
server started for the benchmark.

1. Anytime curves (per task, method and seed; same search space, data, model builder and budget). A trial's
   cost is the epochs it trained (screened and pruned epochs count; a resumed trial's earlier epochs are
   its source's); its score, its dev accuracy after its last epoch. A search's curve: the best score of the
   trials that have ended, against the epochs spent so far (trials in the order they ended). Budget B:
   KerasTuner RandomSearch's, 16 trials x 20 epochs. Methods: ours (`mlstrategy stage sweep` at its
   defaults, with rounds enough to spend B, one worker so that its order is the seed's alone), and, in
   `sweep_peers.py`, KerasTuner's RandomSearch and Hyperband (max_epochs 20, factor 3) and Optuna's
   TPESampler with its HyperbandPruner, each at its documented defaults apart from the space, the budget
   and the seed. Tasks: the default data (8x8 images, dev 352 examples), a synthetic table with a dev set
   of 5,000 (make_classification), and bench_tables' planted_mixed table (string labels, categorical
   columns, a date, missing values; `mlstrategy init`). Seeds pair the methods: same task, same data, seed
   s for each. Targets: (1) at B/3 our mean best is at least RandomSearch's at B; (2) at every budget from
   B/10 to B our mean best is at least each peer's at the same budget. Printed: the table of budgets x
   methods (mean and the 90% interval of the mean over seeds), the paired mean difference ours - peer with
   its 90% interval at B/3 and B, met or not for each target. Every curve goes to the JSON (`--out`), the
   mean curves' picture beside it (PNG).
2. Throughput: the same sweep (2 rounds of `--throughput-trials`, same seed, no pruning nor screening, so
   both runs train the same trials) with workers=1 and workers=2 on this machine's cores. Target: 2
   workers at least 1.7x the trials per second of 1 worker (trial span: from the first trial's start in
   its worker to the last one's end, the pool's start excluded; with the start included as well). Pairs
   of runs alternate (`--repeats`, median of their ratios): this shared machine's speed drifts by a third
   between runs.
3. Overhead per trial with 1 worker: the trial span minus the training inside the trials, per trial
   (Prefect task runs, Optuna storage, model save, latency check). Target: under 0.5 s.
Usage: python benchmarks/bench_sweep.py [--seeds 12] [--tasks digits,synthetic,planted_mixed]
       [--methods ours,random,hyperband,tpe] [--jobs 2] [--out sweep_anytime.json] [--no-throughput]
       [--resume | --report]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pipeline import (  # noqa: E402
    BIN,
    copy_project,
    isolated_env,
    set_params,
    start_prefect_server,
)
from benchmarks.bench_tables import TABLES, mlstrategy  # noqa: E402
from components.sweep import anytime, best_within  # noqa: E402
from components.sweep import ended as ended_in_order  # noqa: E402
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


def run_sweep(project: Path, env: dict, sweep: dict, prefix: Sequence[str] = ()) -> tuple[dict, list]:
    """Run the stage (after `prefix`: taskset); returns sweep.json and the study's finished trials
    (FrozenTrial)."""
    import optuna

    set_params(project, {"sweep": sweep})
    command = [*prefix, str(BIN / "mlstrategy"), "stage", "sweep"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-4000:])
    summary = json.loads((project / "metrics" / "sweep.json").read_text())
    storage = sweep.get("storage") or f"sqlite:///{project / 'sweeps' / 'study.db'}"
    study = optuna.load_study(study_name=summary["study"], storage=storage)
    trials = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    return summary, trials


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
            "rounds": 2,
            "trials": args.throughput_trials,
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


def use_task(project: Path, task: str, env: dict) -> None:
    """The task's splits in the project, made by its stages (`mlstrategy run split`): the default data
    (8x8 images: a CNN); the synthetic table over them (an MLP); or one of bench_tables' tables
    (`planted_mixed`: string labels, categories of 5 and 30 levels, a date, a flag, missing values),
    set up by `mlstrategy init`. palmerpenguins' table is too easy to rank tuners: every method tried
    reached 100% dev accuracy on seed 0."""
    commands = [["run", "split"]]
    if task in TABLES:
        frame, label = TABLES[task]()
        frame.to_csv(project / "data" / f"{task}.csv", index=False)
        init = ["init", "--data", f"data/{task}.csv", "--label", label, "--human-level", "0.01"]
        commands.insert(0, init)
    for command in commands:
        mlstrategy(project, env, *command)
    if task == "synthetic":
        set_params(project, {"data": {"image_shape": None}})
        write_synthetic_splits(project)


def task_project(work: Path, task: str, env: dict, epochs: int) -> Path:
    project = work / task
    project.mkdir()
    copy_project(project)
    set_params(project, {"sweep": {"epochs": epochs}})
    use_task(project, task, env)
    return project


# Our sweep at its defaults and variants measured beside it: {method: sweep settings over the defaults}.
OURS = {"ours": {}, "ours-tpe": {"sampler": "tpe"}}


class Search(NamedTuple):
    """One search to run: a method on a task's project with a seed, on cores of its own."""

    task: str
    method: str
    seed: int


def run_search(
    search: Search, projects: dict[str, Path], work: Path, env: dict, args, cores: list[int]
) -> dict:
    """The search's trials in the order they ended ([epochs, score] each) and its curve."""
    taskset = ["taskset", "--cpu-list", ",".join(map(str, cores))]
    if search.method in OURS:
        # A copy of its own: the sweep writes its study, models and metrics in the project.
        project = work / "searches" / "-".join(map(str, search))
        shutil.copytree(projects[search.task], project, symlinks=True)
        # A round spends about a third of its trials' full epochs (screening, pruning): enough rounds to
        # spend B (measured: 7 rounds of 8 spent 393 epochs on the default data).
        rounds = -(-args.trials * 3 // args.our_trials)
        options = {"seed": search.seed, "rounds": rounds, "trials": args.our_trials, "epochs": args.epochs}
        options.update(OURS[search.method])
        _, trials = run_sweep(project, env, {**options, "workers": 1}, prefix=taskset)
        ended = [list(trial) for trial in ended_in_order(trials)]
        shutil.rmtree(project, ignore_errors=True)
    else:
        out = work / "searches" / ("-".join(map(str, search)) + ".json")
        command = [str(BIN / "python"), str(ROOT / "benchmarks" / "sweep_peers.py"), search.method]
        command += ["--project", str(projects[search.task]), "--seed", str(search.seed)]
        command += [
            "--budget",
            str(args.trials * args.epochs),
            "--epochs",
            str(args.epochs),
            "--out",
            str(out),
        ]
        done = subprocess.run([*taskset, *command], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{search}: {done.stderr[-4000:]}")
        ended = [[t["epochs"], t["score"]] for t in json.loads(out.read_text())]
    return {**search._asdict(), "ended": ended, "curve": [list(p) for p in anytime(ended)]}


def interval(values: list[float], level: float = 0.9) -> tuple[float, float, float]:
    """Mean and the `level` interval of the mean (Student's t over the seeds)."""
    from scipy import stats

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data)))
    return mean, mean - half, mean + half


def best_at(curves: dict[int, list], seeds: list[int], spent: float) -> list[float]:
    """Per seed, the best score a search had found within `spent` epochs (NaN: no trial had ended)."""
    found = [best_within(curves[seed], spent) for seed in seeds]
    return [np.nan if value is None else value for value in found]


def compare(searches: list[dict], budget: int, methods: list[str]) -> dict:
    """Per task: the table of budgets x methods, the paired differences at B/3 and B, and the targets."""
    fractions = (0.1, 0.2, 1 / 3, 0.5, 2 / 3, 0.8, 1.0)
    report: dict = {}
    for task in dict.fromkeys(s["task"] for s in searches):
        runs = {
            m: {s["seed"]: s["curve"] for s in searches if s["task"] == task and s["method"] == m}
            for m in methods
        }
        ran = [m for m in methods if runs[m]]  # a variant of ours may have run on some tasks only
        runs = {m: runs[m] for m in ran}
        seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
        if not seeds:
            continue  # no seed every method has run yet
        at = {f: {m: best_at(runs[m], seeds, f * budget) for m in ran} for f in (*fractions, 1 / 3, 1.0)}
        table = {f"{f:.3g}": {m: interval(at[f][m]) for m in ran} for f in fractions}
        others = [m for m in ran if m != "ours"]
        peers = [m for m in others if m not in OURS]
        paired = (
            {
                f"{f:.3g}": {p: interval(list(np.subtract(at[f]["ours"], at[f][p]))) for p in others}
                for f in (1 / 3, 1.0)
            }
            if "ours" in ran
            else {}
        )
        targets = {}
        if "ours" in ran and "random" in ran:
            third, full = at[1 / 3]["ours"], at[1.0]["random"]
            targets["ours at B/3 >= random at B"] = {
                "met": bool(np.mean(third) >= np.mean(full)),
                "ours": float(np.mean(third)),
                "random": float(np.mean(full)),
                "paired": interval(list(np.subtract(third, full))),
            }
        if "ours" in ran:
            short = [
                f"{peer} at {fraction} B"
                for fraction, row in table.items()
                for peer in peers
                if not row["ours"][0] >= row[peer][0]
            ]
            targets["ours >= every peer at every budget from B/10 to B"] = {"met": not short, "missed": short}
        report[task] = {
            "methods": ran,
            "seeds": seeds,
            "table": table,
            "paired": paired,
            "targets": targets,
        }
    return report


def print_report(report: dict, budget: int, methods: list[str]) -> None:
    for task, found in report.items():
        seeds = len(found["seeds"])
        print(
            f"\n{task}: mean best dev accuracy [90% interval of the mean], {seeds} seeds, B = {budget} epochs"
        )
        print("budget".ljust(14) + "".join(m.rjust(26) for m in found["methods"]))
        for fraction, row in found["table"].items():
            label = f"{float(fraction):.2f} B ({float(fraction) * budget:.0f})"
            print(
                label.ljust(14)
                + "".join(f"{m[0]:.4f} [{m[1]:.4f}, {m[2]:.4f}]".rjust(26) for m in row.values())
            )
        for fraction, row in found["paired"].items():
            for peer, (mean, low, high) in row.items():
                print(f"  ours - {peer} at {float(fraction):.2f} B: {mean:+.4f} [{low:+.4f}, {high:+.4f}]")
        for name, target in found["targets"].items():
            detail = ""
            if "paired" in target:
                mean, low, high = target["paired"]
                detail = (
                    f" (ours {target['ours']:.4f}, random {target['random']:.4f}; paired {mean:+.4f} "
                    f"[{low:+.4f}, {high:+.4f}])"
                )
            elif target.get("missed"):
                detail = " (below at: " + ", ".join(target["missed"]) + ")"
            print(f"  target {name}: {'met' if target['met'] else 'NOT met'}{detail}")


def plot(searches: list[dict], budget: int, methods: list[str], path: Path) -> None:
    """Per task, each method's mean curve with its 90% band, B/3 and RandomSearch's mean at B marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(s["task"] for s in searches))
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    grid = np.arange(budget // 10, budget + 1)
    for axis, task in zip(axes[0], tasks, strict=True):
        ran = [{s["seed"] for s in searches if s["task"] == task and s["method"] == m} for m in methods]
        seeds = set.intersection(*filter(None, ran))  # the seeds of the table: every method's that ran
        for method in methods:
            curves = [
                s["curve"]
                for s in searches
                if s["task"] == task and s["method"] == method and s["seed"] in seeds
            ]
            if not curves:
                continue
            values = np.array(
                [[np.nan if (v := best_within(c, b)) is None else v for b in grid] for c in curves]
            )
            bands = np.array([interval(list(column)) for column in values.T])
            axis.plot(grid, bands[:, 0], label=method)
            axis.fill_between(grid, bands[:, 1], bands[:, 2], alpha=0.2)
        axis.axvline(budget / 3, color="grey", linestyle=":", linewidth=1)
        axis.set(title=task, xlabel="epochs spent", ylabel="best dev accuracy so far")
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def throughput(project: Path, env: dict, args) -> dict:
    """Interleaved pairs of sweeps on 1 and 2 workers: speed-up and overhead per trial (medians)."""
    pairs = []
    for repeat in range(args.repeats):  # interleaved: a burst of other work hits both sides
        timings = {}
        for workers in (1, 2):
            timings[workers] = throughput_run(project, env, args, workers, repeat)
            row = timings[workers]
            print(
                f"repeat {repeat}, {workers} worker(s): {row['trials']} trials in {row['span_s']:.1f} s "
                f"(flow {row['wall_s']:.1f} s, stage process {row['stage_s']:.1f} s), training inside "
                f"trials {row['training_s']:.1f} s",
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
    each = ", ".join(f"{pair['speedup_span']:.2f}x" for pair in pairs)
    print(
        f"throughput 2 workers / 1 worker: median {summary['speedup_span']:.2f}x over the trials ({each}), "
        f"{summary['speedup_flow']:.2f}x with the pool start (target >= 1.7): "
        f"{'met' if summary['speedup_span'] >= 1.7 else 'NOT met'}\n"
        f"overhead per trial (1 worker): median {summary['overhead_per_trial_s']:.3f} s (target < 0.5): "
        f"{'met' if summary['overhead_per_trial_s'] < 0.5 else 'NOT met'}; of it "
        f"{summary['in_task_per_trial_s']:.3f} s inside the task (model save, latency check, study), the "
        "rest between tasks (Prefect, the pool, the study)",
        flush=True,
    )
    return {"repeats": pairs, "median": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12, help="per task and method (0: no anytime curves)")
    parser.add_argument(
        "--tasks", default="digits,synthetic,planted_mixed", help=f"digits, synthetic, {', '.join(TABLES)}"
    )
    parser.add_argument(
        "--methods",
        default="ours,random,hyperband,tpe",
        help="ours, random, hyperband, tpe; ours-tpe: ours with sweep.sampler tpe (not a peer: no target)",
    )
    parser.add_argument("--trials", type=int, default=16, help="RandomSearch's trials: B = trials x epochs")
    parser.add_argument("--epochs", type=int, default=20, help="of a trial trained to the end")
    parser.add_argument(
        "--our-trials", type=int, default=8, help="our sweep's trials per round (its default)"
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="searches at once, each on its own cores (0: one per core)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("sweep_anytime.json"), help="every curve; PNG beside"
    )
    parser.add_argument(
        "--throughput", action=argparse.BooleanOptionalAction, default=True, help="measure workers 1 vs 2"
    )
    parser.add_argument("--throughput-trials", type=int, default=8, help="per round, 2 rounds")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved throughput pairs (median)")
    parser.add_argument(
        "--resume", action="store_true", help="keep the searches --out holds (same budget), run the others"
    )
    parser.add_argument(
        "--report", action="store_true", help="run nothing: report the searches --out holds, and draw them"
    )
    args = parser.parse_args()
    if args.report:
        args.resume, args.throughput = True, False
    methods = args.methods.split(",")
    budget = args.trials * args.epochs
    results: dict = {"budget": budget, "epochs": args.epochs, "searches": [], "throughput": {}}
    if args.resume and args.out.is_file():
        kept = json.loads(args.out.read_text())
        if (kept["budget"], kept["epochs"]) == (budget, args.epochs):
            results["searches"] = kept["searches"]
    done = {(s["task"], s["method"], s["seed"]) for s in results["searches"]}
    saving = threading.Lock()

    def save(found: dict) -> None:
        """Every search so far, after each one: a long benchmark stopped midway resumes (--resume)."""
        with saving:
            results["searches"].append(found)
            partial = args.out.with_suffix(".partial")
            partial.write_text(json.dumps(results, default=str))
            partial.replace(args.out)

    cores = sorted(os.sched_getaffinity(0))
    jobs = args.jobs or len(cores)
    slots: queue.Queue = queue.Queue()
    for slot in range(jobs):
        slots.put(cores[slot * len(cores) // jobs : (slot + 1) * len(cores) // jobs] or cores)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "searches").mkdir()
        env = isolated_env(work, stage_server=False)
        # Task by task, seed by seed: a benchmark stopped early has whole seeds of the first tasks.
        tasks = args.tasks.split(",")
        searches = [
            search
            for search in (Search(t, m, s) for t in tasks for s in range(args.seeds) for m in methods)
            if tuple(search) not in done and not args.report
        ]
        if searches or args.throughput:
            start_prefect_server(work, env)
        projects = {}
        for task in dict.fromkeys(search.task for search in searches):
            started = time.perf_counter()
            projects[task] = task_project(work, task, env, args.epochs)
            print(f"{task}: splits made in {time.perf_counter() - started:.0f} s", flush=True)
        try:

            def one(search: Search) -> dict:
                mine = slots.get()
                try:
                    started = time.perf_counter()
                    found = run_search(search, projects, work, env, args, mine)
                finally:
                    slots.put(mine)
                spent, best = found["curve"][-1] if found["curve"] else (0, float("nan"))
                print(
                    f"{search.task} {search.method} seed {search.seed}: best {best:.4f} after {spent} "
                    f"epochs, {len(found['ended'])} trials, {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
                save(found)
                return found

            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(one, searches))
            asked = [s for s in results["searches"] if s["task"] in tasks and s["method"] in methods]
            if asked:
                results["report"] = compare(asked, budget, methods)
                print_report(results["report"], budget, methods)
                plot(asked, budget, methods, args.out.with_suffix(".png"))
            if args.throughput:
                digits = projects.get("digits") or task_project(work, "digits", env, args.epochs)
                results["throughput"] = throughput(digits, env, args)
        finally:
            subprocess.run([str(BIN / "prefect"), "server", "stop"], env=env, capture_output=True)
    args.out.write_text(json.dumps(results, default=str))
    print(f"every curve: {args.out}; the picture: {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
