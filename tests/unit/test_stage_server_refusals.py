"""The stage server's refusals, without a server process: a request from another user, one that does not
hand over the three standard streams, a socket directory others can open, and the exits on its own (idle,
changed packages). Each next to the case it refuses, which it serves."""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from pipelines.running import stage_server


@pytest.fixture
def socket_dir(tmp_path, monkeypatch):
    """The server's socket directory under tmp_path, not the machine's temporary directory."""
    monkeypatch.setattr(stage_server.tempfile, "gettempdir", lambda: str(tmp_path))
    return tmp_path / f"mlstrategy-{os.getuid()}"


def send(client: socket.socket, request: dict, fds: list[int]) -> None:
    """A request as `_request` sends it: a length header with the file descriptors, then the JSON."""
    payload = json.dumps(request).encode()
    socket.send_fds(client, [stage_server._HEADER.pack(len(payload))], fds)
    client.sendall(payload)


def handle(request: dict, fds: list[int]) -> tuple[bool, bytes]:
    """`_handle` on one connection of a socket pair: whether it asks to stop, and what the client read back
    (b"" when the server closed the connection without a word)."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, server:
        send(client, request, fds)
        children: stage_server.Children = {}
        stop = stage_server._handle(server, None, None, stage_server.fingerprint(dict(os.environ)), children)
        assert not children  # nothing forked
        server.shutdown(socket.SHUT_WR)
        client.settimeout(5)
        return stop, client.recv(1024)


def test_a_request_from_another_user_is_not_served(monkeypatch):
    assert handle({"stop": True}, []) == (True, b"\n")  # from this user: served
    uid = os.getuid()
    # The peer (this process, SO_PEERCRED) is now another user than the server.
    monkeypatch.setattr(stage_server.os, "getuid", lambda: uid + 1)
    assert handle({"stop": True}, []) == (False, b"")  # not stopped, not answered
    assert handle({"ping": True}, []) == (False, b"")


def test_a_request_without_the_three_standard_streams_runs_cold(capsys, tmp_path):
    request = {"argv": ["mlstrategy", "stage", "ingest"], "entry": "pipelines.cli:main", "cwd": str(tmp_path)}
    request["env"] = dict(os.environ)  # the server's own environment: only the streams are missing
    request["path"] = list(sys.path)
    open_fds = set(os.listdir("/proc/self/fd"))
    with open(os.devnull) as null:
        for fds in ([], [null.fileno()], [null.fileno()] * 2):
            stop, reply = handle(request, fds)
            assert not stop and json.loads(reply) == {"accepted": False}, fds
            assert "refused (different environment): mlstrategy stage ingest" in capsys.readouterr().out
    assert set(os.listdir("/proc/self/fd")) == open_fds  # the descriptors it was handed are closed again


def test_the_socket_directory_must_be_private_and_yours(socket_dir, tmp_path, monkeypatch):
    path = stage_server.socket_path(tmp_path)  # created private
    assert path.parent == socket_dir and socket_dir.stat().st_mode & 0o777 == 0o700
    socket_dir.chmod(0o750)  # others may open it: one of them could listen in the server's place
    with pytest.raises(stage_server.Unsafe, match="is not a private directory of yours"):
        stage_server.socket_path(tmp_path)
    # The client then runs the stage in its own process, and no server starts there.
    assert stage_server.run_remote(["mlstrategy", "stage", "ingest"], tmp_path, "pipelines.cli:main") is None
    assert not stage_server.running(tmp_path)
    with pytest.raises(stage_server.Unsafe):
        stage_server.serve(tmp_path, idle_timeout_s=0)
    socket_dir.chmod(0o700)
    assert stage_server.socket_path(tmp_path) == path
    # Someone else's directory, private as it may be: refused too.
    uid = os.getuid()
    monkeypatch.setattr(stage_server.os, "getuid", lambda: uid + 1)
    (tmp_path / f"mlstrategy-{uid + 1}").mkdir(mode=0o700)
    with pytest.raises(stage_server.Unsafe, match="not a private directory of yours"):
        stage_server.socket_path(tmp_path)


def serving(root, monkeypatch, **options) -> threading.Thread:
    """`serve(root)` in a thread, without preloading packages, its idle check every 50 ms (5 s in use)."""
    monkeypatch.setattr(stage_server, "PRELOAD", ())
    fast = SimpleNamespace(select=lambda r, w, x, timeout: select.select(r, w, x, min(timeout, 0.05)))
    monkeypatch.setattr(stage_server, "select", fast)
    thread = threading.Thread(target=stage_server.serve, args=(root,), kwargs=options, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not stage_server.running(root):
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return thread


def stopped(root, thread: threading.Thread, within_s: float) -> bool:
    """Whether the server ended on its own within `within_s`; stopped by request if not."""
    thread.join(within_s)
    if thread.is_alive():
        stage_server.stop(root)
        thread.join(10)
        return False
    return True


def test_the_server_exits_when_idle_and_not_before(socket_dir, tmp_path, monkeypatch, capsys):
    thread = serving(tmp_path, monkeypatch, idle_timeout_s=2.0)
    for _ in range(15):  # three seconds of requests, each well within the idle timeout of the last
        assert stage_server.running(tmp_path)
        time.sleep(0.2)
    assert stopped(tmp_path, thread, 10)  # then two idle seconds end it
    assert not stage_server.socket_path(tmp_path).exists() and not stage_server.running(tmp_path)
    assert capsys.readouterr().out.count("stage server stopped") == 1


def test_the_server_exits_when_the_installed_packages_change(socket_dir, tmp_path, monkeypatch):
    changed = threading.Event()
    monkeypatch.setattr(stage_server, "_packages_token", lambda: 2.0 if changed.is_set() else 1.0)
    thread = serving(tmp_path, monkeypatch, idle_timeout_s=3600)
    assert not stopped(tmp_path, thread, 0.5)  # an hour's idle timeout, the same packages: it stays
    thread = serving(tmp_path, monkeypatch, idle_timeout_s=3600)
    changed.set()  # `pip install` in the venv: the server would fork children with stale packages
    assert stopped(tmp_path, thread, 10)
    assert not stage_server.socket_path(tmp_path).exists()
