"""Every registered HTTP route × every kind of caller, in both auth modes, through the local host.

The matrix is generated from the routes the runtime indexed: a route whose function has no entry
in ``shared.auth.policy.POLICIES`` fails :func:`test_every_route_declares_a_policy`, and every
route is then called by each caller. Tokens come from the local OIDC issuer over real HTTP
(discovery and JWKS). Person checks run against a mirror filled through the queue function,
including a person merged into someone whose membership is in another club. CORS preflights
go through the host's CORS handling.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.host import LocalHost
from devtools.oidc_issuer import OidcIssuer
from shared.auth.policy import POLICIES, Policy
from tests.queue_support import messages
from tests.support import load_event

ROOT = Path(__file__).resolve().parents[1]
CLUB, OTHER_CLUB = "19428", "20000"
PERSON = "8756934"  # member of CLUB (tests/events/queue/TpMembership_added.json)
BACKEND_KEY = "app-backend-key-0123456789"
ADMIN_KEY = "app-master-key-0123456789ab"
ORIGIN, OTHER_ORIGIN = "https://club-frontend.example", "https://evil.example"
PARAMS = {
    "clubId": CLUB,
    "personId": PERSON,
    "externalId": "e-1",
    "activityId": "a-1",
    "traceId": "7ac07206-471e-4015-9ed7-e6db55ed7201",
    "night": "2026-03-01",
}


@pytest.fixture(scope="module")
def issuer():
    iss = OidcIssuer().start()
    yield iss
    iss.stop()


def _url(route: str, **override: str) -> str:
    values = {**PARAMS, **override}
    return "/api/" + re.sub(r"{\*?([A-Za-z_]\w*)[^}]*}", lambda m: values.get(m.group(1), "x-1"), route)


def _mirror(app_host, *, merged_into_club: str | None = None) -> None:
    """Deliver the person, membership and merge fixtures through the queue function."""
    items = [load_event(f"queue/{e}_added.json")[0] for e in ("TpPerson", "TpMembership")]
    fx = copy.deepcopy(load_event("queue/person_merge.json"))
    if merged_into_club:  # the survivor's new membership is in another club
        for item in fx["sequence"]:
            if item["properties"]["ObjectId"] == fx["ids"]["MN"] and item["body"]:
                item["body"]["orgId"] = int(merged_into_club)
    arg = app_host.functions["nif_queue"].trigger["name"]
    app_host.invoke("nif_queue", **{arg: messages(items + fx["before"] + fx["sequence"])})


@pytest.fixture
def tokens_host(app_host, storage, env, issuer, monkeypatch, sensitive):
    """The app as indexed with AUTH_MODE=tokens: every HTTP trigger anonymous at the host
    (``test_tokens_mode_indexes_every_http_route_anonymous`` checks that the runtime indexes it so)
    and the glue checking callers; settings pointed at the local issuer."""
    import functions._glue as glue

    sensitive.add(BACKEND_KEY, ADMIN_KEY)
    env.set(
        AUTH_MODE="tokens",
        AUTH_ISSUER=issuer.issuer,
        AUTH_AUDIENCE=issuer.audience,
        AUTH_FUNCTION_KEY=BACKEND_KEY,
        AUTH_MASTER_KEY=ADMIN_KEY,
    )
    monkeypatch.setattr(glue, "AUTH_MODE", "tokens")
    host = LocalHost(driver=app_host.driver, cors_origins=frozenset({ORIGIN}))
    for route in host.routes:
        route.auth_level = "anonymous"
    _mirror(app_host, merged_into_club=OTHER_CLUB)
    return host


def _callers(issuer) -> dict[str, dict[str, str] | None]:
    def bearer(**kw) -> dict[str, str]:
        return {"Authorization": "Bearer " + issuer.issue(**kw)}

    return {
        "none": {},
        "function key": {"x-functions-key": BACKEND_KEY},
        "master key": {"x-functions-key": ADMIN_KEY},
        "token right club": bearer(sub="u-right", clubs=[CLUB]),
        "token other club": bearer(sub="u-other", clubs=[OTHER_CLUB]),
        "read-only token": bearer(sub="u-ro", clubs=[CLUB], roles=["idrettsbro.readonly"]),
        "admin token": bearer(sub="u-admin", roles=["idrettsbro.admin"]),
    }


def expected(policy: Policy, caller: str) -> int | None:
    """The refusal (401/403/404) a caller gets on a route of ``policy``, or None: let through."""
    if policy is Policy.PUBLIC or caller in ("master key", "admin token"):
        return None
    if caller == "none":
        return 401
    if policy is Policy.ADMIN:
        return 403
    if caller == "token other club":
        return {Policy.CLUB_READ: 403, Policy.CLUB_WRITE: 403, Policy.PERSON_READ: 404}.get(policy)
    if caller == "read-only token" and policy is Policy.CLUB_WRITE:
        return 403
    return None


def _call(host: LocalHost, route, headers: dict[str, str]):
    method = route.methods[0]
    body = b"{}" if method in ("POST", "PUT") else None
    return host.request(
        method, _url(route.route), headers={**headers, "Content-Type": "application/json"}, body=body, key=None
    )


def test_every_route_declares_a_policy(app_host) -> None:
    names = {r.name for r in app_host.routes}
    assert names - set(POLICIES) == set(), "HTTP functions without a policy in shared/auth/policy.py"
    assert set(POLICIES) - names == set(), "policies for functions that are not registered"


def test_keys_mode_levels_follow_the_policies(app_host) -> None:
    """keys mode: the host's auth level is the policy's key requirement (admin ⇔ master key)."""
    for r in app_host.routes:
        policy = POLICIES[r.name]
        want = {Policy.PUBLIC: "anonymous", Policy.ADMIN: "admin"}.get(policy, "function")
        assert r.auth_level == want, (r.name, r.auth_level, policy)


@pytest.mark.parametrize("caller", ["none", "function key", "master key"])
def test_keys_mode_matrix(app_host, storage, caller) -> None:
    """Today's behaviour: the host checks keys; a key caller may act for every club."""
    key = {"none": None, "function key": "function", "master key": "master"}[caller]
    _mirror(app_host)
    wrong = []
    for r in app_host.routes:
        method = r.methods[0]
        res = app_host.request(method, _url(r.route), json_body={} if method in ("POST", "PUT") else None, key=key)
        policy = POLICIES[r.name]
        refused = (caller == "none" and policy is not Policy.PUBLIC) or (
            caller == "function key" and policy is Policy.ADMIN
        )
        if refused != (res.status_code == 401) or res.status_code == 403:
            wrong.append(f"{method} {r.route}: {res.status_code}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "caller",
    ["none", "function key", "master key", "token right club", "token other club", "read-only token", "admin token"],
)
def test_tokens_mode_matrix(tokens_host, issuer, caller) -> None:
    headers = _callers(issuer)[caller]
    assert headers is not None
    wrong = []
    for r in tokens_host.routes:
        policy = POLICIES[r.name]
        want = expected(policy, caller)
        res = _call(tokens_host, r, headers)
        body = json.loads(res.get_body()) if res.get_body() else {}
        if want is None:
            ok = res.status_code not in (401, 403) and not (policy is Policy.PERSON_READ and res.status_code != 200)
        else:
            ok = res.status_code == want and body.get("status") == want
            if want == 404:  # indistinguishable from a person the mirror does not know
                ok = (
                    ok
                    and body.get("type", "").endswith("/not-found")
                    and body.get("detail") == (f"Person {PERSON} is not in the mirror.")
                )
        if not ok:
            wrong.append(f"{r.methods[0]} {r.route} [{policy}]: {res.status_code} (want {want or 'through'})")
    assert not wrong, "\n".join(wrong)


