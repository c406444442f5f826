"""Hardening of the NIF side (issue 9): secret and unknown fields never reach function-key callers,
NIF's error text never carries secrets to callers, absurd token expiries never break a club.

- Mirror: the function-key views are built from an allow-list (``shared.nif.mirror.PUBLIC_FIELDS``)
  with secret flags read in any spelling; checked through the queue function, Azurite and the
  registered read functions, and by a hypothesis generator (pure view builder, plus a few examples
  end to end).
- Errors: a NIF error body (HTML, long text, a secret inside) is replaced by our own sentence;
  NIF's message is shown only when short, structured and clean.
- Tokens: a JWT ``exp`` of ``1e20``, ``-1e12``, ``Infinity`` or a 400-digit number is ignored (the
  fallback lifetime applies), served by the NIF sandbox over real HTTP.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.nif_sandbox import NifSandbox
from shared.nif import mirror
from shared.nif.queue import entities as E
from tests.queue_support import messages

KEY = "hardening-subscription-key-7f3a9c"
_SEQ = itertools.count(1)
_IDS = itertools.count(1)


# --- helpers: queue messages through the registered function, reads through the host -------------


def _item(entity: str, object_id: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": f"hardening-{next(_SEQ)}-{object_id}",
        "properties": {"ObjectId": object_id, "EntityName": entity, "ChangeType": 1},
        "body": body,
    }


def _load(
    host: Any,
    *,
    person_id: int,
    club_id: int,
    person: dict[str, Any],
    contact: dict[str, Any],
    membership: dict[str, Any] | None = None,
    active: dict[str, Any] | None = None,
) -> None:
    """TpPerson, its contact information, a club membership and a branch membership, as NIF
    sends them, through the queue function into Azurite."""
    base = person_id * 10
    items = [
        _item("TpPerson", person_id, {"personId": person_id, **person}),
        _item("TpPersonContactInformation", base + 1, {"contactId": base + 1, "personId": person_id, **contact}),
        _item(
            "TpMembership",
            base + 2,
            {"membershipId": base + 2, "personId": person_id, "orgId": club_id, "membershipStatusId": 2}
            | (membership or {}),
        ),
        _item(
            "TpActiveMembership",
            base + 3,
            {"activeMembershipId": base + 3, "personId": person_id, "branchId": 819760, "statusId": 2} | (active or {}),
        ),
    ]
    start = next(_SEQ) * 10
    arg = host.functions["nif_queue"].trigger["name"]
    host.invoke("nif_queue", **{arg: messages(items, start=start)})


def _get(host: Any, url: str, key: str = "function") -> tuple[int, Any]:
    res = host.request("GET", url, key=key)
    return res.status_code, (json.loads(res.get_body()) if res.get_body() else None)


def _views(host: Any, person_id: int, club_id: int) -> tuple[str, str]:
    """(function-key answers, admin answers) of both read routes, as text."""
    public, full = [], []
    for url in (f"/api/nif/persons/{person_id}", f"/api/nif/clubs/{club_id}/members"):
        status, body = _get(host, url)
        assert status == 200, (url, body)
        public.append(json.dumps(body, ensure_ascii=False))
        status, body = _get(host, url + "/full", key="master")
        assert status == 200, (url, body)
        full.append(json.dumps(body, ensure_ascii=False))
    return "\n".join(public), "\n".join(full)


# --- (5) the leaks seen in the issue, end to end ---------------------------------------------------

S = "LEAKED-VALUE-q8z"  # the value that must not reach a function-key caller

LEAK_CASES: dict[str, dict[str, Any]] = {
    "E-mail": {"contact": {"E-mail": S, "isSecretEmail": True}},
    "email_address": {"contact": {"email_address": S, "isSecretEmail": True}},
    "mobile_phone": {"contact": {"mobile_phone": S, "isSecretMobilePhone": True}},
    "phoneMobile": {"contact": {"phoneMobile": S, "isSecretMobilePhone": True}},
    "postAddress": {"contact": {"postAddress": S, "isSecretAddress": True}},
    "nested contact.email": {"contact": {"contact": {"email": S}, "isSecretEmail": True}},
    "flag is_secret_email": {"contact": {"email": S, "is_secret_email": True}},
    "flag value Y": {"contact": {"email": S, "isSecretEmail": "Y"}},
    "flag in the person body": {"contact": {"mobilePhone": S}, "person": {"IS-SECRET-MOBILE": "yes"}},
    "email in TpMembership": {"contact": {}, "membership": {"email": S}},
    "unknown field in TpPerson": {"contact": {}, "person": {"socialSecurityNumber": S}},
    "unknown field in TpActiveMembership": {"contact": {}, "active": {"guardianPhone": S}},
}


@pytest.mark.parametrize("case", list(LEAK_CASES))
def test_secret_and_unknown_fields_reach_only_the_admin_views(app_host, storage, case) -> None:
    spec = LEAK_CASES[case]
    person_id, club_id = 7_100_000 + next(_IDS), 71_000 + next(_IDS)
    _load(
        app_host,
        person_id=person_id,
        club_id=club_id,
        person={"firstName": "Kari", "lastName": "Hemmelig", **spec.get("person", {})},
        contact={"city": "Bergen", **spec["contact"]},
        membership=spec.get("membership"),
        active=spec.get("active"),
    )
    public, full = _views(app_host, person_id, club_id)
    assert S not in public
    assert S in full  # kept in storage and shown to the admin
    assert "Hemmelig" in public  # the view is not simply empty


def test_public_view_keeps_the_known_fields_and_shows_effective_flags() -> None:
    contact = {
        "contactId": 1,
        "personId": 2,
        "email": "kari@example.no",
        "mobilePhone": "91234567",
        "city": "Oslo",
        "isSecretEmail": False,
        "isSecretMobilePhone": False,
        "is_secret_mobile_phone": "J",
    }
    hidden = mirror.secret_fields([contact])
    view = mirror.public_view("TpPersonContactInformation", contact, hidden)
    assert view == {
        "contactId": 1,
        "personId": 2,
        "email": "kari@example.no",
        "city": "Oslo",
        "isSecretEmail": False,
        "isSecretMobilePhone": True,
    }


@pytest.mark.parametrize(
    "value,is_set",
    [(True, True), ("Y", True), ("ja", True), (1, True), ({"x": 1}, True), ("maybe", True)]
    + [(False, False), (None, False), (0, False), ("false", False), (" No ", False), ("N", False), ("", False)],
)
def test_secret_flag_values_fail_closed(value: Any, is_set: bool) -> None:
    assert mirror.flag_is_set(value) is is_set


# --- the generator: field-name variants, nesting, flag spellings and values -------------------------

#: Contact values NIF's secret flags govern (the names the allow-list gates), lower case.
_CONTACT_VALUES = {n.lower() for names in E.SECRET_FLAGS.values() for n in names}
#: Names an unknown field must not take (anything a view might know), lower case.
_KNOWN = _CONTACT_VALUES | {
    n.lower()
    for n in (
        *E.PERSON_ID,
        *E.CLUB_ID,
        *E.BRANCH_ID,
        *E.STATUS_ID,
        *E.SOFT_DELETE,
        *E.MERGED_PERSONS,
        *E.MERGED_MEMBERSHIPS,
        *E.MERGED_ACTIVE,
        *E.TRACE_ID,
        *E.SECRET_FLAGS,
        *E.TpPerson.model_fields,
        *E.TpPersonContactInformation.model_fields,
        *E.TpMembership.model_fields,
        *E.TpActiveMembership.model_fields,
        "countryCode",
        "contactId",
    )
}
_FLAG_WORDS = ("secret", "hidden", "hide", "confidential")

#: Category → (canonical flag, canonical value fields, word forms used to spell variants).
_CATEGORIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "email": ("isSecretEmail", ("email", "emailAddress"), ("email", "e-mail", "mail", "email address")),
    "mobile": ("isSecretMobilePhone", ("mobilePhone", "mobile"), ("mobile phone", "phone mobile", "mobile", "cell")),
    "private": ("isSecretPrivatePhone", ("privatePhone", "homePhone"), ("private phone", "home phone", "private")),
    "work": ("isSecretWorkPhone", ("workPhone",), ("work phone", "work", "phone work")),
    "address": (
        "isSecretAddress",
        ("addressLine1", "addressLine2", "postCode", "city"),
        ("address", "post address", "postal code", "address line 1"),
    ),
}
_TRUE_VALUES = st.sampled_from([True, 1, "Y", "y", "yes", "true", "TRUE ", "1", "J", "ja", "x"])
_FALSE_VALUES = st.sampled_from([False, 0, "false", "N", "no", "0", None])


def _spell(words: list[str], draw: Any) -> str:
    """Join words in a random style: camelCase, snake_case, kebab-case, spaced, upper, lower."""
    parts = [p for w in words for p in w.split()]
    style = draw(st.sampled_from(["camel", "snake", "kebab", "upper", "lower", "pascal", "dot", "space"]))
    if style == "camel":
        return parts[0].lower() + "".join(p.capitalize() for p in parts[1:])
    if style == "pascal":
        return "".join(p.capitalize() for p in parts)
    sep = {"snake": "_", "kebab": "-", "dot": ".", "space": " "}.get(style, "_")
    text = sep.join(parts)
    return text.upper() if style == "upper" else text.lower() if style == "lower" else text


@st.composite
def flag_names(draw: Any, category: str) -> str:
    """``isSecretEmail``, ``is_secret_e-mail``, ``SECRET-MAIL``, ``emailIsHidden``, ``hasSecretCell``…"""
    word = draw(st.sampled_from(_CATEGORIES[category][2]))
    flag = draw(st.sampled_from(_FLAG_WORDS))
    prefix = draw(st.sampled_from(["is", "", "has"]))
    shape = draw(st.sampled_from(["prefix", "suffix"]))
    words = [w for w in (prefix, flag, word) if w] if shape == "prefix" else [word, "is", flag]
    return _spell(words, draw)


@st.composite
def value_names(draw: Any, category: str) -> str:
    """A canonical field name (any case) or a variant spelling of it (``E-mail``, ``phone_mobile``…)."""
    canonical = _CATEGORIES[category][1]
    if draw(st.booleans()):
        name = draw(st.sampled_from(canonical))
        return draw(st.sampled_from([name, name.upper(), name.lower(), f" {name} "]))
    word = draw(st.sampled_from(_CATEGORIES[category][2]))
    return _spell([word], draw) if " " not in word else _spell(word.split(), draw)


_UNKNOWN_NAME = st.text(alphabet="abcdefgkmnuvwxyzABKMZ_-", min_size=1, max_size=12).filter(
    lambda n: n.strip().lower() not in _KNOWN and not any(w in n.lower() for w in _FLAG_WORDS)
)


def _free(body: dict[str, Any], name: str) -> bool:
    """Whether ``name`` is new in ``body`` as the mirror compares keys (trimmed, any case)."""
    return all(str(k).strip().lower() != name.strip().lower() for k in body)


class _Markers:
    """Unique marker strings, so a leak is found by a substring search in the answer."""

    def __init__(self) -> None:
        self.n = 0
        self.secret: list[str] = []
        self.unknown: list[str] = []
        self.public: list[str] = []

    def new(self, kind: str) -> str:
        self.n += 1
        value = f"{kind.upper()}-mk{self.n:03d}z"
        getattr(self, kind).append(value)
        return value


@st.composite
def bodies(draw: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], _Markers]:
    """(person body, contact body, membership body, markers): for each secret category, whether it is
    secret, its flag spelled in some way (in the contact or the person body, maybe nested) with a
    true or false value, its values under canonical or variant names (maybe nested), plus unknown
    fields (scalars, objects, lists) in every body."""
    marks = _Markers()
    person: dict[str, Any] = {"firstName": marks.new("public"), "lastName": marks.new("public")}
    contact: dict[str, Any] = {}
    membership: dict[str, Any] = {"startDate": "2026-01-01"}
    for category, (canonical_flag, _fields, _words) in _CATEGORIES.items():
        secret = draw(st.booleans())
        if secret or draw(st.booleans()):  # a false flag is spelled too, sometimes
            name = draw(st.one_of(st.just(canonical_flag), flag_names(category)))
            value = draw(_TRUE_VALUES if secret else _FALSE_VALUES)
            target = draw(st.sampled_from([contact, contact, person]))
            if draw(st.integers(0, 4)) == 0:
                target.setdefault(draw(st.sampled_from(["privacy", "settings", "flags"])), {})[name] = value
            else:
                target[name] = value
        for _ in range(draw(st.integers(1, 2))):
            name = draw(value_names(category))
            allowed = name.strip().lower() in _CONTACT_VALUES
            where = draw(st.sampled_from(["contact", "contact", "nested", "person", "membership"]))
            if where == "contact" and _free(contact, name):
                contact[name] = marks.new("unknown" if not allowed else "secret" if secret else "public")
            elif where == "nested":
                inner = contact.setdefault(draw(st.sampled_from(["contact", "details", "kontakt"])), {})
                if _free(inner, name):
                    inner[name] = marks.new("unknown")
            elif where in ("person", "membership"):  # contact values are not in these allow-lists
                target = person if where == "person" else membership
                if _free(target, name):
                    target[name] = marks.new("secret" if secret else "unknown")
    for body in (person, contact, membership):
        for _ in range(draw(st.integers(0, 3))):
            name = draw(_UNKNOWN_NAME)
            if not _free(body, name):
                continue
            shape = draw(st.sampled_from(["scalar", "object", "list"]))
            value = marks.new("unknown")
            body[name] = value if shape == "scalar" else {"value": value} if shape == "object" else [value]
    return person, contact, membership, marks


def _check(public: str, marks: _Markers) -> None:
    for value in marks.secret + marks.unknown:
        assert value not in public, f"{value} reached a function-key caller: {public}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_generated_bodies_never_leak_through_the_view_builder(generated) -> None:
    """Invariant: no value of a field marked secret (by a flag in any spelling, position or
    truthy value) and no value of an unknown field (any name outside the entity's allow-list,
    variant spellings and nested objects included) appears in the function-key view; the
    allow-listed values that no flag hides do appear."""
    person, contact, membership, marks = generated
    hidden = mirror.secret_fields([person, contact])
    view = {
        "person": mirror.public_view("TpPerson", person, hidden),
        "contact": mirror.public_view("TpPersonContactInformation", contact, hidden),
        "membership": mirror.public_view("TpMembership", membership, mirror.secret_fields([membership])),
    }
    public = json.dumps(view, ensure_ascii=False)
    _check(public, marks)
    for value in marks.public:
        assert value in public, f"{value} (allowed, not secret) is missing: {public}"


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(generated=bodies())
def test_generated_bodies_never_leak_end_to_end(app_host, storage, generated) -> None:
    """The same invariant through the queue function, Azurite and the registered read functions
    (person and club members, function key); the admin twins show every value."""
    person, contact, membership, marks = generated
    person_id, club_id = 7_200_000 + next(_IDS), 72_000 + next(_IDS)
    _load(app_host, person_id=person_id, club_id=club_id, person=person, contact=contact, membership=membership)
    public, full = _views(app_host, person_id, club_id)
    _check(public, marks)
    for value in marks.public:
        assert value in public
    for value in marks.secret + marks.unknown + marks.public:
        assert value in full


# --- (7) NIF's error text never carries secrets to callers ----------------------------------------


class _FakeNif:
    """A loopback HTTP server answering every request with one configured response."""

    def __init__(self) -> None:
        self.status, self.content_type, self.body = 200, "application/json", b"{}"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(fake.status)
                self.send_header("Content-Type", fake.content_type)
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

            do_GET = do_POST = _serve

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int, content_type: str, body: str) -> None:
        self.status, self.content_type, self.body = status, content_type, body.encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_nif(storage, env, sensitive) -> Iterator[_FakeNif]:
    sensitive.add(KEY)
    fake = _FakeNif()
    env.set(NIF_API_BASE_URL=fake.base_url, NIF_SUBSCRIPTION_KEY=KEY)
    try:
        yield fake
    finally:
        fake.close()


CONFIGURED_SECRET = "sftp-pass-Wq7v3Lk9"

ERROR_BODIES = {
    "html with the key": (
        "text/html",
        (
            f"<html><body><h1>Bad Request</h1><p>Ocp-Apim-Subscription-Key {KEY} is not valid for "
            f"developer user {KEY}.</p></body></html>"
        ),
    ),
    "plain text with the key": ("text/plain", f"Subscription {KEY} rejected"),
    "json message with the key": ("application/json", json.dumps({"code": 4711, "message": f"bad key {KEY}"})),
    "json message with a configured secret": (
        "application/json",
        json.dumps({"message": f"password {CONFIGURED_SECRET} refused"}),
    ),
    "json message with a JWT": (
        "application/json",
        json.dumps({"message": "token eyJhbGciOiJIUzI1NiJ9.eyJDbHViSWQiOiIxIn0.c2lnbmF0dXJl expired"}),
    ),
    "long json message": ("application/json", json.dumps({"message": "LONG-NIF-TEXT " + "x" * 200})),
}


@pytest.mark.parametrize("case", list(ERROR_BODIES))
def test_nif_error_text_with_secrets_never_reaches_the_caller(app_host, fake_nif, sensitive, case) -> None:
    from shared.logs import register_secret

    register_secret(CONFIGURED_SECRET)  # as the secret store does for every value it reads
    sensitive.add(CONFIGURED_SECRET)
    content_type, text = ERROR_BODIES[case]
    fake_nif.answer(400, content_type, text)
    for method in ("GET", "POST"):
        res = app_host.request(method, "/api/nif/clubs/19428/token")
        answer = res.get_body().decode()
        assert res.status_code == 422, answer
        for secret in (KEY, CONFIGURED_SECRET, "eyJhbGciOiJIUzI1NiJ9", "LONG-NIF-TEXT"):
            assert secret not in answer
        assert "<" not in json.loads(answer)["detail"]
        assert json.loads(answer)["detail"].startswith("NIF rejected the request")


def test_short_structured_nif_message_is_shown_and_known_codes_get_our_sentence(app_host, fake_nif) -> None:
    fake_nif.answer(400, "application/json", json.dumps({"message": "Club is passive."}))
    res = app_host.request("GET", "/api/nif/clubs/19428/token")
    assert res.status_code == 422 and json.loads(res.get_body())["detail"] == "Club is passive."
    fake_nif.answer(400, "application/json", json.dumps({"code": 1018, "message": f"club {KEY} unknown"}))
    res = app_host.request("GET", "/api/nif/clubs/19428/token")
    problem = json.loads(res.get_body())
    assert res.status_code == 404 and problem["nifCode"] == 1018 and problem["detail"] == "Invalid club Id."


def test_public_nif_message_rule() -> None:
    from shared.nif.errors import public_nif_message

    assert public_nif_message("Club is passive.") == "Club is passive."
    assert public_nif_message("x" * 201) is None
    assert public_nif_message("<b>no</b>") is None
    assert public_nif_message("two\nlines") is None
    assert public_nif_message("person 01018012345 exists") is None  # a fødselsnummer shape
    assert public_nif_message("password=hunter22 refused") is None


# --- (8) absurd JWT exp values ---------------------------------------------------------------------


def _exp_ttl(exp: Any, now: float) -> Any:
    """The sandbox's ``ttl`` that makes its tokens carry ``exp``."""
    return exp - int(now) if isinstance(exp, int) else exp - now


