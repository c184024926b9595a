"""Prefect plumbing shared by every stage: which API to talk to, which pipeline execution a stage belongs
to, and how a stage is run so that bad input ends in one clear message and a non-zero exit.

One Prefect server serves a whole `dvc repro`: the API named by PREFECT_API_URL (or the active Prefect
profile) when there is one, else a local server on 127.0.0.1 that the first stage starts in the
background (`prefect server start --background`) and every later stage and run reuses. Starting an
ephemeral server per stage would cost ~20 s each on 2 cores.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.running.runtime import script

LOCAL_HOST = "127.0.0.1"
RETRY_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)  # waits between tries of a configured Prefect API
DEFAULT_PORT = 4200
SERVER_START_TIMEOUT_S = 180


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when a Prefect API answers its health check at `api_url` (ending in /api)."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def configured_api_url() -> str | None:
    """The API the user configured: PREFECT_API_URL in the environment, else in the active profile of
    Prefect's profiles.toml. Read without importing Prefect: its settings are frozen at import time, and
    the URL must be exported before that."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home() / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # Not a silent local server instead of the one the user configured: they fix the file or unset it.
        raise UserError(f"{path}: Prefect's profiles cannot be read ({error}); fix it or remove it") from None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or None


def local_api_url() -> str:
    port = int(os.environ.get("PREFECT_SERVER_API_PORT", DEFAULT_PORT))
    return f"http://{LOCAL_HOST}:{port}/api"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def _clear_stale_pid_file() -> None:
    """After a reboot or a kill, Prefect's pid file outlives its server and blocks a new one."""
    pid_file = prefect_home() / "server.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    import psutil

    if not psutil.pid_exists(pid):
        pid_file.unlink(missing_ok=True)


def start_local_server(api_url: str, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    """`prefect server start --background` on 127.0.0.1, then wait until it answers."""
    port = api_url.rsplit(":", 1)[1].split("/", 1)[0]
    print(
        f"Starting a local Prefect server at {api_url.removesuffix('/api')} "
        "(the Prefect UI; stop it with `prefect server stop`)",
        file=sys.stderr,
        flush=True,
    )
    _clear_stale_pid_file()
    command = [script("prefect"), "server", "start", "--background", "--host", LOCAL_HOST, "--port", port]
    started = subprocess.run([*command, "--analytics-off"], capture_output=True, text=True, check=False)
    output = "\n".join(f"  {line}" for line in (started.stdout + started.stderr).strip().splitlines()[-4:])
    if started.returncode != 0:
        if "already running" not in output:
            raise UserError(
                f"could not start a Prefect server at {api_url}:\n{output}\n"
                "Free the port or set PREFECT_SERVER_API_PORT, or start a server and set PREFECT_API_URL."
            )
        timeout_s = min(timeout_s, 60)  # another stage got there first: its server is on its way up
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if api_healthy(api_url):
            return
        time.sleep(0.5)
    raise UserError(
        f"the Prefect server at {api_url} did not answer within {timeout_s:.0f} s.\n{output}\n"
        "Start one yourself (`prefect server start`) and set PREFECT_API_URL, or free the port and retry."
    )


def ensure_prefect_api() -> str:
    """Make sure the stages have a Prefect API to report to, and export it as PREFECT_API_URL."""
    url = configured_api_url()
    if url:
        # A server that is restarting answers again within seconds: back off before giving up.
        for wait in RETRY_BACKOFF_S:
            if api_healthy(url, timeout=5):
                break
            time.sleep(wait)
        else:
            if not api_healthy(url, timeout=5):
                raise UserError(
                    f"the Prefect API at {url} (PREFECT_API_URL) does not answer after "
                    f"{len(RETRY_BACKOFF_S) + 1} tries over {sum(RETRY_BACKOFF_S):.0f} s; "
                    "start it or unset it"
                )
    else:
        url = local_api_url()
        if not api_healthy(url):
            start_local_server(url)
    os.environ["PREFECT_API_URL"] = url
    return url


class _NoTraceback(logging.Filter):
    """A failed flow or task is one line on the console: the command says what failed (a bug's traceback
    goes to a file it names), and Prefect's API log, handled before the console, keeps the traceback for
    the UI."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def console_without_tracebacks() -> None:
    """Prefect's console handler (on the root logger once Prefect has set up its logging) drops tracebacks."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _NoTraceback) for f in handler.filters
        ):
            handler.addFilter(_NoTraceback())


def _drop_drain_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Still processing items")


def run_stage(name: str, params: Any) -> None:
    """Run stage `name`'s Prefect flow (`pipelines.stages.FLOWS`) on `params`; a UserError inside it is
    re-raised as is (one message, no traceback), anything else propagates."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from pipelines.stages import flow_of

    flow = flow_of(name)
    # A stage is a short process that DVC supervises, so Prefect's crash-detection heartbeat adds nothing,
    # and a sync flow joins the heartbeat thread on exit: up to 1 s per stage. Without it the events
    # worker may still hold a few events at exit; it sends them, and its notice about it is dropped.
    events_logger = logging.getLogger("prefect.EventsWorker")
    if _drop_drain_notice not in events_logger.filters:
        events_logger.addFilter(_drop_drain_notice)
    console_without_tracebacks()
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state = flow(params, return_state=True)
    if state.is_failed():
        error = state.result(raise_on_failure=False)
        if isinstance(error, BaseException):
            raise error
        raise RuntimeError(f"stage {name} failed: {state.message}")