def test_unauthorized_answers_carry_a_bearer_challenge(tokens_host) -> None:
    res = tokens_host.request("GET", f"/api/nif/clubs/{CLUB}/members", key=None)
    assert res.status_code == 401
    assert res.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert json.loads(res.get_body())["type"].endswith("/unauthorized")


def test_wrong_app_key_is_401(tokens_host) -> None:
    res = tokens_host.request("GET", f"/api/nif/clubs/{CLUB}/members", headers={"x-functions-key": "x" * 30}, key=None)
    assert res.status_code == 401


def test_unresolved_key_vault_reference_is_never_a_key(tokens_host, env) -> None:
    ref = "@Microsoft.KeyVault(VaultName=kv;SecretName=api-function-key)"
    env.set(AUTH_FUNCTION_KEY=ref)
    res = tokens_host.request("GET", f"/api/nif/clubs/{CLUB}/members", headers={"x-functions-key": ref}, key=None)
    assert res.status_code == 401


def test_clubs_claim_prefix_and_string_format(tokens_host, issuer, env) -> None:
    env.set(AUTH_CLUBS_PREFIX="club.")
    token = issuer.issue(extra={"clubs": f"club.{CLUB} club.77 other"})
    res = tokens_host.request(
        "GET", f"/api/nif/clubs/{CLUB}/members", headers={"Authorization": f"Bearer {token}"}, key=None
    )
    assert res.status_code == 200
    bare = issuer.issue(clubs=[CLUB])  # without the prefix the value does not count
    res = tokens_host.request(
        "GET", f"/api/nif/clubs/{CLUB}/members", headers={"Authorization": f"Bearer {bare}"}, key=None
    )
    assert res.status_code == 403


