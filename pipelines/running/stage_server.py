"""Warm stage processes: every DVC stage still runs in a process of its own, but that process is forked
from a server that has already imported Prefect, pandas, Great Expectations, MLflow and TensorFlow.

Started cold, a stage process spends ~1.5 s importing Prefect and pandas before its work, the validate
stage ~4 s more for Great Expectations, report ~2 s for MLflow, train and evaluate ~5 s each for TensorFlow
(benchmarks/bench_pipeline.py measures it). `mlstrategy stage NAME` first asks this project's server to
fork a child for it; the child takes over the caller's stdin/stdout/stderr, working directory, environment
and arguments, and its exit status becomes the caller's. No server, or one started with a different
environment: the stage runs in its own process as usual and starts a server in the background for the
next stages.

The server imports third-party packages only. The project's modules are imported by each child after the
fork, so an edited stage never runs stale code. The server exits when the installed packages change, after
IDLE_TIMEOUT_S without a request, or on `mlstrategy stage-server stop`. It listens on a Unix socket in a
directory only its user can open and serves only that user. MLSTRATEGY_STAGE_SERVER=0 turns it off.

This module imports nothing from the project, so that the server never holds a copy of project code.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import importlib
import io
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SWITCH = "MLSTRATEGY_STAGE_SERVER"
IDLE_TIMEOUT_S = 20 * 60
REPLY_TIMEOUT_S = 10.0  # for the server's first answer (accepted or not), which never waits on a stage
REQUEST_TIMEOUT_S = 2.0  # for a whole request once connected: a stalled client holds up others no longer
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "yaml",
    "pydantic",
    "jinja2",
    "psutil",
    "scipy.ndimage",
    "sklearn.datasets",
    "prefect",
    "prefect.flows",
    "prefect.tasks",
    "prefect.cache_policies",
    "prefect.settings",
    "great_expectations",
    "great_expectations.expectations",
    "mlflow",
    "mlflow.tracking",
    "matplotlib.figure",
    "keras",
)
# Settings that the preloaded packages read when they are imported: a request whose values differ from the
# server's would see the server's, so it runs in its own process instead.
FINGERPRINT_PREFIXES = ("PREFECT_", "MLFLOW_", "KERAS_", "TF_", "GX_", "CUDA_", "XLA_", "HF_")
FINGERPRINT_NAMES = ("DO_NOT_TRACK", "PYTHONPATH", "PYTHONHASHSEED", "HOME")
PROJECT_PACKAGES = ("pipelines", "components")
_HEADER = struct.Struct("!I")
# The stages in flight: child pid -> (its client's connection, None once the client left; command line;
# start time).
Children = dict[int, tuple[socket.socket | None, str, float]]


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def fingerprint(env: dict[str, str]) -> str:
    relevant = sorted(
        (key, value)
        for key, value in env.items()
        if key.startswith(FINGERPRINT_PREFIXES) or key in FINGERPRINT_NAMES
    )
    return hashlib.sha256(json.dumps([sys.prefix, relevant]).encode()).hexdigest()


class Unsafe(Exception):
    """The socket directory is not a private directory of this user: no server is used (stages run in
    their own processes) until it is removed."""


def socket_dir() -> Path:
    """This user's private directory for the servers' sockets, created mode 700. Checked without following
    a symlink: a directory (or a link to one) that someone else made there first raises Unsafe."""
    directory = Path(tempfile.gettempdir()) / f"mlstrategy-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise Unsafe(
            f"{directory} is not a private directory of yours (mode 700, not a link): the stage server is "
            "off and every stage runs in its own process; remove it to let the server use it"
        )
    return directory


def socket_path(root: Path, directory: Path | None = None) -> Path:
    """Per user, project and Python environment (sys.prefix: `python` and `python3` of one venv are one
    environment); short enough for AF_UNIX (108 bytes)."""
    key = hashlib.sha256(f"{root.resolve()}\0{sys.prefix}".encode()).hexdigest()[:16]
    return (directory or socket_dir()) / f"{key}.sock"


def _packages_token() -> float:
    return Path(sysconfig.get_paths()["purelib"]).stat().st_mtime


# ---------------------------------------------------------------------------------------------- client


def _request(root: Path, request: dict, fds: list[int]) -> socket.socket | None:
    """Send one request (and the file descriptors it hands over) to the project's server; None when no
    server listens."""
    try:
        path = socket_path(root)
    except Unsafe as error:
        print(f"mlstrategy: {error}", file=sys.stderr)
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(REPLY_TIMEOUT_S)
    try:
        connection.connect(str(path))
        if _peer_uid(connection) != os.getuid():  # only a server of this user gets the environment
            connection.close()
            return None
        payload = json.dumps(request).encode()
        socket.send_fds(connection, [_HEADER.pack(len(payload))], fds)
        connection.sendall(payload)
    except OSError:
        connection.close()
        return None
    return connection


def _peer_uid(connection: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def run_remote(argv: list[str], root: Path, entry: str) -> int | None:
    """Run `argv` (a `mlstrategy stage ...` command line) in a child of the server, which calls `entry`
    ("module:function", a function of the project taking the arguments after argv[0]) with it.

    Returns the child's exit status, or None when no server can take it (then run it yourself).
    """
    with _standard_fds() as fds:
        request = {
            "argv": argv,
            "entry": entry,
            "cwd": str(Path.cwd()),
            "env": dict(os.environ),
            "path": sys.path,  # the child imports the code this process would, not the server's copy
        }
        connection = _request(root, request, fds)
    if connection is None:
        return None
    with connection, connection.makefile("r", encoding="utf-8") as reader:
        try:
            reply = json.loads(reader.readline() or '{"accepted": false}')
        except (OSError, ValueError):  # no answer in REPLY_TIMEOUT_S, or not the server's
            return None
        if not reply.get("accepted"):
            return None
        connection.settimeout(None)  # a stage takes as long as it takes
        child = reply["pid"]
        forward = lambda signum, _frame: _signal_quietly(child, signum)  # noqa: E731
        previous = {
            sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            line = reader.readline()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not line:
            print("mlstrategy: the stage server went away during the stage", file=sys.stderr)
            return 1
        return int(json.loads(line)["exit"])


def running(root: Path) -> bool:
    """True when the project's server answers (a socket file alone may be left by a killed server)."""
    connection = _request(root, {"ping": True}, [])
    if connection is None:
        return False
    with connection:
        return connection.recv(1) == b"\n"


