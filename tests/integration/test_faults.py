"""The fault catalogue of unattended scheduled runs: each case injects one fault against real parts (an MLflow
tracking server, the Prefect API, DVC, the stage server, a file system that fills) and checks where the
champion, the data version and every batch are afterwards. `make test` prints "fault catalogue: N of N
cases pass"."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import TemporaryFailure, Unavailable
from pipelines.running import scheduled, stage_server
from pipelines.store import artifacts, landing
from tests.conftest import copy_of, digest, enter, free_port, git_repository, start_server, stop_process

pytestmark = pytest.mark.catalogue("fault")

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def base(split_project, tmp_path_factory):
    """The bundled data's splits in a git repository (its code and settings committed, as in a clone; the
    outputs are DVC's), to copy for each case."""
    return git_repository(copy_of(split_project, tmp_path_factory.mktemp("faults")), sources_only=True)


@pytest.fixture
def project(base, tmp_path, monkeypatch):
    """A copy of `base` as the working directory, with a landing folder, settled files taken at once."""
    here = enter(copy_of(base, tmp_path / "project"), monkeypatch)
    text = (here / "params.yaml").read_text().replace("  settle_s: 5\n", "  settle_s: 0\n")
    (here / "params.yaml").write_text(text)
    (here / "data/landing").mkdir()
    return here


def batch(project: Path, rows: int, first: int = 9000, bad: bool = False) -> pd.DataFrame:
    """New rows shaped as the data (copies of examples under new ids); `bad`: one label out of the set."""
    frame = pd.read_parquet(project / artifacts.RAW_DATA)
    new = frame[frame["source"] == "phone"].head(rows).reset_index(drop=True)
    new["id"] = [f"phone-{first + i}" for i in range(rows)]  # the ids' pattern, as the contract has it
    if bad:
        new.loc[new.index[1], "label"] = 42
    return new


def places(project: Path) -> dict[str, list[str]]:
    """Every batch file's place: landing, batches (accepted) or quarantine."""
    return {
        folder: sorted(p.name for p in artifacts.batch_files(project / "data" / folder))
        if (project / "data" / folder).is_dir()
        else []
        for folder in ("landing", "batches", "quarantine")
    }


# -- 1. the tracking server stops during the comparison ---------------------------------------------


def mlflow_server(root: Path, port: int) -> subprocess.Popen:
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--default-artifact-root", (root / "artifacts").as_uri()]
    return start_server(command, f"http://127.0.0.1:{port}", root / "server.log")


def register_two(project: Path) -> tuple[str, str]:
    """A champion that answers one class to everything and a challenger trained on train (a dense layer on
    the 64 pixels), registered as the pipeline registers its models."""
    import keras

    from pipelines.store.params import load_params
    from pipelines.store.tables import classes, feature_columns, xy
    from pipelines.tracking import registry
    from tests.conftest import register_version

    params = load_params()
    train = pd.read_parquet(project / "data/splits/train.parquet")
    labels = classes(params.data)
    x, y = xy(train, params.data, feature_columns(train.columns, params.data), labels)
    versions = []
    for trained in (False, True):
        model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(len(labels), "softmax")])
        if trained:
            model.compile("adam", "sparse_categorical_crossentropy")
            model.fit(x, y, epochs=5, verbose=0)
        else:
            for weight in model.weights:
                weight.assign(np.zeros(weight.shape, weight.dtype))
        path = project / f"model-{trained}.keras"
        model.save(path)
        versions.append(register_version(path))
    registry.promote(params.mlflow.experiment, params.mlflow.registered_model, versions[0])
    return versions[0], versions[1]


def champion() -> str:
    from pipelines.tracking import registry

    return str(registry.version_of("mlstrategy", "mlstrategy", registry.CHAMPION).version)


