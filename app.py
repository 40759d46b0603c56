"""WSGI entry point: ``gunicorn app:app``."""

from sms_gateway.web import create_app

app = create_app()
