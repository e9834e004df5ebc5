"""
schemathesis against a live admin API: a real `twistd -n wsrelay` with
statistics on, and requests generated from docs/openapi.yaml (a bounded
number per operation, derandomized). Every answer must be what the document
says (status, content type, body schema) and none a server error. See
docs/fuzzing.md.
"""

import time
from pathlib import Path

import pytest
import requests

import schemathesis
import yaml
from hypothesis import HealthCheck, settings  # schemathesis brings hypothesis

from tests.support import free_port

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
TOKEN = "schema-token-0123456789"
EXAMPLES = 25  # per operation

schema = schemathesis.openapi.from_path(str(DOC))


def takes_a_window(method, path):
    """Whether the operation reads [start, end) (the statistics queries; not sessions, health or metrics)."""
    operation = yaml.safe_load(DOC.read_text())["paths"][path].get(method.lower(), {})
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in operation.get("parameters", [])}
    return "start" in names


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@pytest.fixture(scope="module")
def admin(tmp_path_factory, request):
    from tests.support import RelayProcess

    folder = tmp_path_factory.mktemp("admin-schema")
    (folder / "token").write_text(TOKEN + "\n")
    port = free_port()
    relay = RelayProcess(folder, f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        [accounting]
        database = stats.sqlite
        admin = tcp:{port}:interface=127.0.0.1
        admin_token_file = token
        [domain:*]
        origins = 127.0.0.1:9
        billing = traffic
        """)
    relay.start()
    request.addfinalizer(relay.stop)
    return f"http://127.0.0.1:{port}"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_what_the_openapi_document_says(case, admin):
    # Requests valid by the schema may still be refused (400) by rules it cannot say (an
    # interval allowed for the span, a span of at most 92 days): those 400s are documented
    # answers, so "valid data is accepted" is the one check left out.
    from schemathesis.checks import (
        content_type_conformance, not_a_server_error, positive_data_acceptance, response_schema_conformance,
        status_code_conformance,
    )

    auth = {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(base_url=admin, headers=auth, excluded_checks=[positive_data_acceptance])
    # Generated times rarely make a window the API takes: the same request again over the
    # last hour, so that the 200 answers (with whatever domains, regions, legs or format were
    # generated) are checked against their schemas too.
    if not takes_a_window(case.method, case.path):
        return
    now = int(time.time())
    documented = {"domain", "region", "isp", "leg", "format", "interval"}  # of docs/openapi.yaml's operations
    case.query = {k: v for k, v in (case.query or {}).items() if k in documented}
    case.query.update(start=iso(now - 3600), end=iso(now))
    if "interval" in case.query:
        case.query["interval"] = 300
    if case.query.get("format") not in (None, "json", "csv"):
        case.query["format"] = "csv"
    # sent as it is now, with the token (a case may be one that leaves the header out);
    # the case may have been generated as an invalid one: it is not any more
    response = requests.get(admin + case.formatted_path, params=case.query, headers=auth, timeout=10)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance])
    # a good window is taken; only a generated filter (a name) may still be refused
    assert response.status_code == 200 or (
        response.status_code == 400 and response.json()["error"].startswith(("domain", "region", "isp", "leg"))
    ), response.text