def test_fault_1_tracking_server_stops_during_the_comparison(project, prefect_api, monkeypatch, tmp_path):
    port, root = free_port(), tmp_path / "mlflow"
    root.mkdir()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail in seconds, not after minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = mlflow_server(root, port)
    try:
        worse, better = register_two(project)
        # A run that accepted a batch and trained, and is now comparing: the journal says so.
        accepted = batch(project, 10)
        (project / "data/batches").mkdir(exist_ok=True)
        accepted.to_parquet(project / "data/batches/accepted.parquet", index=False)
        landing.Journal(landing.COMPARING, accepted=["accepted.parquet"]).write()
        stop_process(server)
        with pytest.raises(Unavailable, match=rf"the MLflow registry at {url} did not answer"):
            scheduled.scheduled_pipeline()
        assert landing.Journal.read().phase == landing.COMPARING  # the next run compares again
        assert places(project)["batches"] == ["accepted.parquet"]  # the batch stays accepted

        server = mlflow_server(root, port)
        assert champion() == worse  # nothing promoted while the server was away
        outcome = scheduled.scheduled_pipeline()
        assert outcome["resumed"] == landing.COMPARING
        assert outcome["outcome"] == "challenger wins: promoted" and champion() == better
        assert landing.Journal.read() is None and places(project)["batches"] == ["accepted.parquet"]
    finally:
        stop_process(server)


# -- 2. the Prefect API goes away, and comes back --------------------------------------------------


def test_fault_2_prefect_api_away_quarantines_nothing(project, prefect_api, monkeypatch):
    good = batch(project, 12)
    good.to_parquet(project / "data/landing/good.parquet", index=False)
    kept = digest(project / artifacts.RAW_DATA)
    # The API the stages report to answers no more (its port is closed).
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    monkeypatch.setenv("MLSTRATEGY_STAGE_SERVER", "0")
    with pytest.raises(TemporaryFailure, match="nothing quarantined") as raised:
        scheduled.scheduled_pipeline()
    assert "does not answer" in str(raised.value)
    assert places(project) == {"landing": ["good.parquet"], "batches": [], "quarantine": []}
    assert digest(project / artifacts.RAW_DATA) == kept and landing.Journal.read() is None

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)  # back
    assert (
        scheduled.judge_batch.fn(
            project / "data/landing/good.parquet", Path("data/quarantine"), Path("data/landing"), []
        )
        is None
    )
    assert places(project) == {"landing": [], "batches": ["good.parquet"], "quarantine": []}
    assert digest(project / artifacts.RAW_DATA) != kept  # the new data version holds the batch


# -- 3. two runs at once --------------------------------------------------------------------------


