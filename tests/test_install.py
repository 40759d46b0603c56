"""The install a deployer does: the wheel without extras, its dependencies from the lock.

Catches what the dev venv hides: a dependency only a dev tool brings (gunicorn's
gevent worker needs ``packaging``), files the wheel does not carry (the
migrations), paths that only exist in a checkout (``app.py``, ``prefixes.yaml``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import venv
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from sms_gateway.config import PROJECT_ROOT
from tests.conftest import REDIS_URL
from tests.support import twilio_signature
from tests.web.test_server import free_port

pytestmark = pytest.mark.slow

TOKEN = "wheel-test-token"
PUBLIC_BASE = "https://gateway.example.id"


def run(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_the_dockerfile_installs_the_same_way() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps /tmp/dist/*.whl" in dockerfile
    assert "pip install --no-cache-dir --require-hashes -r requirements-build.lock" in dockerfile
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in dockerfile
    assert "HEALTHCHECK" in dockerfile


def test_wheel_without_extras_migrates_serves_and_stores_a_signed_webhook(
        tmp_path: Path, scratch_postgres: str, redis_conn) -> None:
    dist, build_dir, env_dir, work = tmp_path / "dist", tmp_path / "build", tmp_path / "venv", tmp_path / "srv"
    work.mkdir()
    # Built as the Dockerfile builds it: the backend from its hashed lock, no build isolation.
    venv.create(build_dir, with_pip=True)
    build_pip = [build_dir / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    run([*build_pip, "install", "--quiet", "--require-hashes", "-r", PROJECT_ROOT / "requirements-build.lock"])
    run([*build_pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", dist, PROJECT_ROOT])
    [wheel] = dist.glob("sms_gateway-*.whl")
    venv.create(env_dir, with_pip=True)
    pip = [env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run([*pip, "--require-hashes", "-r", PROJECT_ROOT / "requirements.lock"])  # pip's cache makes this quick
    run([*pip, "--no-deps", wheel])
    run([env_dir / "bin" / "python", "-m", "pip", "check"])

    # A deployer's directory: their own prefixes.yaml, nothing from the checkout on the path.
    shutil.copy(PROJECT_ROOT / "prefixes.yaml", work / "prefixes.yaml")
    port = free_port()
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": scratch_postgres,
           "REDIS_URL": REDIS_URL, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE,
           "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "1",
           "CONSOLE_CHANNELS": "twilio"}  # no Twilio account here: said explicitly, or the start-up check refuses
    exe = env_dir / "bin" / "sms-gateway"
    located = run([env_dir / "bin" / "python", "-c", "import sms_gateway; print(sms_gateway.__file__)"],
                  cwd=work, env=env)
    assert located.stdout.startswith(str(env_dir))
    run([exe, "db", "upgrade"], cwd=work, env=env)

    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen([exe, "web"], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(url + "/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert web.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert health.json()["database"] == "ok"
        run([exe, "healthcheck", "web"], cwd=work, env=env)

        # The API reference and its vendored Swagger UI travel in the wheel.
        docs = requests.get(url + "/api/v1/docs", timeout=15)
        assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
        [bundle] = re.findall(r'src="(/api/v1/docs/assets/swagger-ui/swagger-ui-bundle\.js\?v=\w+)"', docs.text)
        asset = requests.get(url + bundle, timeout=15)
        assert asset.status_code == 200
        assert asset.headers["Content-Type"].startswith("text/javascript")
        assert "immutable" in asset.headers["Cache-Control"]
        vendored = PROJECT_ROOT / "sms_gateway" / "agencies" / "static" / "swagger-ui" / "swagger-ui-bundle.js"
        assert asset.content == vendored.read_bytes()

        params = {"MessageSid": "SM" + "7" * 32, "AccountSid": "ACwheel", "From": "+6281234567890",
                  "To": "1708", "Body": "KEMENHUB ADUAN bus masih angkut pemudik", "NumSegments": "1"}
        signature = twilio_signature(TOKEN, PUBLIC_BASE + "/sms/twilio", params)
        posted = requests.post(url + "/sms/twilio", data=params, headers={"X-Twilio-Signature": signature},
                               timeout=15)
        assert posted.status_code == 200, log.read_text()
        forged = requests.post(url + "/sms/twilio", data=params, headers={"X-Twilio-Signature": "x"}, timeout=15)
        assert forged.status_code == 403
        # The workspace's templates, static files and compiled catalogue travel in the wheel.
        login = requests.get(url + "/login", timeout=15)
        assert login.status_code == 200 and "Kata sandi" in login.text, log.read_text()
        assert requests.get(url + "/assets/htmx/htmx.min.js", timeout=15).status_code == 200
        english = run([env_dir / "bin" / "python", "-c",
                       "from babel.support import Translations; import sms_gateway.workspace.web as w; "
                       "print(Translations.load(str(w.HERE / 'translations'), ['en']).gettext('Kata sandi'))"],
                      cwd=work, env=env)
        assert english.stdout.strip() == "Password"
    finally:
        web.terminate()
        web.wait(timeout=30)
    engine = create_engine(scratch_postgres)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT channel, sender, text FROM inbound_messages")).all()
    engine.dispose()
    assert [tuple(r) for r in stored] == [("twilio", "+6281234567890", "KEMENHUB ADUAN bus masih angkut pemudik")]
    assert "Traceback" not in log.read_text()


def _pins(lock: Path) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            name, version = line.split(";")[0].split(" ")[0].split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_locks_pin_every_dependency_of_pyproject_within_its_range() -> None:
    """A dependency added to pyproject.toml without `make lock` fails here, not in a deployer's build."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = _pins(PROJECT_ROOT / "requirements.lock"), _pins(PROJECT_ROOT / "requirements-dev.lock")
    for lock, requirements in ((runtime, project["dependencies"]),
                               (dev, project["dependencies"] + project["optional-dependencies"]["dev"])):
        for requirement in map(Requirement, requirements):
            pinned = lock.get(canonicalize_name(requirement.name))
            assert pinned is not None, f"{requirement.name} is not in the lock: run make lock"
            assert requirement.specifier.contains(pinned, prereleases=True), \
                f"{requirement.name}=={pinned} is outside {requirement.specifier}: run make lock"
    assert {name: dev[name] for name in runtime} == runtime, "the dev lock pins other versions than the runtime lock"


def test_the_build_backend_is_pinned_exactly_and_locked_with_hashes() -> None:
    """The wheel is built by the backend pyproject.toml names, at the version its lock checks."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    build, dev = _pins(PROJECT_ROOT / "requirements-build.lock"), _pins(PROJECT_ROOT / "requirements-dev.lock")
    for requirement in map(Requirement, requires):
        [spec] = requirement.specifier
        assert spec.operator == "==", f"{requirement}: pin the build backend exactly"
        assert build.get(canonicalize_name(requirement.name)) == spec.version, \
            f"{requirement} is not what requirements-build.lock pins: run make lock"
    assert {name: build[name] for name in build.keys() & dev.keys()} == \
        {name: dev[name] for name in build.keys() & dev.keys()}, "the build lock pins other versions than the dev lock"
    assert (PROJECT_ROOT / "requirements-build.lock").read_text().count("--hash=sha256:") >= len(build)
