"""The workspace on a Redis reached by a Unix socket, as `sms-gateway run` (`make run`) starts it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.workspace.conftest import PASSWORD


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    socket = tmp_path / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(socket), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    try:
        yield {**env, "REDIS_URL": f"unix://{socket}"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_sign_in_limits_count_in_a_redis_on_a_unix_socket(env, people, workspace) -> None:
    # Flask-Limiter names such a Redis redis+unix://; given unix:// the app did not start (make run).
    people("a@kemenhub.go.id", agency="KEMENHUB")
    ws = workspace()
    for _ in range(10):
        assert ws.login("a@kemenhub.go.id", "salah-salah-salah").status_code == 401
    assert ws.login("a@kemenhub.go.id", PASSWORD).status_code == 429
    assert Redis.from_url(env["REDIS_URL"]).keys("LIMIT*")  # counted there, not in the process