def test_fault_3_two_runs_at_once_handle_each_batch_once(project, prefect_api):
    batch(project, 12, bad=True).to_parquet(project / "data/landing/bad.parquet", index=False)
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "MLSTRATEGY_STAGE_SERVER": "0"}
    command = [str(BIN / "mlstrategy"), "serve", "--once"]
    runs = [
        subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    outcomes = sorted(out.strip().splitlines()[-1] for out, _ in outputs)
    handled = [o for o in outcomes if "every new batch failed validation" in o]
    others = [o for o in outcomes if o not in handled]
    # One run took the batch; the other found the lock held, or (started after) nothing new.
    assert len(handled) == 1 and ("skipped: another scheduled run" in others[0] or "nothing new" in others[0])
    assert places(project) == {"landing": [], "batches": [], "quarantine": ["bad.parquet"]}
    # The refused batch's stage ended with DataError's status, said in one line on the real console.
    report = (project / "data/quarantine/bad.parquet.txt").read_text()
    assert "exited with 65" in report and "expect_column_values_to_be_in_set on column 'label'" in report
    assert not any("Traceback" in out + err for out, err in outputs)


# -- 4. a batch still being written --------------------------------------------------------------


def test_fault_4_a_batch_being_written_waits_for_the_next_run(project, prefect_api):
    path = project / "data/landing/slow.csv"
    frame = batch(project, 40)
    done = threading.Event()

    def write_slowly() -> None:
        with path.open("w") as handle:
            for start in range(0, len(frame), 4):
                handle.write(frame.iloc[start : start + 4].to_csv(index=False, header=start == 0))
                handle.flush()
                time.sleep(0.3)
        done.set()

    text = (project / "params.yaml").read_text().replace("  settle_s: 0\n", "  settle_s: 1\n")
    (project / "params.yaml").write_text(text)
    writer = threading.Thread(target=write_slowly)
    writer.start()
    time.sleep(0.5)
    outcome = scheduled.scheduled_pipeline()
    writer.join()
    assert done.is_set()
    assert (
        outcome["left_for_next_run"] == ["slow.csv"]
        and outcome["outcome"] == "nothing new: nothing retrained"
    )
    assert places(project)["landing"] == ["slow.csv"] and len(pd.read_csv(path)) == len(frame)  # whole, there


# -- 5. names: a batch accepted before, and two with one name ----------------------------------------


def test_fault_5_same_names_lose_nothing(project, prefect_api):
    (project / "data/batches").mkdir(exist_ok=True)
    first = batch(project, 10)
    first.to_parquet(project / "data/batches/b.parquet", index=False)
    again = batch(project, 10, first=9500)  # other rows under a name accepted before
    again.to_parquet(project / "data/landing/b.parquet", index=False)
    quarantine = Path("data/quarantine")
    assert "was accepted before" in scheduled.judge_batch.fn(
        Path("data/landing/b.parquet"), quarantine, Path("data/landing"), []
    )
    assert pd.read_parquet(project / "data/batches/b.parquet").equals(first)  # never replaced
    assert pd.read_parquet(quarantine / "b.parquet").equals(again)
    # Two refused batches with one name, one after the other: both kept, each with its reason.
    for reason in ("first", "second"):
        again.to_parquet(project / "data/landing/c.parquet", index=False)
        landing.quarantine(Path("data/landing/c.parquet"), quarantine, f"{reason} reason")
    kept = sorted(p.name for p in quarantine.glob("c.*parquet"))
    assert len(kept) == 2 and "c.parquet" in kept
    assert {(quarantine / f"{name}.txt").read_text() for name in kept} == {
        "first reason\n",
        "second reason\n",
    }


# -- 6. the served process killed mid-run --------------------------------------------------------------


def test_fault_6_killed_during_validation_loses_no_batch(project, prefect_api):
    batch(project, 12).to_parquet(project / "data/landing/k.parquet", index=False)
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "MLSTRATEGY_STAGE_SERVER": "0"}
    served = subprocess.Popen(
        [str(BIN / "mlstrategy"), "serve", "--once"],
        cwd=project,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while (journal := landing.Journal.read()) is None or journal.phase != landing.VALIDATING:
        assert served.poll() is None and time.monotonic() < deadline, "validation never started"
        time.sleep(0.1)
    time.sleep(2)  # inside `dvc repro validate`
    os.killpg(served.pid, signal.SIGKILL)
    served.wait()
    assert places(project)["batches"] == ["k.parquet"]  # taken, not judged: the journal says so
    assert landing.recover(Path("data/landing")) is None
    assert places(project) == {"landing": ["k.parquet"], "batches": [], "quarantine": []}
    with landing.exclusive() as mine:
        assert mine  # the killed run's lock went with it


# -- 7. the disk fills during a stage ----------------------------------------------------------------


def test_fault_7_a_full_disk_keeps_the_last_good_outputs(project, prefect_api, tmp_path, capsys):
    from pipelines.cli import main

    reports = project / "reports"
    saved = tmp_path / "reports"
    shutil.copytree(reports, saved)
    # Room for the reports as they are (4 KiB pages per file) and a little more, which the filler takes.
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in saved.rglob("*") if p.is_file())
    mount = ["mount", "-t", "tmpfs", "-o", f"size={used // 1024 + 2048}k", "tmpfs", str(reports)]
    mounted = subprocess.run(mount, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(saved, reports, dirs_exist_ok=True)
        filler = reports / "filler"
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):  # until the file system is full
            while True:
                os.write(descriptor, b"\0" * 65536)
        os.close(descriptor)
        os.truncate(filler, max(0, filler.stat().st_size - 40_000))  # ~40 KB left: less than Data Docs need
        frame = pd.read_parquet(artifacts.INGESTED)
        frame.loc[0, "label"] = (frame.loc[0, "label"] + 1) % 10  # a new batch to validate
        frame.to_parquet(artifacts.INGESTED, index=False)
        outputs = [artifacts.RAW_DATA, artifacts.VALIDATION, artifacts.DATA_DOCS]
        before = digest(*outputs)
        code = main(["stage", "validate"])
        err = capsys.readouterr().err
        assert code == 74 and "mlstrategy stage validate: error: no space left on the device" in err, err[
            -3000:
        ]
        assert "Traceback" not in err
        assert digest(*outputs) == before  # the last good data version and its reports
        assert not list(reports.glob(".*tmp-*"))
    finally:
        subprocess.run(["umount", str(reports)], check=False)


