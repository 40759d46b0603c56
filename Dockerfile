# One image, several roles: `web` (gunicorn), `worker`, `scheduler`, `modem`, `db upgrade`.
#   docker build -t sms-gateway .
#   docker run --env-file gateway.env sms-gateway db upgrade
#   docker run --env-file gateway.env -p 8000:8000 sms-gateway web
#   docker run --env-file gateway.env sms-gateway worker
#   docker run --env-file gateway.env sms-gateway scheduler
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEB_BIND=0.0.0.0:8000 \
    SMS_GATEWAY_VAR_DIR=/app/var

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir sms_gateway && touch sms_gateway/__init__.py \
    && pip install --upgrade pip \
    && pip install -e . \
    && rm -rf sms_gateway

COPY . .
RUN pip install --no-deps -e . \
    && useradd --system --uid 1708 --gid dialout --home-dir /app gateway \
    && mkdir -p /app/var && chown gateway:dialout /app/var

# dialout: the group that owns serial devices, for the modem role (--device /dev/ttyUSB0).
USER gateway
EXPOSE 8000
ENTRYPOINT ["sms-gateway"]
CMD ["web"]