@pytest.mark.parametrize(
    "exp", [1e20, -1e12, float("inf"), 10**400, -(10**30)], ids=["1e20", "-1e12", "Infinity", "10^400", "-10^30"]
)
def test_absurd_token_exp_is_ignored_not_a_500(app_host, storage, env, sensitive, exp) -> None:
    from datetime import UTC, datetime

    sensitive.add(KEY)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with NifSandbox(subscription_key=KEY, clock=lambda: now) as sandbox:
        sandbox.token_ttl = _exp_ttl(exp, now.timestamp())
        env.set(NIF_API_BASE_URL=sandbox.base_url, NIF_SUBSCRIPTION_KEY=KEY)
        for _ in range(2):
            res = app_host.request("GET", "/api/nif/clubs/19428/token")
            info = json.loads(res.get_body())
            assert res.status_code == 200, info
            assert info["expiresAt"] is None and info["clubId"] == 19428
        assert sandbox.token_fetches[19428] == 1  # cached (fallback lifetime), not fetched per call
        res = app_host.request("GET", "/api/nif/sports?clubId=19428")
        # a huge exp: the sandbox accepts the token; a past one: it refuses it (401 twice → 502)
        assert res.status_code == (200 if exp > 0 else 502)


def test_expiry_helpers_never_raise() -> None:
    import base64

    from shared.nif.tokens import iso_utc, jwt_expiry, plausible_expiry

    for payload in (b"[" * 100_000, b'{"exp": ' + b"9" * 5000 + b"}", b'{"exp": 1e400}', b'{"exp": "soon"}'):
        token = "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + ".c2ln"
        assert jwt_expiry(token) is None

    now = 1_772_366_400.0
    for value in (1e20, -1e12, float("inf"), float("nan"), 1e308):
        assert iso_utc(value) is None
        assert plausible_expiry(value, now) is None
    assert plausible_expiry(now + 3600, now) == now + 3600
    assert plausible_expiry(now - 60, now) == now - 60  # a small clock skew is kept
    assert plausible_expiry(now - 3 * 86400, now) is None
