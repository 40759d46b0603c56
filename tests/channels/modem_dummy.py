"""Gammu's dummy phone for the modem tests: a device directory with SMS files, and a spy.

The dummy driver (``model = dummy``, ``connection = none``) keeps its folders
under the device directory: ``sms/1`` SIM inbox, ``sms/2`` SIM outbox, ``sms/3``
phone inbox, ``sms/4`` phone outbox, ``sms/5`` templates; each file is one SMS
in Gammu's SMS backup format, written here with ``gammu.SaveSMSBackup``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gammu

SIM_INBOX, PHONE_INBOX = 1, 3


@dataclass
class DummyPhone:
    """A dummy phone's device directory and its gammurc."""

    root: Path
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def device(self) -> Path:
        return self.root / "device"

    @property
    def gammurc(self) -> Path:
        return self.root / "gammurc"

    def write_config(self, device: Path | None = None) -> Path:
        self.gammurc.write_text(f"[gammu]\nmodel = dummy\nconnection = none\ndevice = {device or self.device}\n")
        return self.gammurc

    def create_folders(self) -> None:
        for folder in range(1, 6):
            (self.device / "sms" / str(folder)).mkdir(parents=True, exist_ok=True)

    def files(self, folder: int | None = None) -> list[Path]:
        """SMS files now on the phone (inbox folders, or one folder)."""
        folders = [folder] if folder else [SIM_INBOX, PHONE_INBOX]
        return sorted(p for f in folders for p in (self.device / "sms" / str(f)).glob("*") if p.is_file())

    def _save(self, message: dict[str, Any], folder: int) -> Path:
        self.create_folders()
        path = self.device / "sms" / str(folder) / str(next(self._names))
        gammu.SaveSMSBackup(str(path), [message])
        return path

    def deliver(self, number: str, text: str, *, unicode: bool = False, folder: int = PHONE_INBOX,
                when: datetime | None = None) -> Path:
        """Put a plain (one-part) received SMS on the phone."""
        parts = encode(text, unicode)
        assert len(parts) == 1, "use deliver_parts for a long text"
        return self._save(_received(parts[0], number, folder, when or datetime(2026, 5, 4, 8, 0, tzinfo=UTC)),
                          folder)

    def deliver_parts(self, number: str, text: str, *, unicode: bool = False, folder: int = PHONE_INBOX,
                      order: list[int] | None = None, when: datetime | None = None,
                      parts: list[dict[str, Any]] | None = None) -> list[Path]:
        """Put the parts of a concatenated SMS on the phone, in ``order`` (part numbers, 1-based).

        Pass the ``parts`` of an earlier call to deliver more parts of the same SMS
        (each encoding picks a new concatenation reference).
        """
        parts = parts or encode(text, unicode)
        assert len(parts) > 1, "text fits one SMS"
        start = when or datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
        paths = []
        for number_ in order or list(range(1, len(parts) + 1)):
            message = _received(parts[number_ - 1], number, folder, start + timedelta(seconds=number_))
            paths.append(self._save(message, folder))
        return paths


def encode(text: str, unicode: bool) -> list[dict[str, Any]]:
    return list(gammu.EncodeSMS({"Class": -1, "Unicode": unicode,
                                 "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]}))


def _received(part: dict[str, Any], number: str, folder: int, when: datetime) -> dict[str, Any]:
    message = dict(part)
    message.update({"Type": "Deliver", "Folder": folder, "State": "UnRead", "Number": number,
                    "DateTime": when, "SMSC": {"Location": 0, "Number": "+62816124"}})
    return message


@dataclass
class Spy:
    """Records what the gateway asks of the real python-gammu state machine."""

    inits: int = 0
    sends: list[tuple[dict[str, Any], Any]] = field(default_factory=list)  # (message, reference or error)
    deletes: list[int] = field(default_factory=list)
    machines: list[Any] = field(default_factory=list)
    on_delete: Callable[[int], None] | None = None

    def factory(self) -> Any:
        """A real ``gammu.StateMachine`` that reports to this spy."""
        spy = self

        class SpiedStateMachine(gammu.StateMachine):  # type: ignore[misc]
            def Init(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - python-gammu's name
                spy.inits += 1
                return super().Init(*args, **kwargs)

            def SendSMS(self, message: dict[str, Any]) -> Any:  # noqa: N802 - python-gammu's name
                try:
                    reference = super().SendSMS(message)
                except gammu.GSMError as exc:
                    spy.sends.append((dict(message), exc))
                    raise
                spy.sends.append((dict(message), reference))
                return reference

            def DeleteSMS(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - python-gammu's name
                if spy.on_delete is not None:
                    spy.on_delete(kwargs["Location"])
                result = super().DeleteSMS(*args, **kwargs)
                spy.deletes.append(kwargs["Location"])
                return result

        machine = SpiedStateMachine()
        self.machines.append(machine)
        return machine

    def sent_texts(self) -> list[tuple[str, str]]:
        """(number, text) of every SMS the modem accepted, parts joined with DecodeSMS."""
        out: list[tuple[str, str]] = []
        group: list[dict[str, Any]] = []
        for message, reference in self.sends:
            if isinstance(reference, Exception):
                continue
            group.append(message)
            if len(group) < max(1, message["UDH"]["AllParts"]):
                continue  # parts of one SMS are sent one after the other
            decoded = gammu.DecodeSMS(group)
            out.append((group[0]["Number"], decoded["Entries"][0]["Buffer"] if decoded else group[0]["Text"]))
            group = []
        assert not group, "an SMS was sent without all its parts"
        return out


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