# --- persons and merges ----------------------------------------------------------------------
def _person(host, issuer, person_id, club):
    token = issuer.issue(clubs=[club])
    res = host.request("GET", f"/api/nif/persons/{person_id}", headers={"Authorization": f"Bearer {token}"}, key=None)
    return res.status_code, json.loads(res.get_body())


def test_person_of_the_callers_club(tokens_host, issuer) -> None:
    status, body = _person(tokens_host, issuer, PERSON, CLUB)
    assert status == 200 and body["personId"] == int(PERSON)
    assert _person(tokens_host, issuer, PERSON, OTHER_CLUB)[0] == 404


def test_person_merged_into_someone_in_another_club(tokens_host, issuer) -> None:
    """P1 was a member of CLUB and was merged into N, whose only membership is in OTHER_CLUB: the old id
    resolves to N, so CLUB no longer sees it and OTHER_CLUB does."""
    ids = load_event("queue/person_merge.json")["ids"]
    for pid in (ids["P1"], ids["N"]):
        status, body = _person(tokens_host, issuer, pid, CLUB)
        assert status == 404 and body["detail"] == f"Person {pid} is not in the mirror."
        status, body = _person(tokens_host, issuer, pid, OTHER_CLUB)
        assert status == 200 and body["personId"] == ids["N"]


def test_unknown_person_and_foreign_person_answer_alike(tokens_host, issuer) -> None:
    unknown = _person(tokens_host, issuer, "1234", CLUB)
    foreign = _person(tokens_host, issuer, PERSON, OTHER_CLUB)
    assert unknown[0] == foreign[0] == 404
    assert {k: v for k, v in unknown[1].items() if k not in ("detail", "instance")} == {
        k: v for k, v in foreign[1].items() if k not in ("detail", "instance")
    }


# --- attribution ----------------------------------------------------------------------------
def _as_token_caller(issuer, env, handler, **claims):
    """Run ``handler`` behind a club-write policy as the caller a real token describes."""
    from shared.auth import guard
    from shared.http import ApiRequest

    env.set(AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=issuer.audience)
    token = issuer.issue(**claims)
    req = ApiRequest(
        "POST", "http://h/api/x", route_params={"clubId": CLUB}, headers={"authorization": f"Bearer {token}"}
    )
    return guard(handler, "nif_membership_add", "tokens")(req)


def test_caller_ids_on_the_log_context(issuer, env, caplog) -> None:
    import logging

    def handler(req):
        logging.getLogger("test.auth").info("inside the handler")
        return "ok"

    with caplog.at_level("INFO"):
        assert _as_token_caller(issuer, env, handler, sub="user-42", clubs=[CLUB], client_id="frontend-7") == "ok"
    rec = next(r for r in caplog.records if r.getMessage() == "inside the handler")
    assert (rec.caller_subject, rec.caller_client_id) == ("user-42", "frontend-7")  # type: ignore[attr-defined]


def test_membership_requests_record_who_asked(storage, issuer, env) -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from shared.nif.membership_requests import TABLE, record_request

    trace = "0b6c1f9e-1111-4222-8333-444455556666"
    request = cast(Any, SimpleNamespace(isClubLevel=True, startDate=None, sports=[], groups=[]))
    response = cast(
        Any,
        SimpleNamespace(traceId=trace, membershipId=0, personId=1, startDate=None, sentToEmail=None, sentToPhone=None),
    )
    _as_token_caller(issuer, env, lambda req: record_request(int(CLUB), request, response), sub="staff-9", clubs=[CLUB])
    row = storage.table(TABLE).get(trace, "request")
    assert row["actorKind"] == "token" and row["actorSubject"] == "staff-9"
    assert row["actorClientId"] == "local-frontend"


