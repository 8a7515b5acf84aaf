"""``serve_apps.auth``: roles, the GraphQL operation rule, and token files."""

from __future__ import annotations

import stat

from hypothesis import given
from hypothesis import strategies as st

from serve_apps.auth import ADMIN_TOKEN_FILE, READ_TOKEN_FILE, ApiAuth, Role, bearer, ensure_tokens, graphql_needs


def test_roles_and_refusals():
    auth = ApiAuth.from_tokens("adm", "rd", read_open=False)
    assert auth.role_of("adm") is Role.ADMIN and auth.role_of("rd") is Role.READ
    assert auth.role_of("nope") is None and auth.role_of(None) is Role.NONE
    assert auth.refusal("adm", Role.ADMIN) is None and auth.refusal("rd", Role.READ) is None
    assert auth.refusal(None, Role.READ)[0] == 401
    assert auth.refusal("rd", Role.ADMIN)[0] == 403
    assert auth.refusal("nope", Role.READ)[0] == 401
    assert dict(auth.failures) == {"missing": 1, "forbidden": 1, "invalid": 1}
    assert ApiAuth.from_tokens("adm", read_open=True).role_of(None) is Role.READ


def test_the_replica_keeps_digests_not_tokens():
    auth = ApiAuth.from_tokens("secret-admin", "secret-read")
    assert "secret-admin" not in repr(auth) and "secret-read" not in repr(auth)


def test_bearer_parsing():
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc" and bearer("abc") == "abc"
    assert bearer(None) is None and bearer("") is None and bearer("Bearer ") is None


def test_graphql_mutations_need_admin():
    assert graphql_needs(b'{"query": "{ peers { nodeId } }"}') is Role.READ
    assert graphql_needs(b'{"query": "mutation { leaveCluster { success } }"}') is Role.ADMIN
    assert graphql_needs(b'{"query": "subscription { peerEvents { nodeId } }"}') is Role.READ
    two = b'{"query": "query A { a } mutation B { b }"'
    assert graphql_needs(two + b"}") is Role.ADMIN  # no operationName: the worst
    assert graphql_needs(two + b', "operationName": "A"}') is Role.READ
    assert graphql_needs(two + b', "operationName": "B"}') is Role.ADMIN
    assert graphql_needs(b'[{"query": "{ a }"}]') is Role.ADMIN  # batches
    assert graphql_needs(b"not json") is Role.READ and graphql_needs(b'{"query": "mutation {"}') is Role.READ


@given(st.binary(max_size=200))
def test_graphql_needs_never_raises(body):
    assert graphql_needs(body) in (Role.READ, Role.ADMIN)


def test_token_files_are_made_once_with_mode_0600(tmp_path):
    admin, read = ensure_tokens(tmp_path)
    assert admin != read and len(admin) >= 32
    for name in (ADMIN_TOKEN_FILE, READ_TOKEN_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert ensure_tokens(tmp_path) == (admin, read)  # a restart keeps them
    assert ensure_tokens(tmp_path, "given")[0] == "given" and ensure_tokens(tmp_path) == ("given", read)
