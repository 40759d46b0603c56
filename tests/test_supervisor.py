"""`sms-gateway run`'s supervisor: a role that dies is started again, with backoff; the others go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sms_gateway.config import PROJECT_ROOT
from sms_gateway.supervisor import Child, Supervisor
from tests.chaos.harness import free_port, wait_for


def test_a_child_that_dies_is_restarted_with_backoff_and_the_others_go_on(tmp_path: Path) -> None:
    crash = Child("crash", [sys.executable, "-c", "import sys; sys.exit(3)"])
    steady = Child("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor([crash, steady], max_delay=0.4, stable_after=30, stop_timeout=5, tick=0.02)
    for child in supervisor.children:
        supervisor.start(child)
    try:
        steady_pid = steady.proc.pid if steady.proc else None
        wait_for(lambda: (supervisor.check(), crash.restarts >= 4)[1], 10, "four restarts of the crashing child")
        assert set(crash.history) == {3}
        assert crash.delay == 0.4  # 1 s, doubled each time, capped at max_delay
        assert steady.proc is not None and steady.proc.pid == steady_pid and steady.proc.poll() is None
    finally:
        supervisor.stopping = True
        supervisor.stop_all()
    assert steady.proc.poll() is not None


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sms_gateway_run_restarts_a_killed_worker(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen([sys.executable, "-m", "sms_gateway.cli", "run"], cwd=PROJECT_ROOT,
                               env={**os.environ, **env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "1"},
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthy(port), 60, f"the gateway\n{log.read_text()[-2000:]}")
        children = {name: pid for pid, name in _children(run.pid)}
        os.kill(children["worker"], signal.SIGKILL)
        wait_for(lambda: "worker (pid" in log.read_text() and "restarting in 1 s" in log.read_text(), 10,
                 f"the restart notice\n{log.read_text()[-2000:]}")
        wait_for(lambda: len([n for _p, n in _children(run.pid) if n == "worker"]) == 1
                 and dict((n, p) for p, n in _children(run.pid))["worker"] != children["worker"], 15,
                 "a new worker")
        assert _healthy(port)  # the web process was not touched
        assert dict((n, p) for p, n in _children(run.pid))["web"] == children["web"]
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=40)
    assert run.returncode == 0, log.read_text()[-2000:]
    assert not _children(run.pid)


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, role) of the direct children of ``pid`` that are `sms_gateway <role>` processes."""
    found = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    for kid in kids:
        try:
            argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sms_gateway" in argv:
            found.append((int(kid), argv[argv.index(b"sms_gateway") + 1].decode()))
        elif b"gunicorn" in argv:  # `sms-gateway web` execs gunicorn
            found.append((int(kid), "web"))
    return found
