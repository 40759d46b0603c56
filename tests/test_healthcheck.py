"""`sms-gateway healthcheck`: the Docker HEALTHCHECK of each role (web is checked in test_install)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from rq import SimpleWorker
from rq.cron import CronScheduler

from sms_gateway import queue as q
from sms_gateway.cli import container_role, main
from sms_gateway.config import Settings, set_settings
from tests.web.test_server import free_port


def test_the_role_is_read_from_the_containers_main_process(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/usr/local/bin/python\0/usr/local/bin/sms-gateway\0worker\0--queue\0inbound\0")
    assert container_role(cmdline) == "worker"
    cmdline.write_bytes(b"/bin/sh\0-c\0sleep 1\0")
    assert container_role(cmdline) is None
    assert container_role(tmp_path / "absent") is None


def test_worker_and_scheduler_are_alive_while_registered_in_redis(settings, redis_conn) -> None:
    runner = CliRunner()
    conn = q.get_redis(settings)
    for role, process in (("worker", SimpleWorker(["inbound"], connection=conn)),
                          ("scheduler", CronScheduler(connection=conn))):
        dead = runner.invoke(main, ["healthcheck", role])
        assert dead.exit_code == 1 and "none registered" in dead.output
        process.register_birth()
        alive = runner.invoke(main, ["healthcheck", role])
        assert alive.exit_code == 0, alive.output
        process.register_death()
        assert runner.invoke(main, ["healthcheck", role]).exit_code == 1


def test_web_without_a_server_is_not_alive(env, settings) -> None:
    port = free_port()  # nothing listens there
    set_settings(Settings({**env, "WEB_BIND": f"0.0.0.0:{port}"}))
    result = CliRunner().invoke(main, ["healthcheck", "web"])
    assert result.exit_code == 1 and f"no answer on 127.0.0.1:{port}" in result.output