def _signal_quietly(pid: int, signum: int) -> None:
    """Signal a stage and every process it started: each child leads a process group of its own, as a
    command in a shell does, so Ctrl-C or a client that leaves reach its subprocesses too."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):  # not (yet) a group of its own: the child alone
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@contextlib.contextmanager
def _standard_fds() -> Iterator[list[int]]:
    """stdin, stdout, stderr as file descriptors to pass on; /dev/null for a closed one."""
    opened = []
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            opened.append(os.open(os.devnull, os.O_RDWR))
            fds.append(opened[-1])
    try:
        yield fds
    finally:
        for fd in opened:
            os.close(fd)


def start_in_background(root: Path) -> bool:
    """Start the project's server unless one runs or is starting; True when one was started.

    Not in DVC's temporary experiment workspaces (.dvc/tmp/exps/...): each is a short-lived copy of the
    project, and `dvc queue start --jobs N` would leave a server per copy.
    """
    if ".dvc/tmp/exps" in root.resolve().as_posix():
        return False
    try:
        path = socket_path(root)
    except Unsafe:
        return False  # said once, by the stage that asks for it (`_request`)
    lock = path.with_suffix(".lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a server holds the lock: running or preloading
        fcntl.flock(handle, fcntl.LOCK_UN)
    log = open(path.with_suffix(".log"), "ab")  # noqa: SIM115 (handed to the child)
    with log:
        subprocess.Popen(
            [sys.executable, "-m", "pipelines.running.stage_server", "serve", str(root.resolve())],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return True


def stop(root: Path) -> bool:
    """Ask the project's server to exit; True when one was running."""
    connection = _request(root, {"stop": True}, [])
    if connection is None:
        return False
    with connection:
        connection.recv(1)
    return True


# ---------------------------------------------------------------------------------------------- server


