"""Stage `sweep`: a hyperparameter search over `sweep.space` (components.sweep), in rounds from coarse to
fine, each trial a Prefect task. In caviar mode the coarse round screens: its trials train a ninth of the
epochs (successive halving's first rung), enough to rank them for the next round's box. The best third of
them are promoted: they open the next round, resumed from the state they stopped in, alongside new
trials sampled in the finer box; those train to the end, hopeless ones pruned at that rung (against the
screened trials too) or the next. When every trial stopped early, the configuration that went furthest
trains again, to the end. Locally the trials run in `sweep.workers` processes, each given its share of
the cores; with `sweep.dask_address` they run on that Dask cluster (prefect-dask).

Trials live in an Optuna study (SQLite in sweeps/, or `sweep.storage`), named after everything that defines
the sweep: a killed sweep started again resumes there, and a finished trial is never run twice. The chosen
trial is the best dev metric among trials that meet every satisficing bound. One MLflow run per sweep,
nested in the execution's run, with a nested run per trial. Writes metrics/sweep.json,
metrics/sweep_trials.csv and models/sweep_best.keras.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from tqdm.auto import tqdm

from components import search_space, sweep
from components.evaluation import Candidate, metric, select
from pipelines.running.deps import ROOT as CODE_ROOT
from pipelines.running.deps import stage_code
from pipelines.shared.measure import trial_measures
from pipelines.store.artifacts import (
    SWEEP,
    SWEEP_DIR,
    SWEEP_MODEL,
    SWEEP_TRIALS,
    atomic_output,
    file_digest,
    fingerprint,
    split_path,
    write_frame,
    write_json,
)
from pipelines.store.params import DataParams, Params
from pipelines.store.tables import classes, read_splits
from pipelines.tracking import runs


def storage_url(params: Params) -> str:
    return params.sweep.address("storage") or f"sqlite:///{(SWEEP_DIR / 'study.db').resolve()}"


def limit_threads(threads: int, slots: Any = None) -> None:
    """Give this worker process `threads` cores: TensorFlow's pools and BLAS, set before TF starts. With
    `slots` (a shared counter of the pool's workers), the process is also pinned to its own `threads`
    cores, so two workers never share one while another sits idle."""
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    if slots is not None and hasattr(os, "sched_setaffinity"):
        with slots.get_lock():
            slot, slots.value = slots.value, slots.value + 1
        cores = sorted(os.sched_getaffinity(0))
        share = len(cores) // threads
        if share > 1:  # more than one worker fits: each takes its own cores (round robin beyond)
            first = (slot % share) * threads
            os.sched_setaffinity(0, cores[first : first + threads])
    from pipelines.running.runtime import configure_environment

    configure_environment()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: it keeps its pools
        pass
    # What a trial imports, once per worker rather than inside its first trial.
    import keras  # noqa: F401
    import optuna  # noqa: F401


@functools.lru_cache(maxsize=2)
def _read_data(root: str, data_json: str) -> tuple[dict, int]:
    os.chdir(root)
    data = DataParams.model_validate_json(data_json)
    _, arrays = read_splits(data, ("train", "dev"))
    return arrays, len(classes(data))


def _data(params: Params, root: str) -> tuple[dict, int]:
    """The train and dev arrays and the class count, read once per worker process."""
    return _read_data(root, params.data.model_dump_json())


@task(cache_policy=NO_CACHE, task_run_name="trial {number}")
def run_trial(
    params: Params,
    root: str,
    study_name: str,
    trial_id: int,
    number: int,
    values: dict,
    screen: int | None = None,
    prune: bool = True,
    resume: dict | None = None,
) -> dict:
    """Train one trial in this worker, report each epoch's dev metric to the study (which may prune it),
    save its model, and record the outcome in the study itself, so a finished trial survives a crash of
    the sweep. With `screen` (a coarse round's screening trial) it trains that many epochs, unpruned,
    and ends as screened: ranked for the next round's box, never chosen, its state saved for a promotion.
    `resume` (a screened trial's outcome) continues that trial from its saved state. `prune=False` trains
    to the end whatever the pruner says."""
    import optuna
    from optuna.trial import TrialState

    started_at, started = time.time(), time.perf_counter()
    arrays, classes = _data(params, root)
    options = params.sweep
    study = _study(params, study_name)
    trial = optuna.trial.Trial(study, trial_id)
    config = params.trial_config(values, screen)
    higher = params.evaluate.higher_is_better
    reporter = _Reporter(trial, options.pruning != "none" and prune, screen)
    before: list[float] = resume["curve"] if resume else []
    reporter.replay(before)

    def score(y, predicted) -> float:
        return metric(params.evaluate.optimizing_metric, y, predicted, classes)

    training_started = time.perf_counter()
    model, result = sweep.run_trial(
        config,
        arrays["train"],
        arrays["dev"],
        classes,
        score,
        reporter,
        options.babysits,
        higher,
        resume_from=trial_checkpoint(study_name, resume["number"]) if resume else None,
        trained=before,
    )
    training_s = time.perf_counter() - training_started
    _keep(model, result, study_name, number, screen, arrays["dev"][0])
    outcome = {
        "number": number,
        "values": values,
        "curve": result.curve,
        "pruned": result.pruned,
        "screened": bool(screen),
        "resumed_from": resume["number"] if resume else None,
        "resumed_at": result.resumed_at,
        "epochs": result.trained,  # this trial's cost: a resumed one's earlier epochs are its source's
        "measures": result.measures,
        "training_s": training_s - reporter.seconds,
        "reporting_s": reporter.seconds,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "started_at": started_at,
    }
    outcome["task_s"] = time.perf_counter() - started  # all of it but the tell
    trial.set_user_attr("outcome", outcome)  # one write: each is a round trip to the storage
    if result.pruned or screen:
        study.tell(number, state=TrialState.PRUNED)
    else:
        study.tell(number, result.dev_metric)
    return outcome


class _Reporter:
    """Reports a trial's dev metric epoch by epoch to its study, which may prune it; `seconds` is the time
    spent talking to the study from inside training. Called as Keras' epoch hook: True stops the trial."""

    def __init__(self, trial: Any, pruning: bool, screen: int | None) -> None:
        self.trial, self.pruning, self.screen, self.seconds = trial, pruning, screen, 0.0

    def replay(self, curve: list[float]) -> None:
        """A resumed trial's earlier curve: the study gets it whole, and halving the rung records of the
        screened run it continues, which it leaves out from now on (sweep.halving). The verdicts are not
        heeded: the promotion is decided."""
        if not (curve and self.pruning):
            return
        tick = time.perf_counter()
        for epoch, value in enumerate(curve, 1):
            self.trial.report(value, epoch)
            self.trial.should_prune()
        self.seconds += time.perf_counter() - tick

    def __call__(self, epoch: int, value: float) -> bool:
        # A screening trial reports too: its value joins halving's first rung, so the first trials of a
        # finer round already compete there instead of running to the end unopposed. It is never stopped.
        if not self.pruning:
            return False
        tick = time.perf_counter()
        self.trial.report(value, epoch)
        stop = self.trial.should_prune() and not self.screen
        self.seconds += time.perf_counter() - tick
        return stop


def _keep(model: Any, result: Any, study_name: str, number: int, screen: int | None, x_dev: Any) -> None:
    """What a trial leaves: a screened one its weights, for a promotion to resume; a finished one its
    model, measured as every candidate is (`result.measures`); a pruned one nothing."""
    if screen:
        with atomic_output(trial_checkpoint(study_name, number)) as tmp:
            model.save_weights(tmp)
    if not (result.pruned or screen):
        path = trial_model(study_name, number)
        with atomic_output(path) as tmp:
            model.save(tmp)
        result.measures = trial_measures(model, x_dev, path)


def _study(params: Params, study_name: str):
    """The study, opened once per worker process, with the sweep's pruner (a loaded study otherwise gets
    Optuna's default, a median pruner with no warm-up). The name fingerprints the pruner and the epochs,
    so it and the storage identify the study."""
    key = (study_name, storage_url(params))
    if key not in _STUDIES:
        import optuna

        _STUDIES[key] = optuna.load_study(study_name=study_name, storage=key[1], pruner=_pruner(params))
    return _STUDIES[key]


_STUDIES: dict[tuple, Any] = {}


def trial_model(study_name: str, number: int) -> Path:
    return SWEEP_DIR / "models" / study_name / f"trial-{number}.keras"


def checkpoints(study_name: str) -> Path:
    """Where screened trials leave their state for a promotion: removed once the sweep has finished."""
    return SWEEP_DIR / "checkpoints" / study_name


def trial_checkpoint(study_name: str, number: int) -> Path:
    return checkpoints(study_name) / f"trial-{number}.weights.h5"


def _pruner(params: Params):
    import optuna

    options = params.sweep
    epochs = params.trial_epochs
    if options.pruning == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, epochs // 5))
    if options.pruning == "halving":
        # Rungs at a ninth and a third of the epochs: the last one saves two thirds of a trial.
        return sweep.halving(search_space.first_rung(epochs))
    return optuna.pruners.NopPruner()


def _task_runner(params: Params):
    options = params.sweep
    if options.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=options.address("dask_address"))
    from prefect.task_runners import ProcessPoolTaskRunner

    workers = params.sweep.local_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    slots = multiprocessing.get_context("spawn").Value("i", 0)  # Prefect's pool spawns its workers
    return ProcessPoolTaskRunner(max_workers=workers, initializer=limit_threads, initargs=(threads, slots))


def open_study(params: Params, space: search_space.SearchSpace):
    """The study of this sweep definition (space, rounds, trials, base config, metric, seed), created or
    resumed; trials a killed sweep left running are marked failed, to be run again."""
    import optuna
    from optuna.trial import TrialState

    options = params.sweep
    # New data or new training code make old trials incomparable: they start a new study.
    # The stage's code as dvc.yaml lists it (`pipelines.running.deps`), and the data it trains on.
    sources = [split_path("train"), split_path("dev"), *(CODE_ROOT / path for path in stage_code("sweep"))]
    name = "sweep-" + fingerprint(
        space.to_dict(),
        options.model_dump(exclude={"workers", "dask_address", "storage"}),
        params.train.to_dict(),
        params.evaluate.optimizing_metric,
        [file_digest(path) for path in sources],
    )
    SWEEP_DIR.mkdir(exist_ok=True)
    higher = params.evaluate.higher_is_better
    study = optuna.create_study(
        storage=storage_url(params),
        study_name=name,
        direction="maximize" if higher else "minimize",
        pruner=_pruner(params),
        load_if_exists=True,
    )
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study.tell(stale.number, state=TrialState.FAIL)
    return study


def _finished(study, round_number: int | None = None) -> list:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return [t for t in trials if round_number is None or t.user_attrs.get("round") == round_number]


def _box(
    study, space: search_space.SearchSpace, round_number: int, params: Params
) -> search_space.SearchSpace:
    """Round 1 samples the whole space; each later round the box around the best `zoom` share of the
    trials so far, by their last dev metric (a pruned or screened trial's too: one stopped late may be
    the better configuration, one stopped early rarely scores high, and a screening round's trials all
    stop at the same epoch). Stored in the study, so a resumed round samples the same box."""
    key = f"box_{round_number}"
    if key in study.user_attrs:
        return search_space.SearchSpace.from_params(study.user_attrs[key])
    box = space
    done = _finished(study)
    if round_number > 1 and len(done) >= 2:
        outcomes = [t.user_attrs["outcome"] for t in done]
        best = sweep.best_share(
            [o["curve"][-1] for o in outcomes],
            params.sweep.zoom,
            params.evaluate.higher_is_better,
        )
        box = _box(study, space, round_number - 1, params).zoom([outcomes[i]["values"] for i in best])
    study.set_user_attr(key, box.to_dict())
    return box


@flow(name="sweep")
def sweep_flow(params: Params) -> dict:
    import optuna
    import pyarrow.parquet as pq

    logger = get_run_logger()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = params.sweep
    space = search_space.SearchSpace.from_params(options.space, options.focus)
    study = open_study(params, space)
    root = str(Path.cwd())
    n_train = pq.ParquetFile(split_path("train")).metadata.num_rows
    started = time.perf_counter()
    boxes = []
    screen_epochs = options.screen_epochs(params.trial_epochs)
    higher = params.evaluate.higher_is_better

    def log_outcome(outcome: dict) -> None:
        resumed = outcome.get("resumed_from")
        logger.info(
            "trial %d %s after %d epochs%s: dev %s %.4f",
            outcome["number"],
            _state(outcome),
            len(outcome["curve"]),
            "" if resumed is None else f" ({outcome['resumed_at']} of them trial {resumed}'s)",
            params.evaluate.optimizing_metric,
            outcome["curve"][-1],
        )

    with _task_runner(params) as runner:
        submit = functools.partial(_submit, runner, params, root)
        for round_number in range(1, options.rounds + 1):
            box = _box(study, space, round_number, params)
            boxes.append(box)
            screen = screen_epochs if round_number == 1 else None
            done = len(_finished(study, round_number))
            study.sampler = sweep.box_sampler(options.sampler, box, options.seed + 1000 * round_number + done)
            promoted = _promoted_jobs(study, round_number, higher)
            sampled = _sampled_jobs(study, box, options.trials - done - len(promoted), screen, round_number)
            # Longest first, handed out as workers free up (one trial queued ahead): the workers then
            # finish the round together instead of one waiting on a long trial that started last.
            sampled.sort(key=lambda job: -sweep.trial_cost(params.trial_config(job.values), n_train))
            jobs = promoted + sampled
            logger.info(
                "round %d/%d: %d trials (%d done before%s)%s, box %s",
                round_number,
                options.rounds,
                len(jobs),
                done,
                f", {len(promoted)} promoted from the screening" if promoted else "",
                f", screening {screen} epochs each" if screen else "",
                box.to_dict(),
            )
            # One trial more than the local workers: it waits in the pool's queue, so a worker that frees
            # up starts it at once rather than after the flow has seen the last trial end.
            slots = len(jobs) if options.dask_address else options.local_workers + 1
            # A bar on a terminal (tqdm turns itself off when output goes to a file or a pipe).
            with tqdm(total=len(jobs), desc=f"sweep round {round_number}", unit="trial", disable=None) as bar:

                def finished(outcome: dict, bar: Any = bar) -> None:
                    log_outcome(outcome)
                    bar.update()

                run_round(jobs, submit, slots, finished)
        source = rerun_source(_finished(study), higher)
        if source is not None:
            # Halving's first rung holds the screening trials too: a finer round can lose every trial
            # there, and a sweep must still end with a trained model.
            logger.warning(
                "every trial was stopped early: training trial %d's configuration to the end",
                source.number,
            )
            trial = _ask_again(study, source, options.rounds, "rerun_of")
            log_outcome(submit(_Job(trial, source.user_attrs["values"]), prune=False).result())
    shutil.rmtree(checkpoints(study.study_name), ignore_errors=True)  # every promotion has run
    finished = [t.user_attrs["round"] for t in _finished(study)]
    rounds = [{"box": box.to_dict(), "trials": finished.count(number)} for number, box in enumerate(boxes, 1)]
    wall_s = time.perf_counter() - started
    return _report(params, study, rounds, wall_s)


class _Job(NamedTuple):
    """A trial asked for this round, waiting for a worker: `screen` epochs for a screening trial, `resume`
    the screened outcome a promoted trial continues."""

    trial: Any
    values: dict
    screen: int | None = None
    resume: dict | None = None


def run_round(
    jobs: list[_Job],
    submit: Callable[[_Job], Any],
    slots: int,
    on_outcome: Callable[[dict], None],
    wait: Callable[[list], Iterator] = as_completed,
) -> None:
    """The round scheduler: submit `jobs` in their order, at most `slots` of them in flight (submitted and
    not finished); as each finishes, `on_outcome` gets its result and the next job is submitted.
    `submit(job)` returns a future; `wait(futures)` yields them as they finish (Prefect's `as_completed`).
    Submitting only as slots free up keeps the order: a pool that resolves submissions on threads would
    otherwise start them in any order. A job whose future raises stops the round with that error."""
    queue, running = list(jobs), set()
    while queue or running:
        while queue and len(running) < slots:
            running.add(submit(queue.pop(0)))
        future = next(iter(wait(list(running))))
        running.remove(future)
        on_outcome(future.result())


def _promoted_jobs(study, round_number: int, higher_is_better: bool) -> list[_Job]:
    """The screened trials successive halving promotes into this round, each a new trial that resumes
    the screened one. They go first (and take the round's first numbers): the likeliest to be good, they
    set the next rung's bar early. Enqueued, they take nothing from the sampler's stream."""
    return [
        _Job(
            _ask_again(study, source, round_number, "promoted_from"),
            source.user_attrs["values"],
            resume=source.user_attrs["outcome"],
        )
        for source in _promotions(study, round_number, higher_is_better)
    ]


def _sampled_jobs(
    study, box: search_space.SearchSpace, count: int, screen: int | None, round_number: int
) -> list[_Job]:
    """`count` new trials drawn from `box` by the study's sampler, screened for `screen` epochs if set."""
    jobs = []
    for _ in range(count):
        trial = study.ask(box.distributions())
        values = box.values(trial.params)
        trial.set_user_attr("round", round_number)
        trial.set_user_attr("values", values)
        jobs.append(_Job(trial, values, screen))
    return jobs


def _promotions(study, round_number: int, higher_is_better: bool) -> list:
    """The screened trials of round 1 (FrozenTrial) that successive halving promotes into round 2, the
    best third at its first rung, less those already continued there or whose saved state is gone."""
    if round_number != 2:
        return []
    finished = _finished(study)  # one read of the study for both rounds
    screened = [t for t in finished if t.user_attrs["round"] == 1 and t.user_attrs["outcome"]["screened"]]
    best = sweep.promote([t.user_attrs["outcome"]["curve"][-1] for t in screened], higher_is_better)
    continued = {t.user_attrs.get("promoted_from") for t in finished if t.user_attrs["round"] == round_number}
    return [
        screened[i]
        for i in best
        if screened[i].number not in continued
        and trial_checkpoint(study.study_name, screened[i].number).is_file()
    ]


def _ask_again(study, source, round_number: int, link: str):
    """A new trial of `source`'s configuration (a FrozenTrial) in `round_number`, its number under `link`
    (promoted_from, rerun_of) in the user attrs."""
    study.enqueue_trial(source.params)
    trial = study.ask(source.distributions)
    trial.set_user_attr("round", round_number)
    trial.set_user_attr("values", source.user_attrs["values"])
    trial.set_user_attr(link, source.number)
    return trial


def _submit(runner, params: Params, root: str, job: _Job, prune: bool = True):
    """Run `job`'s trial (asked in this process) as a task on `runner`: a future of its outcome."""
    # Optuna's public API has no way to reopen a trial by number in another process: its id travels.
    return runner.submit(
        run_trial,
        {
            "params": params,
            "root": root,
            "study_name": job.trial.study.study_name,
            "trial_id": job.trial._trial_id,
            "number": job.trial.number,
            "values": job.values,
            "screen": job.screen,
            "prune": prune,
            "resume": job.resume,
        },
    )


def rerun_source(trials: list, higher_is_better: bool = True):
    """Of a sweep's finished trials (FrozenTrial), the one whose configuration trains again to the end when
    none completed (all screened or pruned): the one that went furthest, best there. None when one did."""
    from optuna.trial import TrialState

    if not trials or any(t.state == TrialState.COMPLETE for t in trials):
        return None
    sign = 1 if higher_is_better else -1
    return max(
        trials,
        key=lambda t: (len(t.user_attrs["outcome"]["curve"]), sign * t.user_attrs["outcome"]["curve"][-1]),
    )


def _state(outcome: dict) -> str:
    """screened (a coarse round's short trial), pruned (stopped as hopeless) or complete."""
    if outcome.get("screened"):
        return "screened"
    return "pruned" if outcome["pruned"] else "complete"


def _report(params: Params, study, rounds: list[dict], wall_s: float) -> dict:
    """Select, copy the chosen model, write sweep.json and the trials table, log to MLflow."""
    import pandas as pd
    from optuna.trial import TrialState

    from pipelines.running.runtime import execution_id

    options = params.sweep
    trials = _finished(study)
    higher = params.evaluate.higher_is_better
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    bounds = params.evaluate.trial_bounds
    candidates = [Candidate(str(t.number), t.value, t.user_attrs["outcome"]["measures"]) for t in complete]
    selection = select(candidates, bounds, higher) if candidates else None
    chosen = selection.chosen if selection else None
    by_number = {str(t.number): t for t in complete}
    best_trial = (
        by_number[chosen.name]
        if chosen
        else (max(complete, key=lambda t: t.value if higher else -t.value) if complete else None)
    )
    if best_trial is not None:
        with atomic_output(SWEEP_MODEL) as tmp:
            shutil.copyfile(trial_model(study.study_name, best_trial.number), tmp)
    states = [_state(t.user_attrs["outcome"]) for t in trials]
    rows = [
        {
            "trial": t.number,
            "round": t.user_attrs["round"],
            "state": state,
            "epochs": t.user_attrs["outcome"]["epochs"],
            "resumed_from": t.user_attrs["outcome"].get("resumed_from"),
            "dev_metric": t.user_attrs["outcome"]["curve"][-1],
            **t.user_attrs["values"],
        }
        for t, state in zip(trials, states, strict=True)
    ]
    write_frame(SWEEP_TRIALS, pd.DataFrame(rows).astype({"resumed_from": "Int64"}))  # a number or empty
    summary = {
        "mode": options.mode,
        "metric": params.evaluate.optimizing_metric,
        "trials": len(trials),
        "pruned": states.count("pruned"),
        "screened": states.count("screened"),
        "best": None
        if best_trial is None
        else {
            "trial": best_trial.number,
            "params": best_trial.user_attrs["values"],
            "dev_metric": best_trial.value,
            "satisficing_met": chosen is not None,
            "measures": best_trial.user_attrs["outcome"]["measures"],
        },
        "rounds": rounds,
        "epochs_used": sum(t.user_attrs["outcome"]["epochs"] for t in trials),
        # Best dev metric so far against epochs spent, trials in the order they ended: what the search
        # had found at each budget (benchmarks/bench_sweep.py compares it with other tuners').
        "anytime": [list(point) for point in sweep.anytime(sweep.ended(trials), higher)],
        "study": study.study_name,
        "wall_s": wall_s,
        "training_s": sum(t.user_attrs["outcome"]["training_s"] for t in trials),
    }
    write_json(SWEEP, summary)
    _log(params, study.study_name, trials, summary, execution_id())
    return summary


def _log(params: Params, study_name: str, trials: list, summary: dict, execution: str) -> None:
    """The sweep as a run nested in the execution's run, each trial a run nested in the sweep's."""
    experiment = params.mlflow.experiment
    best = summary["best"] or {}
    sweep_run = runs.log_nested_run(
        experiment,
        execution,
        f"sweep {summary['mode']}",
        {"sweep": params.sweep.model_dump(exclude={"space"}), "space": params.sweep.space},
        {
            "trials": summary["trials"],
            "pruned": summary["pruned"],
            "screened": summary["screened"],
            "epochs_used": summary["epochs_used"],
            "best/dev_metric": best.get("dev_metric"),
        },
        {"mlstrategy.study": study_name, "mlstrategy.mode": summary["mode"]},
        curves={f"best_so_far/dev_{summary['metric']}": dict(summary["anytime"])},  # step: epochs spent
    )
    for t in trials:
        outcome = t.user_attrs["outcome"]
        tags = {
            "mlstrategy.round": str(t.user_attrs["round"]),
            "mlstrategy.state": _state(outcome),
            "mlstrategy.pruned": str(outcome["pruned"]).lower(),
            "mlstrategy.chosen": str(t.number == best.get("trial")).lower(),
        }
        if outcome.get("resumed_from") is not None:
            tags["mlstrategy.resumed_from"] = str(outcome["resumed_from"])
        runs.log_nested_run(
            experiment,
            execution,
            f"trial {t.number}",
            t.user_attrs["values"],
            {"dev_metric": outcome["curve"][-1], "epochs": outcome["epochs"], **outcome["measures"]},
            tags,
            parent=sweep_run,
            curves={f"{summary['metric']}/dev": outcome["curve"]},
        )
