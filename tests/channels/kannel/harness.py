"""A real Kannel on loopback for tests and benchmarks: bearerbox, smsbox and fakesmsc.

Each process gets free ports of its own, writes a pid file in the work
directory and is stopped by that pid. Kannel's config is rendered from
``kannel.conf.tmpl`` next to this file.

fakesmsc (from Debian's kannel-extras) is the fake SMS centre's client: it
injects SMS into bearerbox and logs every SMS Kannel sends it as
``Got message N: <from to type data>`` (on stderr; the last expected one at
INFO, the others at DEBUG). The fake SMS centre takes one client at a time, so
a new injection stops the previous client first; what Kannel sent meanwhile is
queued and delivered to the next one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, unquote_to_bytes

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
TEMPLATE = Path(__file__).with_name("kannel.conf.tmpl")


def kannel_missing() -> str | None:
    """Why Kannel cannot run here, or None when its three binaries are installed."""
    missing = [path for path in (BEARERBOX, SMSBOX, FAKESMSC) if not os.access(path, os.X_OK)]
    if missing:
        return (f"Kannel is not installed ({', '.join(missing)} missing): "
                "apt-get install kannel kannel-extras, as .ci/run does")
    return None


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    """Wait until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after {timeout}s\n{tail}")


def wait_until(predicate: Callable[[], Any], timeout: float, tick: Callable[[], None] | None = None,
               interval: float = 0.1) -> Any:
    """Poll ``predicate`` (running ``tick`` before each poll) until it is truthy; its value, or None."""
    deadline = time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def gateway_service(gateway_url: str, token: str, text_escape: str = "%b") -> str:
    """The sms-service lines that hand every SMS to the gateway (as in deploy/kannel).

    ``%b`` is the SMS's bytes as received; ``%a`` is its words re-joined with
    single spaces, which also splits UTF-16BE bytes (see README, "Kannel").
    """
    return (
        "max-messages = 0\n"
        f'get-url = "{gateway_url}/sms/kannel?token={quote(token, safe="")}&id=%I&from=%p&to=%P&text={text_escape}'
        '&smsc=%i&time=%T&coding=%c&charset=%C&udh=%u"\n'
    )


