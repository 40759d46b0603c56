"""Every operation of our own OpenAPI document, fuzzed by schemathesis: no input answers 5xx.

Schemathesis generates valid and invalid requests (types, ranges, missing and
extra fields, NUL and other control characters, huge numbers, odd dates) from
``sms_gateway/data/openapi.yaml``; each is sent with the credentials it drew,
with no credentials, with an agency token and with the admin token, on both
databases. A 5xx fails: it is always a bug, never the client's fault.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from sms_gateway.agencies.api import openapi_document
from tests.fuzzing import FUZZ, server_error

CONFIG = SchemathesisConfig.from_dict({"generation": {"mode": "all", "deterministic": True}})
SCHEMA = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


@pytest.fixture
def credentials(seed, token_for) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """Reports to find and the Authorization headers to try: drawn, none, an agency, the admin."""
    seed("KEMENHUB")
    seed(None)
    seed("DISHUBBEKASI", confidential=True)
    return {"none": None, "agency": f"Bearer {token_for('KEMENHUB')}", "admin": f"Bearer {token_for(admin=True)}"}


@SCHEMA.parametrize()
@FUZZ
def test_no_documented_operation_answers_5xx(case, client, credentials) -> None:  # type: ignore[no-untyped-def]
    request = case.as_transport_kwargs(base_url="http://gateway.test")
    url = urlsplit(request["url"])
    drawn = request["headers"].get("Authorization")
    for who, authorization in {"drawn": drawn, **credentials}.items():
        headers = {k: v for k, v in request["headers"].items() if k.lower() not in ("authorization", "connection")}
        if authorization is not None:
            headers["Authorization"] = authorization
        body = {"json": request["json"]} if "json" in request else {"data": request.get("data")}
        response = client.open(url.path, method=request["method"], headers=headers,
                               query_string=request.get("params") or url.query, **body)
        problem = server_error(response)
        assert problem is None, f"{request['method']} {request['url']} ({who} credentials) -> {problem}"
