# One image, several roles: `web` (gunicorn), `worker`, `sender`, `scheduler`, `modem`, `db upgrade`.
#   docker build -t sms-gateway .
#   docker run --env-file gateway.env sms-gateway db upgrade
#   docker run --env-file gateway.env -p 8000:8000 -v /etc/sms-gateway:/etc/sms-gateway sms-gateway web
#   docker run --env-file gateway.env -v /etc/sms-gateway:/etc/sms-gateway sms-gateway worker
#   docker run --env-file gateway.env -v /etc/sms-gateway:/etc/sms-gateway sms-gateway sender
#   docker run --env-file gateway.env sms-gateway scheduler
# /etc/sms-gateway holds prefixes.yaml and holidays_override.yaml (PREFIXES_FILE,
# HOLIDAYS_OVERRIDE_FILE): mount the directory, not the files, so an edit that
# replaces a file (most editors do) is seen by the running gateway.
# Writable: /app/var only (a first run's SQLite and private Redis; unused with
# DATABASE_URL and REDIS_URL set). Everything else may be read-only (--read-only).

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY . .
# The build backend from its lock (hashes checked) instead of whatever an isolated build fetches.
RUN pip install --no-cache-dir --require-hashes -r requirements-build.lock \
    && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEB_BIND=0.0.0.0:8000 \
    SMS_GATEWAY_VAR_DIR=/app/var \
    PREFIXES_FILE=/etc/sms-gateway/prefixes.yaml \
    HOLIDAYS_OVERRIDE_FILE=/etc/sms-gateway/holidays_override.yaml

WORKDIR /app

# The locked dependencies first (hashes checked), so a code change does not reinstall them;
# then the gateway's own wheel, which brings nothing the lock has not pinned.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist

# The shipped registry and holiday overrides: defaults until a directory is mounted over them.
COPY prefixes.yaml holidays_override.yaml /etc/sms-gateway/
RUN useradd --system --uid 1708 --gid dialout --home-dir /app gateway \
    && mkdir -p /app/var && chown gateway:dialout /app/var

# dialout: the group that owns serial devices, for the modem role (--device /dev/ttyUSB0).
USER gateway
EXPOSE 8000
# Liveness of whichever role this container runs (web: /livez; worker, scheduler: registered
# in Redis; modem: connected). Readiness for a load balancer is GET /healthz.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["sms-gateway", "healthcheck"]
ENTRYPOINT ["sms-gateway"]
CMD ["web"]
