"""Finding or starting the Prefect API the stages report to."""

from __future__ import annotations

import socket
import subprocess

import pytest

from pipelines.errors import UserError
from pipelines.running import orchestration
from tests.conftest import free_port


@pytest.fixture
def prefect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    return tmp_path


def test_api_url_from_the_environment_then_the_active_profile(prefect_home, monkeypatch):
    assert orchestration.configured_api_url() is None
    (prefect_home / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.example:4200/api"\n'
    )
    assert orchestration.configured_api_url() == "http://prefect.example:4200/api"
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert orchestration.configured_api_url() == "http://127.0.0.1:9/api"


def test_a_malformed_profiles_file_is_named_not_ignored(prefect_home):
    (prefect_home / "profiles.toml").write_text('active = "team"\n[profiles.team\nPREFECT_API_URL = 1\n')
    with pytest.raises(UserError, match=r"profiles.toml: Prefect's profiles cannot be read"):
        orchestration.configured_api_url()  # not a silent local server instead of the configured one


def test_a_configured_api_that_does_not_answer_is_retried_then_named(prefect_home, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    waits = []
    monkeypatch.setattr(orchestration.time, "sleep", waits.append)
    with pytest.raises(UserError) as raised:
        orchestration.ensure_prefect_api()
    assert f"the Prefect API at {url} (PREFECT_API_URL) does not answer after 5 tries over 15 s" in str(
        raised.value
    )
    assert waits == [1.0, 2.0, 4.0, 8.0]  # backing off


def test_a_stale_pid_file_is_cleared(prefect_home):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (prefect_home / "server.pid").write_text(str(dead.pid))
    orchestration._clear_stale_pid_file()
    assert not (prefect_home / "server.pid").exists()


def test_a_busy_port_fails_fast_and_says_what_to_do(prefect_home, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("PREFECT_SERVER_API_PORT", str(busy.getsockname()[1]))
        with pytest.raises(UserError, match=r"(?s)could not start a Prefect server.*Free the port"):
            orchestration.ensure_prefect_api()


def test_starts_a_local_server_once_and_reuses_it(prefect_home, monkeypatch):
    port = free_port()
    monkeypatch.setenv("PREFECT_SERVER_API_PORT", str(port))
    starts, start = [], orchestration.start_local_server

    def recorded(url, *args, **kwargs):
        starts.append(url)
        return start(url, *args, **kwargs)

    # A second `prefect server start` on the port would say "already running" and be taken as success:
    # count the starts instead.
    monkeypatch.setattr(orchestration, "start_local_server", recorded)
    try:
        url = orchestration.ensure_prefect_api()
        assert url == f"http://127.0.0.1:{port}/api" and orchestration.api_healthy(url)
        assert starts == [url]
        monkeypatch.delenv("PREFECT_API_URL")
        assert orchestration.ensure_prefect_api() == url
        assert starts == [url]  # found running, not started again
    finally:
        subprocess.run([orchestration.script("prefect"), "server", "stop"], capture_output=True)