def stop_pid(pid: int, proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
             timeout: float = 10, again_after: float | None = None) -> None:
    """Stop one process we started, by its pid; kill it if it does not exit in time.

    ``again_after``: send ``sig`` a second time after that many seconds (see ``KannelStack.stop``).
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    if proc is None:
        return
    if again_after is not None:
        try:
            proc.wait(timeout=again_after)
            return
        except subprocess.TimeoutExpired:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class KannelStack:
    """bearerbox + smsbox configured from the template, on free loopback ports."""

    workdir: Path
    token: str = "kannel-inbound-token-for-tests"
    # The sms-service lines after keyword/catch-all; None: hand every SMS to the gateway.
    service: str | None = None
    mo_recode: bool = False
    text_escape: str = "%b"  # what the get-url passes as text: %b (bytes) or %a (words)
    log_level: int = 0
    username: str = "gateway"
    password: str = "sendsms-secret"
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    fake_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)  # where the gateway under test listens
    config: str | None = None  # a whole kannel.conf instead of the template (see from_example)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.workdir / "kannel.conf"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def render(self) -> str:
        """kannel.conf for this stack."""
        if self.config is not None:
            return self.config
        return Template(TEMPLATE.read_text()).substitute(
            admin_port=self.admin_port, admin_password="admin-secret", smsbox_port=self.smsbox_port,
            fake_port=self.fake_port, sendsms_port=self.sendsms_port, workdir=self.workdir,
            log_level=self.log_level, mo_recode="true" if self.mo_recode else "false",
            username=self.username, password=self.password,
            service=(self.service or gateway_service(self.gateway_url, self.token, self.text_escape)).strip(),
        )

    def use_example(self, example: Path) -> None:
        """Run the shipped production config: its ports, paths, token and password moved
        to this stack, and the fake SMS centre in place of its SMPP group."""
        text = example.read_text()
        smpp = re.search(r"^group = smsc\n.*?(?=^# -)", text, re.M | re.S)
        assert smpp, "no smsc group in the example"
        smsc_id = re.search(r"^smsc-id = (\S+)", smpp.group(0), re.M)
        fake = (f"group = smsc\nsmsc = fake\nsmsc-id = {smsc_id.group(1) if smsc_id else 'FAKE'}\n"
                f"port = {self.fake_port}\nour-host = 127.0.0.1\nconnect-allow-ip = \"127.0.0.1\"\n\n")
        text = text[:smpp.start()] + fake + text[smpp.end():]
        for key, value in (("admin-port", self.admin_port), ("smsbox-port", self.smsbox_port),
                           ("bearerbox-port", self.smsbox_port), ("sendsms-port", self.sendsms_port)):
            text = re.sub(rf"^{key} = \d+$", f"{key} = {value}", text, flags=re.M)
        store = self.workdir / "store"
        store.mkdir(parents=True, exist_ok=True)
        text = text.replace("/var/spool/kannel/store", str(store)).replace("/var/log/kannel", str(self.workdir))
        text = re.sub(r'^password = ".*"$', f'password = "{self.password}"', text, flags=re.M)
        text = re.sub(r'^username = ".*"$', f'username = "{self.username}"', text, flags=re.M)
        text = text.replace("http://127.0.0.1:8000", self.gateway_url).replace("CHANGE-ME-token", self.token)
        self.config = text

    def _start(self, name: str, binary: str) -> None:
        pid_file = self.workdir / f"{name}.pid"
        # -v 2: warnings on the console; the log-file of the config has the details.
        with open(self.workdir / f"{name}.out", "wb") as out:
            self.procs[name] = subprocess.Popen([binary, "-v", "2", "-p", str(pid_file), str(self.conf)],
                                                stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> KannelStack:
        """Write the config and start bearerbox, then smsbox; wait until both listen."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.render())
        self._start("bearerbox", BEARERBOX)
        log = self.workdir / "bearerbox.out"
        try:
            for port, what in ((self.smsbox_port, "bearerbox (smsbox port)"), (self.fake_port, "fake SMSC")):
                wait_for_port(port, 15, what, log)
            self._start("smsbox", SMSBOX)
            wait_for_port(self.sendsms_port, 15, "smsbox sendsms", self.workdir / "smsbox.out")
        except BaseException:
            self.stop()
            raise
        return self

    def pid(self, name: str) -> int | None:
        """The pid a Kannel process wrote to its pid file (the Popen pid if it has not yet)."""
        pid_file = self.workdir / f"{name}.pid"
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            proc = self.procs.get(name)
            return proc.pid if proc else None

    def stop(self) -> None:
        """Stop smsbox, then bearerbox, each by its pid."""
        for name in ("smsbox", "bearerbox"):
            proc = self.procs.pop(name, None)
            pid = self.pid(name)
            if proc is not None and pid is not None and proc.poll() is None:
                # bearerbox's first SIGTERM starts a graceful shutdown that, most
                # times, sits about 10 s in its flow threads before exiting; a
                # second SIGTERM during the shutdown makes it finish at once (exit 0).
                # Measured: 14 Kannel tests took 72-100 s of teardown, now about 1 s each.
                stop_pid(pid, proc, again_after=0.5)

    def log(self, name: str = "smsbox") -> str:
        """The log-file of ``name`` (bearerbox or smsbox), for failure messages."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass(frozen=True)
class FakeSMS:
    """One SMS Kannel sent to the fake SMS centre."""

    sender: str
    receiver: str
    kind: str  # text, ucs-2, data, udh
    text: str
    udh: bytes = b""


_GOT = re.compile(r"Got message \d+: <(.*)>\s*$")


def _url_bytes(value: str) -> bytes:
    # fakesmsc url-encodes with '+' for the byte 0x20.
    return unquote_to_bytes(value.replace("+", " "))


def parse_fakesmsc_line(content: str) -> FakeSMS:
    """A ``from to type data`` line as fakesmsc prints what it received."""
    sender, receiver, kind, data = [*content.split(" ", 3), "", "", ""][:4]
    if kind == "ucs-2":
        return FakeSMS(sender, receiver, kind, _url_bytes(data).decode("utf-16-be", "replace"))
    if kind == "data":
        return FakeSMS(sender, receiver, kind, _url_bytes(data).decode("latin-1"))
    if kind == "udh":
        udh, _, body = data.partition(" ")
        raw = _url_bytes(body)
        # The line carries no coding: UCS-2 parts are UTF-16BE, GSM parts plain text.
        text = raw.decode("utf-16-be", "replace") if len(raw) % 2 == 0 and b"\x00" in raw \
            else raw.decode("utf-8", "replace")
        return FakeSMS(sender, receiver, kind, text, _url_bytes(udh))
    return FakeSMS(sender, receiver, kind, data)


class FakeSMSC:
    """Drives the real fakesmsc binary against a ``KannelStack``."""

    def __init__(self, stack: KannelStack) -> None:
        self.stack = stack
        self.proc: subprocess.Popen[bytes] | None = None
        self.outputs: list[Path] = []

    def inject(self, *messages: str, count: int = 1, interval: float = 0.05,
               random_mask: int = 0) -> None:
        """Send ``count`` SMS chosen from ``messages`` (``"sender receiver text words"`` or
        ``"sender receiver ucs2 <url-encoded UTF-16BE>"``) with a new fakesmsc client."""
        self.stop()
        out_path = self.stack.workdir / f"fakesmsc-{len(self.outputs) + 1}.out"
        args = [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.stack.fake_port), "-i", str(interval),
                "-m", str(count)]
        if random_mask:
            args += ["-z", str(random_mask)]
        with open(out_path, "wb") as out:
            self.proc = subprocess.Popen([*args, *messages], stdout=out, stderr=subprocess.STDOUT)
        self.outputs.append(out_path)

    def stop(self) -> None:
        """Stop the current fakesmsc by its pid (SIGINT: it prints its totals and exits)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            stop_pid(proc.pid, proc, signal.SIGINT, timeout=5)

    def received(self) -> list[FakeSMS]:
        """Every SMS Kannel delivered to any of our fakesmsc clients, in order."""
        found: list[FakeSMS] = []
        for path in self.outputs:
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                match = _GOT.search(line)
                if match:
                    found.append(parse_fakesmsc_line(match.group(1)))
        return found

    def output(self) -> str:
        """fakesmsc's own output, for failure messages."""
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.outputs if p.exists())


def ucs2_arg(text: str) -> str:
    """``text`` as fakesmsc's ucs2 message data (url-encoded UTF-16BE)."""
    return quote(text.encode("utf-16-be"), safe="")
