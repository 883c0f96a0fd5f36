"""Schema-driven fuzzing of the real proxy process (schemathesis over loopback).

Every operation of the proxy's OpenAPI schema gets generated requests -- ones that follow the
schema and ones that break it -- and every answer must be documented for its operation, match
the documented body schema, and be no 5xx other than the documented 503 (TorchServe absent, no
index, a full gate) and 504, name no internal address, file or pid, and carry nosniff.
TorchServe is absent on purpose: nothing is faked, and the routes
that need it answer their documented 503. Bounded: ``MAX_EXAMPLES`` per operation and mode.

schemathesis' own pytest plugin does not run under pytest 9 (it reads a removed attribute), so
the operations are driven through its Python API with Hypothesis directly.
"""

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.support.proxy_process import ProxyProcess, proxy_process

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 15
DOCUMENTED_SERVER_ERRORS = {503, 504}


@pytest.fixture(scope="module")
def fuzzed_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    with proxy_process(tmp_path_factory.mktemp("fuzz"), {"AICORE_BODY_TIMEOUT_S": "5"}) as proxy:
        yield proxy


@schemathesis.check
def only_documented_server_errors(ctx, response, case) -> None:
    """A 5xx is a bug unless it is one the proxy documents (503 busy/unavailable, 504 slow)."""
    if response.status_code >= 500 and response.status_code not in DOCUMENTED_SERVER_ERRORS:
        raise AssertionError(f"{case.method} {case.path} -> {response.status_code}: "
                             f"{response.text[:300]}")


@schemathesis.check
def no_internal_details(ctx, response, case) -> None:
    """No answer names TorchServe's address, a file of the machine or a process id."""
    body = response.text
    for leak in ("http://127.0.0.1", "/tmp/", "pid "):
        if leak in body:
            raise AssertionError(f"{case.method} {case.path} -> {response.status_code} names "
                                 f"{leak!r}: {body[:300]}")


@schemathesis.check
def never_sniffed(ctx, response, case) -> None:
    headers = {name.lower(): values for name, values in response.headers.items()}
    if headers.get("x-content-type-options") != ["nosniff"]:
        raise AssertionError(f"{case.method} {case.path}: no X-Content-Type-Options: nosniff")


CHECKS = [only_documented_server_errors, status_code_conformance, content_type_conformance,
          response_schema_conformance, no_internal_details, never_sniffed]


def fuzz(operation, mode: GenerationMode, base_url: str, session: requests.Session) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=15)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_every_operation_answers_as_documented(fuzzed_proxy, mode):
    schema = schemathesis.openapi.from_url(f"{fuzzed_proxy.url}/openapi.json")
    failures = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            try:
                fuzz(operation, mode, fuzzed_proxy.url, session)
            except Unsatisfiable:  # no parameter or body to break (GET /health): nothing to send
                assert mode == GenerationMode.NEGATIVE, operation.path
            except Exception as exc:  # noqa: BLE001 -- collected, every operation is fuzzed
                failures.append(f"{operation.method.upper()} {operation.path}: {exc}")

    assert not failures, "\n\n".join(failures)
