"""Fuzzing the management API from its own OpenAPI schema (schemathesis), over real HTTP.

Every generated request (schema-valid and schema-violating, for every REST operation) must get an
answer within the request timeout that is not a server fault (no 500; 502/503 only as the documented
"not configured / unreachable" answers), and every 4xx/5xx must be JSON carrying an ``"error"``
message (``serve_apps/common.py``'s contract). Afterwards every node still runs and the mesh is whole.

Two runs:

* generic, against a 3-node cluster: every operation except the ones that may legitimately reshape or
  cut the cluster (``DISRUPTIVE``: join, leave, bootstrap, ACL and firewall rule changes, certificate
  rotation). GraphQL (``/graphql``) is not in either run: its errors follow the GraphQL spec
  (``{"errors": [...]}``), not the REST error shape.
* disruptive, against a throwaway 2-node cluster: the ``DISRUPTIVE`` operations with the same response
  checks and no health check afterwards (a generated ``DENY 127.0.0.0/8`` rule is a legitimate request).

Examples per operation: ``RUSTYRAY_API_FUZZ_EXAMPLES`` (default 8; each mode, positive and negative).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from api_server import NOT_REST, ApiCluster, assert_cluster_healthy, response_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("RUSTYRAY_API_FUZZ_EXAMPLES", "8"))
REQUEST_TIMEOUT_S = 30.0
DISRUPTIVE = {
    ("POST", "/api/v1/network/membership/join"),
    ("POST", "/api/v1/network/membership/leave"),
    ("POST", "/api/v1/network/membership/bootstrap"),
    ("POST", "/api/v1/network/security/acl/add"),
    ("DELETE", "/api/v1/network/security/acl/rules/{rule_id}"),
    ("POST", "/api/v1/network/security/firewall/rules"),
    ("DELETE", "/api/v1/network/security/firewall/rules/{rule_id}"),
    ("POST", "/api/v1/network/security/certificates/rotate"),
}
def fuzz_operations(api: ApiCluster, keep: Any, examples: int) -> tuple[Counter[str], list[str], dict[str, float]]:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    slowest: dict[str, float] = {}
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if keep((op.method.upper(), op.path)) and (op.method.upper(), op.path) not in NOT_REST]
    assert ops, "no operation selected"
    for op in ops:
        strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  derandomize=True)
        @given(case=strategy)
        def run(case: Any) -> None:
            start = time.monotonic()
            try:
                resp = case.call(base_url=api.url, session=api.session, timeout=REQUEST_TIMEOUT_S)
            except requests.exceptions.InvalidHeader:
                statuses["unsendable"] += 1  # requests refuses to send it: not the app's concern
                return
            except requests.exceptions.RequestException as exc:
                problems.append(f"{case.operation.label}: {type(exc).__name__}: {exc} :: {case.as_curl_command()}")
                return
            took = time.monotonic() - start
            label = case.operation.label
            slowest[label] = max(slowest.get(label, 0.0), took)
            statuses[str(resp.status_code)] += 1
            problem = response_problem(resp)
            if problem is not None:
                problems.append(f"{label}: {problem} :: {case.as_curl_command()}")

        run()
    statuses["operations"] = len(ops)
    return statuses, problems, slowest


@pytest.fixture
def api3(tmp_path):
    api = ApiCluster(3, tmp_path)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def api2(tmp_path):
    api = ApiCluster(2, tmp_path)
    try:
        yield api
    finally:
        api.close()


def test_generated_requests_get_json_4xx_never_5xx(api3):
    statuses, problems, slowest = fuzz_operations(api3, lambda key: key not in DISRUPTIVE, EXAMPLES)
    top = sorted(slowest.items(), key=lambda kv: -kv[1])[:5]
    print(f"\napi fuzz (generic): {dict(statuses)}; slowest {[(k, round(v, 2)) for k, v in top]}")
    assert not problems, "\n".join(problems[:20])
    assert sum(v for k, v in statuses.items() if k.startswith("4")) > 0  # the negative cases did reach the app
    assert_cluster_healthy(api3)


def test_disruptive_operations_on_a_throwaway_cluster(api2):
    statuses, problems, _ = fuzz_operations(api2, lambda key: key in DISRUPTIVE, max(2, EXAMPLES // 2))
    print(f"\napi fuzz (disruptive): {dict(statuses)}")
    assert not problems, "\n".join(problems[:20])
    assert statuses["operations"] == len(DISRUPTIVE)
