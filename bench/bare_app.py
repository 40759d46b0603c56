"""The ceiling for bench/ingest.py: a Flask endpoint that parses the form and answers empty TwiML."""

from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/sms/twilio")
def inbound() -> Response:
    """Read the fields a webhook carries and answer like the gateway, storing nothing."""
    if not (request.form.get("From") and request.form.get("MessageSid")):
        return Response("missing fields\n", status=400)
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', mimetype="text/xml")
