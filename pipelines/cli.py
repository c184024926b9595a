"""The `mlstrategy` command.

    mlstrategy run [DVC_REPRO_ARGS...]   the whole pipeline: `dvc repro` with one Prefect server and one
                                          MLflow run for the execution
    mlstrategy stage NAME                 one stage as a Prefect flow (what dvc.yaml calls)
    mlstrategy diagnose --human-level H --train T --dev D [...]
                                          the gaps for numbers you give, without running anything
    mlstrategy init --data PATH --label COLUMN [--id COLUMN] [--source COLUMN --target VALUE ...]
                    [--text COLUMN] [--human-level FRACTION] [--na VALUE ...] [--force]
                                          set the project up for your own data
    mlstrategy relabel FILE [--train]     apply corrected labels to dev and test together (a new data
                                          version)
    mlstrategy contract --from FILE [-o OUT] [--force]
                                          propose data/contract.yaml from a trusted snapshot
    mlstrategy promote [VERSION]          make a registered model version (default: the challenger) the
                                          champion
    mlstrategy rollback                   give the champion alias back to the version it replaced
    mlstrategy serve (--cron EXPR | --interval SECONDS | --once)
                                          the scheduled pipeline: new data in, validated, retrained,
                                          promoted if it beats the champion
    mlstrategy gradcheck [--json]         backprop against the two-sided numerical gradient on the
                                          project's losses and layers
    mlstrategy stage-server status|start|stop
                                          the warm process that stages are forked from
    mlstrategy ui                         the MLflow UI on this project's runs, on 127.0.0.1

Exit status: 0 on success, 1 when the pipeline or a stage fails (the message says what and where), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines.errors import DISK_FULL, NoSpace, UserError
from pipelines.running.runtime import configure_environment, dvc_env, project_root, script
from pipelines.stages import STAGES

# What a forked stage process calls: the stage server is given it, and imports nothing of the project.
ENTRY = "pipelines.cli:main"


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.05, got {text!r}") from None


def _sizes(text: str) -> list[int]:
    parts = text.split(",")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) != 4 or min(sizes) < 0:
        raise argparse.ArgumentTypeError(
            f"expected four counts TRAIN,TRAIN_DEV,DEV,TEST such as 8000,2000,400,400, got {text!r}"
        )
    return sizes


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the pipeline (dvc repro) with one Prefect server and one MLflow run",
        description="Run `dvc repro` on the project: only stages whose code, params or data changed rerun. "
        "Extra arguments go to `dvc repro` (e.g. `mlstrategy run --force`, `mlstrategy run train`).",
    )
    run.add_argument("dvc_args", nargs="*", metavar="DVC_REPRO_ARG", help="passed on to `dvc repro`")


def _add_stage(commands: Any) -> None:
    stage = commands.add_parser(
        "stage",
        help="run one stage as a Prefect flow (called by dvc.yaml)",
        description="Run one pipeline stage as a Prefect flow, reading params.yaml.",
    )
    stage.add_argument("name", choices=STAGES, help="the stage to run")


def _add_diagnose(commands: Any) -> None:
    diagnose = commands.add_parser(
        "diagnose",
        help="avoidable bias, variance, data mismatch and dev overfit for given errors",
        description="Diagnose errors given as fractions (0.05 = 5%%): the four gaps, the principal problem "
        "and the knobs that act on it. Nothing is read or written.",
    )
    diagnose.add_argument(
        "--human-level",
        type=_fraction,
        required=True,
        metavar="H",
        help="human-level error, the proxy for Bayes error",
    )
    diagnose.add_argument("--train", type=_fraction, required=True, metavar="T", help="training error")
    diagnose.add_argument("--train-dev", type=_fraction, metavar="TD", help="training-dev error (optional)")
    diagnose.add_argument("--dev", type=_fraction, required=True, metavar="D", help="dev error")
    diagnose.add_argument("--test", type=_fraction, metavar="X", help="test error (optional)")
    diagnose.add_argument(
        "--tolerance",
        type=_fraction,
        default=0.02,
        metavar="E",
        help="a gap above this is a problem (default: 0.02)",
    )
    diagnose.add_argument(
        "--sizes",
        type=_sizes,
        metavar="TRAIN,TRAIN_DEV,DEV,TEST",
        help="examples behind each error, e.g. 8000,2000,400,400 (0 for a split without an error): a "
        "gap is then a problem only when it also exceeds its own 95%% uncertainty",
    )
    diagnose.add_argument("--json", action="store_true", help="print the JSON of metrics/diagnosis.json")


def _add_relabel(commands: Any) -> None:
    relabel = commands.add_parser(
        "relabel",
        help="apply corrected labels to dev and test together, as a new DVC data version",
        description="Apply the labels a person corrected: FILE (CSV or Parquet) has columns `id` and "
        "`corrected`; rows with an empty `corrected` were not reviewed. Copy reports/relabel_queue.csv "
        "(the next run rewrites it), fill in `corrected` and pass the copy. Dev and test are fixed "
        "together (a file covering only one of them is refused; a row that keeps its label counts as "
        "reviewed), train only with --train. The "
        "corrections are kept in data/relabels.csv and `dvc repro validate` makes the new data version; run "
        "`mlstrategy run` to retrain on it.",
    )
    relabel.add_argument("file", type=_typed_path, metavar="FILE", help="the corrected labels")
    relabel.add_argument(
        "--train", action="store_true", help="also correct train examples (they are refused otherwise)"
    )


def _add_init(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="set the project up for your own data (params.yaml, the data contract, DVC)",
        description="Read your data (a CSV or Parquet file, or a folder of images, inside the project), "
        "decide what each column is (numbers, categories, yes/no flags, dates, free text, ids to leave out), "
        "and write what the pipeline needs to run on it: the data section of params.yaml (comments kept), "
        "data/contract.yaml and diagnose.human_level. The file becomes a versioned DVC input (`dvc add`, and "
        "a dependency of the ingest stage: edit it and `mlstrategy run` reruns from ingest). Prints what it "
        "decided and the params key that changes each decision. Then run `mlstrategy run`.",
    )
    init.add_argument(
        "--data", required=True, type=_typed_path, metavar="PATH", help="your data file or folder"
    )
    init.add_argument(
        "--label", required=True, metavar="COLUMN", help="the column holding each example's class"
    )
    init.add_argument(
        "--id",
        metavar="COLUMN",
        help="a column with a stable, unique id per example (default: ids made from each row's values)",
    )
    init.add_argument("--source", metavar="COLUMN", help="where each example comes from (e.g. web, app)")
    init.add_argument(
        "--target",
        nargs="+",
        metavar="VALUE",
        help="the source(s) you care about in production: dev and test come from them (needs --source)",
    )
    init.add_argument("--text", metavar="COLUMN", help="text data: the column holding each example's text")
    init.add_argument(
        "--human-level",
        type=_fraction,
        metavar="FRACTION",
        help="the error people make on this task, e.g. 0.02 (default: a placeholder the report flags)",
    )
    init.add_argument(
        "--na",
        nargs="+",
        default=[],
        metavar="VALUE",
        help="values that mean 'missing' in the file, besides pandas' own and those init knows (? N/A -)",
    )
    init.add_argument("--force", action="store_true", help="replace a setup made for other data")


def _add_contract(commands: Any) -> None:
    contract = commands.add_parser(
        "contract",
        help="propose the data contract (data/contract.yaml) from a trusted snapshot",
        description="Write a data contract proposed from FILE (a CSV or Parquet file, or a folder of "
        "images, read as `ingest` reads params.yaml data.path): each column's type, null share, value set "
        "(few distinct values) or observed range and string lengths, ids unique, no other columns. Edit "
        "it: widen what you expect to move. `validate` checks every batch against it (with params.yaml "
        "data.*) before the batch becomes the current data version.",
    )
    contract.add_argument(
        "--from",
        dest="source",
        required=True,
        type=_typed_path,
        metavar="FILE",
        help="the trusted snapshot",
    )
    contract.add_argument(
        "-o",
        "--output",
        type=_typed_path,
        default=None,
        help="where to write it (default: data/contract.yaml)",
    )
    contract.add_argument("--force", action="store_true", help="replace an existing contract file")


def _add_promote(commands: Any) -> None:
    promote = commands.add_parser(
        "promote",
        help="make a registered model version the champion",
        description="Point the MLflow registry alias `champion` of params.yaml mlflow.registered_model at "
        "VERSION (default: the `challenger`, the newest run's model). The version it replaces is recorded, "
        "so that `mlstrategy rollback` can go back.",
    )
    promote.add_argument(
        "version", nargs="?", metavar="VERSION", help="a version number (default: challenger)"
    )


def _add_rollback(commands: Any) -> None:
    commands.add_parser(
        "rollback",
        help="give the champion alias back to the version it replaced",
        description="Undo the last promotion: the `champion` alias goes back to the version the current "
        "champion replaced (repeat to go further back).",
    )


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the scheduled pipeline on a cron schedule or an interval (Prefect deployment)",
        description="Serve the `scheduled_pipeline` Prefect flow as a deployment on a schedule, against the "
        "Prefect server at PREFECT_API_URL (else a local one on 127.0.0.1). Each run takes new batches from "
        "params.yaml schedule.landing, validates them (failures go to schedule.quarantine), reruns the DAG "
        "with `dvc repro`, promotes the new model if it beats the registry's champion on the test set, and "
        "pushes to the default DVC remote if there is one. With no new data it retrains nothing. Runs "
        "until interrupted (Ctrl-C).",
    )
    when = serve.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help='a cron expression, e.g. "0 3 * * *" (03:00 daily)')
    when.add_argument("--interval", type=_positive, metavar="SECONDS", help="run every SECONDS seconds")
    when.add_argument("--once", action="store_true", help="run the scheduled pipeline once, now, and exit")
    serve.add_argument("--name", default="nightly", help="the deployment's name (default: nightly)")


def _add_gradcheck(commands: Any) -> None:
    gradcheck = commands.add_parser(
        "gradcheck",
        help="check backprop against the numerical gradient on the project's losses and layers",
        description="Gradient checking as the course does it: every parameter of a tiny float64 network "
        "(params.yaml train's activation, initializer, batch norm and L2; dropout off) in one vector, the "
        "two-sided estimate with epsilon 1e-7 against backprop's gradient, for the softmax classifier (MLP "
        "and CNN) and the masked multi-task loss. About 1e-7 is fine; above 1e-3, a bug. Exit 1 when a "
        "check fails.",
    )
    gradcheck.add_argument("--json", action="store_true", help="print the results as JSON")


def _add_stage_server(commands: Any) -> None:
    server = commands.add_parser(
        "stage-server",
        help="the warm stage server: status, start or stop",
        description="The stage server keeps Prefect, pandas, Great Expectations, MLflow and TensorFlow "
        "imported and forks a fresh process for each stage, so that a stage does not pay those imports. "
        "Stages start it on their own; it stops after 20 idle minutes. Set MLSTRATEGY_STAGE_SERVER=0 to "
        "run every stage in a cold process instead.",
    )
    server.add_argument("action", choices=["status", "start", "stop"])


def _add_ui(commands: Any) -> None:
    ui = commands.add_parser(
        "ui",
        help="open the MLflow UI on this project's runs (127.0.0.1)",
        description="Serve the MLflow UI for the project's tracking store.",
    )
    ui.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)"
    )
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlstrategy",
        description="Run the ML-strategy playbook (Structuring Machine Learning Projects) as a pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(commands)
    return parser


def cmd_diagnose(args: argparse.Namespace) -> int:
    from components.diagnosis import Errors, Sizes, diagnose

    try:
        errors = Errors(train=args.train, dev=args.dev, train_dev=args.train_dev, test=args.test)
        sizes = None
        if args.sizes:
            train, train_dev, dev, test = args.sizes
            sizes = Sizes(train=train, train_dev=train_dev or None, dev=dev, test=test or None)
        result = diagnose(errors, args.human_level, args.tolerance, sizes)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{'':22}{'error':>8}")
    print(f"{'human level (Bayes)':22}{result.human_level_error:8.2%}")
    for name, value in errors.to_dict().items():
        if value is not None:
            print(f"{name:22}{value:8.2%}")
    print(f"\n{'gap':22}{'size':>8}{'+-':>8}  problem")
    for name, value in result.gaps.items():
        shown = "     n/a" if value is None else f"{value:8.2%}"
        spread = result.uncertainty.get(name)
        noise = "        " if spread is None else f"{spread:8.2%}"
        print(f"{name:22}{shown}{noise}  {'yes' if name in result.problems else 'no'}")
    for name, note in result.notes.items():
        print(f"  {name} < 0: {note}")
    print(f"\nprincipal problem: {result.principal}")
    for knob in result.knobs:
        print(f"  - {knob}")
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    from pipelines.running import stage_server
    from pipelines.running.orchestration import ensure_prefect_api, run_stage
    from pipelines.running.runtime import EXECUTION_ENV, execution_id

    ensure_prefect_api()
    # Resolved here: a stage forked by the stage server would find the server, not dvc, as its parent.
    os.environ[EXECUTION_ENV] = execution_id()
    if stage_server.enabled():
        code = stage_server.run_remote(["mlstrategy", "stage", args.name], Path.cwd(), ENTRY)
        if code is not None:
            return code
        stage_server.start_in_background(Path.cwd())

    from pipelines.store.params import load_params

    params = load_params()
    try:
        run_stage(args.name, params)
    except Exception as error:
        from pipelines.tracking import runs

        try:
            runs.record_failure(params.mlflow.experiment, execution_id(), args.name, str(error))
        except Exception as tracking_error:  # a tracking problem must not hide the stage's own error
            print(f"(could not record the failure in MLflow: {tracking_error})", file=sys.stderr)
        raise
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.running import stage_server
    from pipelines.running.orchestration import ensure_prefect_api
    from pipelines.running.runtime import EXECUTION_ENV
    from pipelines.store.artifacts import DIAGNOSIS, REPORT
    from pipelines.store.params import load_params

    params = load_params()  # fail on bad params before starting anything
    api = ensure_prefect_api()
    if stage_server.enabled():
        stage_server.start_in_background(Path.cwd())  # it preloads while the first stages run
    env = dvc_env({EXECUTION_ENV: uuid.uuid4().hex})
    version_data(params.data.path, env)
    completed = subprocess.run([script("dvc"), "repro", *args.dvc_args], env=env, check=False)
    if completed.returncode != 0:
        print(
            f"\nmlstrategy run: dvc repro failed (exit {completed.returncode}); see the message above.",
            file=sys.stderr,
        )
        return 1
    if DIAGNOSIS.is_file():
        found = json.loads(DIAGNOSIS.read_text())
        print(f"\nprincipal problem: {found['principal']}; try: {'; '.join(found['knobs'])}")
    print(
        f"report: {REPORT.resolve()}\nMLflow UI: `make ui` (or `mlstrategy ui`)\n"
        f"Prefect UI: {api.removesuffix('/api')}"
    )
    return 0


def version_data(path: str | None, env: dict[str, str]) -> None:
    """The user's data file (tracked by `mlstrategy init`'s `dvc add`) as it is now, in DVC's cache and its
    .dvc file, so that an edit in place becomes a data version git can record (unchanged: nothing to do)."""
    if not path or not Path(f"{path}.dvc").is_file():
        return
    done = subprocess.run([script("dvc"), "add", path], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"`dvc add {path}` failed: {(done.stderr + done.stdout).strip()[-800:]}")


def cmd_relabel(args: argparse.Namespace) -> int:
    from pipelines.commands.relabel import relabel
    from pipelines.store.artifacts import RAW_DATA, RELABELS
    from pipelines.store.params import load_params

    done = relabel(load_params(), args.file, train=args.train)
    reviewed = ", ".join(f"{name} {count}" for name, count in sorted(done.reviewed.items()))
    print(
        f"{sum(done.reviewed.values())} reviewed ({reviewed}); {done.changed} label(s) changed.\n"
        f"{RAW_DATA}: md5 {done.data_before} -> {done.data_after} (dvc.lock)\n"
        f"next: `mlstrategy run` retrains on it; `git add {RELABELS} dvc.lock && git commit` records it"
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pipelines.commands import initialize
    from pipelines.store.params import load_params

    if args.target and not args.source:
        raise UserError("--target needs --source (the column the target values are values of)")
    if args.human_level is not None and not 0 <= args.human_level < 1:
        raise UserError(f"--human-level {args.human_level}: an error is a fraction, e.g. 0.02 for 2%")
    root = Path.cwd()
    params = load_params()
    path = initialize.inside(args.data, root)
    setup = initialize.plan(
        params, path, args.label, args.id, args.source, args.target, args.text, args.human_level, args.na
    )
    written = initialize.apply(setup, root, args.force, params.data.path)
    print(initialize.table(setup))
    for note in setup.notes:
        print(f"- {note}")
    print(
        f"\nwrote {', '.join(written)}; reset the drift reference and the relabel record.\n"
        "next: `mlstrategy run`, then `git add "
        + " ".join(written)
        + " data/.gitignore && git commit -m 'mlstrategy init'`"
    )
    return 0


def cmd_contract(args: argparse.Namespace) -> int:
    from pipelines.store.artifacts import CONTRACT
    from pipelines.store.contract import write_contract
    from pipelines.store.params import load_params

    output = args.output or CONTRACT.resolve()
    columns = write_contract(load_params(), _shown(args.source), _shown(output), force=args.force)
    print(
        f"{_shown(output)}: {columns} columns proposed from {_shown(args.source)}; "
        "edit it, then `mlstrategy run`"
    )
    return 0


def _shown(path: Path) -> Path:
    """`path` relative to the project root when it is inside it."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def cmd_registry(args: argparse.Namespace) -> int:
    from pipelines.store.params import load_params
    from pipelines.tracking import registry

    options = load_params().mlflow
    name = options.registered_model
    if args.command == "promote":
        moved = registry.promote(options.experiment, name, args.version)
    else:
        moved = registry.rollback(options.experiment, name)
    print(f"{name}: {registry.CHAMPION} version {moved.before or '(none)'} -> {moved.after}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.running import scheduled
    from pipelines.running.orchestration import console_without_tracebacks, ensure_prefect_api
    from pipelines.store.params import load_params

    load_params()  # fail on bad params before serving anything
    api = ensure_prefect_api()
    console_without_tracebacks()
    if args.once:
        outcome = scheduled.scheduled_pipeline()["outcome"]
        print(f"scheduled run: {outcome}")
        return 0
    print(f"serving scheduled_pipeline/{args.name} on {api.removesuffix('/api')} (Ctrl-C stops)")
    scheduled.serve(cron=args.cron, interval=args.interval, name=args.name)
    return 0


def _typed_path(text: str) -> Path:
    """A path as typed: resolved now, because the command then runs from the project root."""
    return Path(text).resolve()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from components.gradcheck import EPSILON, project_checks
    from pipelines.store.params import load_params

    checks = project_checks(load_params().train)
    if args.json:
        print(json.dumps([{**vars(c), "verdict": c.verdict, "passed": c.passed} for c in checks], indent=2))
    else:
        print(f"gradient check, epsilon {EPSILON:g}, float64, dropout off")
        for check in checks:
            print(f"  {check.name:36} {check.relative_difference:10.2e}  {check.verdict}")
            print(
                f"  {'':36} {check.parameters} parameters; largest difference "
                f"{check.worst_difference:.2e} in {check.worst_variable}"
            )
    return 0 if all(check.passed for check in checks) else 1


def cmd_stage_server(args: argparse.Namespace) -> int:
    from pipelines.running import stage_server

    root = Path.cwd()
    if args.action == "stop":
        print("stopped" if stage_server.stop(root) else "not running")
    elif args.action == "start":
        print("starting" if stage_server.start_in_background(root) else "already running or starting")
    else:
        try:
            where = stage_server.socket_path(root)
        except stage_server.Unsafe as error:
            raise UserError(str(error)) from None
        print(f"{'running' if stage_server.running(root) else 'not running'} ({where})")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.tracking.runs import ui_command

    return subprocess.run(ui_command(args.host, args.port), check=False).returncode


# name -> (its parser, its handler), in the order `mlstrategy --help` lists them.
COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "run": (_add_run, cmd_run),
    "stage": (_add_stage, cmd_stage),
    "diagnose": (_add_diagnose, cmd_diagnose),
    "relabel": (_add_relabel, cmd_relabel),
    "init": (_add_init, cmd_init),
    "contract": (_add_contract, cmd_contract),
    "promote": (_add_promote, cmd_registry),
    "rollback": (_add_rollback, cmd_registry),
    "serve": (_add_serve, cmd_serve),
    "gradcheck": (_add_gradcheck, cmd_gradcheck),
    "stage-server": (_add_stage_server, cmd_stage_server),
    "ui": (_add_ui, cmd_ui),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "run":  # `mlstrategy run --force train` passes both on to dvc repro
        args.dvc_args = [arg for arg in [*unknown, *args.dvc_args] if arg != "--"]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_environment()
    try:
        if args.command != "diagnose":
            os.chdir(project_root())
        return COMMANDS[args.command][1](args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        label = " ".join(["mlstrategy", args.command] + ([args.name] if args.command == "stage" else []))
        error = as_user_error(error)
        print(f"{label}: error: {error}", file=sys.stderr)
        return error.exit_code


def as_user_error(error: Exception) -> UserError:
    """`error` as the message a user sees: a UserError as it is; a full disk as NoSpace; anything else (a
    bug) in one line, its traceback written to a file the message names (MLSTRATEGY_DEBUG=1 raises it)."""
    import tempfile
    import traceback

    if isinstance(error, UserError):
        return error
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        where = f" writing {error.filename}" if error.filename else ""
        return NoSpace(
            f"no space left on the device{where}; the last good outputs are kept; free some and rerun"
        )
    if os.environ.get("MLSTRATEGY_DEBUG") == "1":
        raise error
    log = Path(tempfile.gettempdir(), f"mlstrategy-error-{os.getpid()}.txt")
    log.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    first = str(error).splitlines()[0] if str(error) else ""
    return UserError(
        f"unexpected {type(error).__name__}: {first} (a bug: the traceback is in {log}; "
        "MLSTRATEGY_DEBUG=1 shows it here)"
    )


if __name__ == "__main__":
    sys.exit(main())
