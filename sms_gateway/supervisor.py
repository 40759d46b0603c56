"""``sms-gateway run``'s process supervisor: start the roles, restart one that dies, stop them all.

One machine, one command: a role that crashes (a bug, an out-of-memory kill,
an operator's ``kill -9``) is started again after 1 s, 2 s, 4 s … up to
``max_delay``, the wait going back to 1 s once it has run ``stable_after``
seconds; the other roles go on meanwhile. SIGTERM or SIGINT stops every role
(SIGTERM, then SIGKILL after ``stop_timeout`` seconds) and returns.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Child:
    """One supervised role: its name, its command, and its restart state."""

    name: str
    argv: Sequence[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = 1.0
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # exit codes, for tests and the final summary


class Supervisor:
    """Keeps ``children`` running until asked to stop."""

    def __init__(self, children: Sequence[Child], env: Mapping[str, str] | None = None, *,
                 max_delay: float = 30.0, stable_after: float = 30.0, stop_timeout: float = 20.0,
                 tick: float = 0.2) -> None:
        self.children = list(children)
        self.env = dict(env) if env is not None else None
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.stop_timeout = stop_timeout
        self.tick = tick
        self.stopping = False

    def start(self, child: Child) -> None:
        """Start ``child`` now."""
        # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which
        # stops the children with SIGTERM, and a child's death does not take its siblings.
        child.proc = subprocess.Popen(list(child.argv), env=self.env, process_group=0)
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %s)", child.name, child.proc.pid)

    def check(self) -> None:
        """Notice children that exited and restart those whose wait is over."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    continue
                child.history.append(code)
                ran = now - child.started_at
                if ran >= self.stable_after:
                    child.delay = 1.0
                delay = min(child.delay, self.max_delay)
                log.error("%s (pid %s) exited with %s after %.1f s; restarting in %.0f s",
                          child.name, child.proc.pid, _describe(code), ran, delay)
                child.restart_at = now + delay
                child.delay = min(delay * 2, self.max_delay)
            if child.restart_at is not None and now >= child.restart_at and not self.stopping:
                child.restarts += 1
                self.start(child)

    def run(self) -> int:
        """Start every child, supervise until SIGTERM/SIGINT, stop them; 0 after a clean stop."""

        def stop(_signum: int, _frame: Any) -> None:
            self.stopping = True

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                self.start(child)
            while not self.stopping:
                self.check()
                time.sleep(self.tick)
        finally:
            self.stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def stop_all(self) -> None:
        """SIGTERM every running child, SIGKILL those still running after ``stop_timeout``."""
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %s did not stop in %.0f s; killing it", proc.pid, self.stop_timeout)
                proc.kill()
                proc.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