def serve(root: Path, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
    path = socket_path(root)
    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 (held for the server's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server for this project won the race
    started = time.monotonic()
    for name in PRELOAD:
        importlib.import_module(name)
    expected = fingerprint(dict(os.environ))
    packages = _packages_token()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    print(f"stage server for {root} ready in {time.monotonic() - started:.1f} s on {path}", flush=True)
    # Each stage in flight is supervised here without blocking the others: a hung one holds up no other.
    children: Children = {}
    last_request = time.monotonic()
    try:
        while True:
            watched = [listener, *(connection for connection, _, _ in children.values() if connection)]
            readable, _, _ = select.select(watched, [], [], 0.2)
            _reap(children)
            for connection in readable:
                if connection is not listener:
                    _drop_if_gone(connection, children)
                    continue
                client, _ = listener.accept()
                last_request = time.monotonic()
                try:
                    stop_now = _handle(client, listener, lock, expected, children)
                except Exception as error:
                    print(f"ignored a malformed request: {error!r}", flush=True)
                    stop_now = False
                if not any(client is held for held, _, _ in children.values()):
                    client.close()
                if stop_now:
                    return
            idle = not children and time.monotonic() - last_request > idle_timeout_s
            if idle or (not children and _packages_token() != packages):
                break
    finally:
        for child in children:
            _signal_quietly(child, signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener.close()
        print("stage server stopped", flush=True)


def _handle(
    connection: socket.socket,
    listener: socket.socket,
    lock: io.IOBase,
    expected: str,
    children: Children,
) -> bool:
    """Serve one request: answer a ping or a stop (True: stop), or fork a child for a stage and add it to
    `children`. Anything but a well-formed request from this user is dropped."""
    if _peer_uid(connection) != os.getuid():
        return False
    connection.settimeout(REQUEST_TIMEOUT_S)  # a client that stalls mid-request is dropped
    message, fds, _, _ = socket.recv_fds(connection, _HEADER.size, 3)
    try:
        (length,) = _HEADER.unpack(message)
        payload = b""
        while len(payload) < length:
            chunk = connection.recv(length - len(payload))
            if not chunk:
                return False
            payload += chunk
        request = json.loads(payload)
        if not isinstance(request, dict):
            raise ValueError(f"a request is a JSON object, got {type(request).__name__}")
        if request.get("stop") or request.get("ping"):
            connection.sendall(b"\n")
            return bool(request.get("stop"))
        _check_request(request)
        command = " ".join(request["argv"])
        if len(fds) != 3 or fingerprint(request["env"]) != expected:
            print(f"refused (different environment): {command}", flush=True)
            connection.sendall(b'{"accepted": false}\n')
            return False
        if _gone(connection):  # the client gave up before its turn: nothing to run for it
            print(f"dropped (client gone): {command}", flush=True)
            return False
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        child = os.fork()
        if child == 0:
            os.setpgid(0, 0)
            held = [c for c, _, _ in children.values() if c]
            _run_child(request, fds, [connection, listener, lock, *held])
        with contextlib.suppress(OSError):  # also here, so that a signal sent at once finds the group
            os.setpgid(child, child)
    finally:
        for fd in fds:
            os.close(fd)
    connection.settimeout(None)
    children[child] = (connection, command, time.monotonic())
    connection.sendall(json.dumps({"accepted": True, "pid": child}).encode() + b"\n")
    return False


def _check_request(request: dict) -> None:
    """The shape of a stage request, before anything is forked for it."""
    shapes = {"argv": list, "entry": str, "cwd": str, "env": dict, "path": list}
    for key, kind in shapes.items():
        if not isinstance(request.get(key), kind):
            raise ValueError(f"{key!r} missing or not a {kind.__name__}")
    if not all(
        isinstance(item, str) for item in [*request["argv"], *request["path"], *request["env"].values()]
    ):
        raise ValueError("argv, path and env hold strings only")


def _gone(connection: socket.socket) -> bool:
    """True when the client has closed its end (its connection reads as ended)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _drop_if_gone(connection: socket.socket, children: Children) -> None:
    """A client that disconnects during its stage takes its child down with it (reaped later)."""
    if _gone(connection):
        for child, (held, command, started) in list(children.items()):
            if held is connection:
                _signal_quietly(child, signal.SIGTERM)
                connection.close()
                children[child] = (None, command, started)


def _reap(children: Children) -> None:
    """Answer each finished child's client with its exit status."""
    for child in list(children):
        pid, status = os.waitpid(child, os.WNOHANG)
        if not pid:
            continue
        connection, command, started = children.pop(child)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        print(f"served: {command} -> exit {code} ({time.monotonic() - started:.1f} s)", flush=True)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"exit": code}).encode() + b"\n")
            connection.close()


def _run_child(request: dict, fds: list[int], inherited: list) -> None:
    code = 1
    try:
        for item in inherited:
            item.close()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[SWITCH] = "0"  # this child runs the stage itself
        sys.argv = list(request["argv"])
        sys.path[:] = request["path"]
        for name in [n for n in sys.modules if n.split(".")[0] in PROJECT_PACKAGES]:
            del sys.modules[name]  # the project's code is imported fresh by every child
        code = _entry_point(request["entry"])(sys.argv[1:])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _entry_point(entry: str) -> Any:
    """The function named by `entry` ("module:function"), imported fresh; only the project's modules."""
    module, _, name = entry.partition(":")
    if module.split(".")[0] not in PROJECT_PACKAGES or not name:
        raise ValueError(f"stage server: refusing entry point {entry!r}: not a function of the project")
    return getattr(importlib.import_module(module), name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.running.stage_server")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("root", type=Path)
    serve(parser.parse_args().root)


if __name__ == "__main__":
    main()
