"""deploy/: the systemd units and the compose file run the roles that exist, restart them and check them.

Docker and systemd are not available in CI; these parse the files the way those
tools would read them and check what a deployer relies on.
"""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
import yaml

from sms_gateway.cli import main
from sms_gateway.config import PROJECT_ROOT, SETTINGS

DEPLOY = PROJECT_ROOT / "deploy"
ROLES = {"web", "worker", "sender", "scheduler", "modem"}
LONG_RUNNING = {"web", "worker", "sender", "scheduler"}


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("name", ["sms-gateway-web.service", "sms-gateway-worker@.service",
                                  "sms-gateway-sender.service", "sms-gateway-scheduler.service",
                                  "sms-gateway-modem.service"])
def test_systemd_units_run_a_role_and_restart_it(name: str) -> None:
    service = unit(DEPLOY / "systemd" / name)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/sms-gateway")
    role = argv[1]
    assert role in ROLES and role in main.commands, role
    assert service["Restart"] == "always"
    assert 0 < float(service["RestartSec"]) <= 5
    assert service["EnvironmentFile"] == "/etc/sms-gateway/gateway.env"  # secrets from the environment only
    assert service["User"] == "smsgw" and service["NoNewPrivileges"] == "true"
    assert float(service["TimeoutStopSec"]) >= 30  # the job or request in hand is finished
    after = unit(DEPLOY / "systemd" / name)["Unit"]["After"].split()
    assert {"postgresql.service", "redis-server.service"} <= set(after)


def test_the_web_unit_keeps_its_spool_across_restarts() -> None:
    service = unit(DEPLOY / "systemd" / "sms-gateway-web.service")["Service"]
    assert service["Environment"] == "SPOOL_DIR=/var/lib/sms-gateway/spool"
    assert service["StateDirectory"] == "sms-gateway"  # /var/lib/sms-gateway, writable under ProtectSystem


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_has_the_whole_stack(compose) -> None:  # type: ignore[no-untyped-def]
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "sender", "scheduler"}
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("postgres", "redis", *LONG_RUNNING):
        assert services[name]["restart"] in ("always", "unless-stopped"), name
        check = services[name]["healthcheck"]["test"]
        assert check[0] == "CMD" and len(check) > 1, name
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"][1:] == ["sms-gateway", "healthcheck", name]
    assert services["migrate"]["restart"] == "no"


def test_compose_runs_real_roles_from_this_repository(compose) -> None:  # type: ignore[no-untyped-def]
    services = compose["services"]
    for name in ("migrate", *LONG_RUNNING):
        service = services[name]
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == \
            PROJECT_ROOT / "Dockerfile"
        command = service["command"]
        assert command[0] in main.commands, command  # the image's entrypoint is sms-gateway
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert {name: services[name]["command"] for name in LONG_RUNNING} == {
        "web": ["web"], "worker": ["worker"], "sender": ["sender"], "scheduler": ["scheduler"]}


def test_compose_wires_the_services_and_orders_the_start(compose) -> None:  # type: ignore[no-untyped-def]
    services = compose["services"]
    known = {s.name for s in SETTINGS}
    for name in ("migrate", *LONG_RUNNING):
        env = services[name]["environment"]
        assert set(env) <= known, set(env) - known
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://gateway:${POSTGRES_PASSWORD:?")
        assert env["DATABASE_URL"].endswith("@postgres:5432/gateway")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in LONG_RUNNING:
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                                "redis": {"condition": "service_healthy"}}
    assert services["web"]["environment"]["WEB_BIND"] == "0.0.0.0:8000"
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "web-var:/app/var" in services["web"]["volumes"]  # the spool survives the container
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "web-var"}


def test_the_example_environment_names_only_real_settings() -> None:
    known = {s.name for s in SETTINGS}
    names = [line.split("=", 1)[0] for line in (DEPLOY / "gateway.env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    assert names and set(names) <= known