# --- CORS ----------------------------------------------------------------------------------
def _preflight(host, origin):
    return host.request(
        "OPTIONS",
        f"/api/nif/clubs/{CLUB}/members",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        key=None,
    )


def test_cors_preflight_from_an_allowed_origin(tokens_host) -> None:
    res = _preflight(tokens_host, ORIGIN)
    assert res.status_code == 204
    assert res.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in res.headers["Access-Control-Allow-Headers"]


def test_cors_preflight_from_another_origin(tokens_host) -> None:
    res = _preflight(tokens_host, OTHER_ORIGIN)
    assert res.status_code == 403 and "Access-Control-Allow-Origin" not in res.headers


def test_browser_call_with_a_token_alone(tokens_host, issuer) -> None:
    """What a front end does: Origin + bearer token, no key."""
    token = issuer.issue(clubs=[CLUB])
    res = tokens_host.request(
        "GET",
        f"/api/nif/clubs/{CLUB}/members",
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {token}"},
        key=None,
    )
    assert res.status_code == 200 and res.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = tokens_host.request("GET", "/api/health", headers={"Origin": OTHER_ORIGIN}, key=None)
    assert "Access-Control-Allow-Origin" not in other.headers


# --- indexing ------------------------------------------------------------------------------
_LEVELS = """
import json
from devtools.runtime.driver import get_driver
import functions._glue as glue
d = get_driver()
print(json.dumps({"mode": glue.AUTH_MODE, "levels": {f.name: f.trigger.get("authLevel") for f in d.functions.values()
                  if f.trigger["type"] == "httpTrigger"}}))
"""


def test_tokens_mode_indexes_every_http_route_anonymous() -> None:
    """Microsoft's runtime, in a fresh interpreter with AUTH_MODE=tokens, indexes every HTTP trigger
    anonymous (and the glue knows the mode)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "AUTH_MODE": "tokens"}
    out = subprocess.run(
        [sys.executable, "-c", _LEVELS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["mode"] == "tokens"
    assert set(data["levels"]) == set(POLICIES)
    assert {str(v).lower() for v in data["levels"].values()} == {"anonymous"}


def test_intake_records_payments_and_manual_runs_record_who_did_it(storage, issuer, env, tmp_path) -> None:
    """The same attribution on an intake record, a payment's outbox row and a manual export run
    (here one that fails: nothing listens on the club's SFTP port): ids only, never a name."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from devtools.ports import free_port
    from devtools.sftp_server import SftpServer
    from shared.clubs import ClubIn, put_club
    from shared.idrott.export import export_club
    from shared.idrott.ledger import list_runs
    from shared.idrott.models import Person
    from shared.idrott.rows import TABLE as RECORDS
    from shared.idrott.store import ClubRecords
    from shared.nif.payments.outbox import new_row
    from tests.idrott_support import club_body, person

    nobody = SimpleNamespace(port=free_port(), username="rf", host_key_line=SftpServer(tmp_path).host_key_line)
    put_club("se-1", ClubIn.model_validate(club_body(nobody)))
    env.set(SFTP_PASSWORD_TEST="not-used-nothing-listens", SFTP_CONNECT_TIMEOUT_SECONDS=1)

    def act(req):
        ClubRecords("se-1").upsert_persons([Person.model_validate(person("p-1"))])
        assert export_club("se-1", trigger="manual").status == "failed"
        return new_row(int(CLUB), "ext-1", content_hash="h", request={"personId": 1}, now=datetime.now(UTC))

    payment = _as_token_caller(issuer, env, act, sub="staff-9", clubs=[CLUB, "se-1"])
    who = {"actorKind": "token", "actorSubject": "staff-9", "actorClientId": "local-frontend"}
    assert {k: payment[k] for k in who} == who
    record = next(r for r in storage.table(RECORDS).query(partition_key="se-1") if r["RowKey"].endswith("p-1"))
    assert {k: record[k] for k in who} == who
    (run,) = list_runs("se-1")
    assert run.actor == who and run.to_json()["actor"] == who