# -- 8. the stage server --------------------------------------------------------------------------


def raw_request(path: Path, payload: bytes, header: bytes | None = None) -> bytes:
    """Send bytes to the server's socket as a client would, and what it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall((header if header is not None else len(payload).to_bytes(4, "big")) + payload)
        try:
            return client.recv(1000)
        except OSError:
            return b""


def test_fault_8_the_stage_server_survives_bad_clients_and_hung_stages(project, prefect_api, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, stage_server.SWITCH: "1"}
    subprocess.run([str(BIN / "mlstrategy"), "stage-server", "start"], cwd=project, env=env, check=True)
    path = stage_server.socket_path(project)
    deadline = time.monotonic() + 180
    while not stage_server.running(project):
        assert time.monotonic() < deadline, path.with_suffix(".log").read_text()[-2000:]
        time.sleep(0.5)
    ui_port = free_port()
    try:
        # Malformed requests: a JSON list, a header that promises more than comes, garbage.
        for payload, header in (
            (b"[1, 2]", None),
            (b"{}", (1 << 20).to_bytes(4, "big")),
            (b"\xff\xfe", None),
        ):
            raw_request(path, payload, header)
            assert stage_server.running(project)
        # A stage that does not end (a server in the foreground) and a client that gives up on it; the
        # next stage runs meanwhile.
        hung = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from pipelines.running import stage_server as s; "
                "ui = ['mlstrategy', 'ui', '--port', sys.argv[1]]; "
                "sys.exit(s.run_remote(ui, Path.cwd(), 'pipelines.cli:main') or 0)",
                str(ui_port),
            ],
            cwd=project,
            env=env,
        )
        time.sleep(3)
        done = subprocess.run(
            [str(BIN / "mlstrategy"), "stage-server", "status"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and "running" in done.stdout
        code = stage_server.run_remote(["mlstrategy", "diagnose", "--help"], project, "pipelines.cli:main")
        assert code == 0  # served while the other stage hangs
        hung.kill()  # the client goes; its stage goes with it
        hung.wait()
        deadline = time.monotonic() + 30
        log = path.with_suffix(".log")
        while "served: mlstrategy ui" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "served: mlstrategy ui" in log.read_text()
        assert not leftovers(project)  # the UI it started went with it (the stage's process group)
        # Someone else's socket at the path, answering nothing: stages run in their own processes.
        stop = subprocess.run([str(BIN / "mlstrategy"), "stage-server", "stop"], cwd=project, env=env)
        assert stop.returncode == 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as squatter:
            squatter.bind(str(path))
            squatter.listen(1)
            started = time.monotonic()
            assert (
                stage_server.run_remote(["mlstrategy", "diagnose", "--help"], project, "pipelines.cli:main")
                is None
            )
            assert time.monotonic() - started < stage_server.REPLY_TIMEOUT_S + 5
        path.unlink(missing_ok=True)
    finally:
        subprocess.run([str(BIN / "mlstrategy"), "stage-server", "stop"], cwd=project, env=env, check=False)
        stop_leftovers(project)  # whatever a failed check left running


def leftovers(project: Path) -> list:
    """Processes still running that a stage of `project` started (their command line names it)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(project) in " ".join(process.info["cmdline"] or []) and "stage_server" not in str(
            process.info["cmdline"]
        ):
            found.append(process)
    return found


def stop_leftovers(project: Path) -> None:
    import psutil

    for process in leftovers(project):
        with contextlib.suppress(psutil.Error):
            process.kill()


def test_fault_8b_a_socket_directory_made_by_someone_else_turns_the_server_off(
    project, monkeypatch, tmp_path
):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"mlstrategy-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(stage_server.Unsafe, match="not a private directory of yours"):
        stage_server.socket_path(project)
    assert (
        stage_server.run_remote(["mlstrategy", "diagnose", "--help"], project, "pipelines.cli:main") is None
    )
    assert stage_server.start_in_background(project) is False
    from pipelines.cli import main

    assert main(["stage-server", "status"]) == 1
