"""A local NIF sandbox: behaves like NIF's partner API per the seed document. Local only.

Start it from Python::

    with NifSandbox() as sb:           # loopback, ephemeral port
        sb.base_url                    # -> NIF_API_BASE_URL, e.g. http://127.0.0.1:54321
        sb.subscription_key            # -> NIF_SUBSCRIPTION_KEY

or from a shell: ``python -m devtools.nif_sandbox --port 7072``.

NIF endpoints (under ``/api/v1``): ``GET auth/token/{clubId}``, ``GET sports``, ``GET countries``,
``GET organization/structure``, ``POST membership``, and the payment endpoints of
``devtools/nif_sandbox_payments.py`` (``POST membership/Addpaymentdetail``, ``GET
/read/api/Payment/paymentdetails``, faults injected ``after`` recording). Every call needs
``Ocp-Apim-Subscription-Key``; all but GET Token also need ``Authorization`` (the token, bare or ``Bearer``) and ``ClubId``.

Error bodies (NIF does not document its own; this is the sandbox's choice, and the client
accepts several shapes):

- NIF business codes: HTTP 400 ``{"code": 1007, "message": "<NIF text>", "errors": [{"path",
  "code", "message"}]}`` (``1018`` for an unknown club, also on GET Token);
- authentication (APIM style): HTTP 401 ``{"statusCode": 401, "message": "..."}``.

Sandbox-only endpoints:

- ``GET /_sandbox/outbox?after=<sequenceNumber>``: queue messages after that number, in order:
  ``{"messageId", "sequenceNumber", "enqueuedTimeUtc", "applicationProperties": {"ObjectId",
  "EntityName", "ChangeType"}, "body"}``;
- ``GET /_sandbox/verifications``: pending and completed two-phase verifications, with the seed's
  matrix case (1–16), ``link`` and ``otp``;
- ``POST /_sandbox/verifications/{traceId}/complete``: the person completes the verification;
  person and memberships are created and the messages (a ``ChangeType 9`` informational message
  with the full object before each change) are appended to the outbox;
- ``GET /_sandbox/stats``: token fetches per club, calls per endpoint.

Known data: clubs 19428 (the membership examples' club, with branches 827527 and 819760 and the
Allidrett group 544901), 1111111 (regular org structure example), 16235 (corporate example),
19430 (token example), plus any ids passed as ``clubs=``. Persons: 8756934 (Ola Dunk, Norwegian,
not validated), 8756935 (validated), 8756936 (foreign, not validated).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from devtools.nif_sandbox_payments import GET_PARTS, POST_ROUTE, PaymentBook
from shared.nif import rules
from shared.nif.models import NORWAY_COUNTRY_ID, MembershipRequest

DEFAULT_SUBSCRIPTION_KEY = "sandbox-subscription-key-0000"
TOKEN_TTL_SECONDS = 3600
VERIFICATION_WINDOW = timedelta(hours=24)
PENDING_MESSAGE = "Membership request is accepted at Club Level. It is pending for two phase verification."

SPORTS: list[dict[str, Any]] = [
    {
        "sportId": "32",
        "sportName": "Ski",
        "sportDescription": "demo sport description",
        "sports": [
            {"sportId": 132, "sportName": "Alpint", "sportDescription": "demo sport description"},
            {"sportId": 130, "sportName": "Langrenn", "sportDescription": "demo sport description"},
        ],
    },
    {
        "sportId": "17",
        "sportName": "Friidrett",
        "sportDescription": "demo sport description",
        "sports": [
            {"sportId": 220, "sportName": "Friidrett på bane", "sportDescription": "demo sport description"},
            {"sportId": 434, "sportName": "Løp utenfor bane", "sportDescription": "demo sport description"},
        ],
    },
]
COUNTRIES: list[dict[str, Any]] = [
    {"countryId": 1500159, "countryName": "Peru", "isoAlpha2": "PE", "isoAlpha3": "PER"},
    {"countryId": 1500125, "countryName": "Monaco", "isoAlpha2": "MC", "isoAlpha3": "MON"},
    {"countryId": 1500121, "countryName": "Luxembourg", "isoAlpha2": "LU", "isoAlpha3": "LUX"},
    {"countryId": 1500152, "countryName": "Norge", "isoAlpha2": "NO", "isoAlpha3": "NOR"},
]
ORG_REGULAR = {  # seed example, verbatim shape (string ids, "sportId " key, text coordinates)
    "clubId": "1111111",
    "clubName": "Heming Idrettslaget",
    "describingName": "Heming Idrettslaget",
    "email": "office@mailinator.no",
    "city": "Oslo",
    "county": "Norway",
    "longitude": "72.5714° E",
    "latitude": "23.0225° N",
    "groups": [
        {
            "groupId": "221333",
            "groupName": "Heming, IL - Alpint",
            "describingName": "Heming, IL - Alpint",
            "sportId": "32",
            "sportName": "Ski",
            "branches": [
                {
                    "describingName": "Heming, IL - Alpint",
                    "sportId ": "132",
                    "sportName": "Alpint",
                    "branchId": "221333",
                    "branchName": "Heming, IL - Alpint",
                },
                {
                    "branchId": "211424",
                    "branchName": "Heming, IL - Hopp",
                    "describingName": "Heming, IL - Hopp",
                    "sportId": "129",
                    "sportName": "Hopp",
                },
            ],
        }
    ],
}
ORG_CORPORATE = {  # seed example: integer ids, null coordinates, a group without branches
    "clubId": 16235,
    "clubName": "PetrOl B.I.L.",
    "describingName": "PetrOl B.I.L.",
    "email": "jalla.test@mailinator.com",
    "city": "STAVANGER",
    "county": "Norge",
    "longitude": None,
    "latitude": None,
    "groups": [
        {
            "groupId": 766441,
            "groupName": "PetrOl B.I.L.",
            "describingName": "PetrOl B.I.L. - Curling",
            "sportId": 204,
            "sportName": "Curling",
            "branches": [],
        }
    ],
}
ORG_MEMBERSHIP_CLUB = {  # the club of the seed's membership examples (structure synthesised)
    "clubId": 19428,
    "clubName": "Gjermundsen Auto B.I.L.",
    "describingName": "Gjermundsen Auto B.I.L.",
    "email": "post@mailinator.com",
    "city": "Oslo",
    "county": "Norge",
    "longitude": None,
    "latitude": None,
    "groups": [
        {
            "groupId": 819700,
            "groupName": "Berg IL",
            "describingName": "Berg IL - Friidrett",
            "sportId": 17,
            "sportName": "Friidrett",
            "branches": [
                {
                    "branchId": 827527,
                    "branchName": "Berg IL",
                    "describingName": "Berg IL - Friidrett på bane",
                    "sportId": 220,
                    "sportName": "Friidrett på bane",
                },
                {
                    "branchId": 819760,
                    "branchName": "Berg IL",
                    "describingName": "Berg IL - Curling",
                    "sportId": 207,
                    "sportName": "Curling",
                },
            ],
        },
        {
            "groupId": 544901,
            "groupName": "Allidrett",
            "describingName": "Gjermundsen Auto B.I.L. - Allidrett",
            "sportId": None,
            "sportName": None,
            "branches": [],
        },
    ],
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def matrix_case(
    *, club_level: bool, branches: bool, person: str, norwegian: bool, has_club_membership: bool
) -> tuple[int, bool, bool]:
    """The seed's two-phase verification matrix: (case 1–16, send link, send OTP).

    ``person`` is ``new``, ``validated`` or ``unvalidated`` (an existing person).
    """
    if club_level:
        base = 5 if branches else 0
        if person == "new":
            case = base + (1 if norwegian else 2)
        elif person == "validated":
            case = base + 3
        else:
            case = base + (4 if norwegian else 5)
        otp = person != "validated" and norwegian
        return case, True, otp
    if has_club_membership and person != "new":
        return (12 if person == "validated" else 11), False, False
    if person == "new":
        return 13, False, False
    if person == "validated":
        return 14, False, False
    return (15 if norwegian else 16), False, False


@dataclass
class _Person:
    personId: int
    firstName: str
    lastName: str
    birthDate: str
    genderId: int
    postCode: str
    nationalityId: int
    email: str | None
    mobilePhone: str | None
    validated: bool

    def search_key(self) -> tuple:
        return (
            self.firstName.lower(),
            self.lastName.lower(),
            self.birthDate,
            self.genderId,
            self.postCode,
            self.nationalityId,
        )

    def body(self, trace_id: str | None) -> dict[str, Any]:
        return {
            "personId": self.personId,
            "firstName": self.firstName,
            "lastName": self.lastName,
            "birthDate": self.birthDate,
            "genderId": self.genderId,
            "nationalityId": self.nationalityId,
            "postCode": self.postCode,
            "isValidated": self.validated,
            "traceId": trace_id,
        }


@dataclass
class _Verification:
    id: str
    traceId: str | None
    clubId: int
    case: int
    link: bool
    otp: bool
    person: _Person
    new_person: bool
    startDate: str
    branches: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    createdAt: datetime
    status: str = "pending"
    result: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "traceId": self.traceId,
            "clubId": self.clubId,
            "case": self.case,
            "link": self.link,
            "otp": self.otp,
            "personId": self.person.personId,
            "status": self.status,
            "createdAt": self.createdAt.isoformat(),
            **({"result": self.result} if self.result else {}),
        }


@dataclass
class _Fault:
    path: str
    method: str | None
    status: int | None
    delay: float
    times: int
    after: bool = False  # handle (record) first, then wait and answer: a time-out after recording


class NifSandbox:
    """NIF per the seed, in memory, on loopback. Thread-safe; start()/stop() or a ``with`` block."""

    def __init__(
        self,
        *,
        subscription_key: str = DEFAULT_SUBSCRIPTION_KEY,
        clubs: Iterable[int] = (),
        clock: Callable[[], datetime] | None = None,
        timezone_name: str = "Europe/Oslo",
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = TOKEN_TTL_SECONDS,
    ) -> None:
        self.subscription_key = subscription_key
        self._secret = secrets.token_bytes(32)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tz = timezone_name
        self._host, self._port = host, port
        self.token_ttl = token_ttl
        self._lock = threading.RLock()
        self.orgs: dict[int, dict[str, Any]] = {19428: ORG_MEMBERSHIP_CLUB, 1111111: ORG_REGULAR, 16235: ORG_CORPORATE}
        for club in (19430, *clubs):
            self.add_club(int(club))
        self.token_fetches: Counter[int] = Counter()
        self.calls: Counter[str] = Counter()
        self._token_generation: Counter[int] = Counter()
        self._ids = itertools.count(9_000_001)
        self._seq = itertools.count(1)
        self.persons: dict[int, _Person] = {}
        for p in (
            _Person(
                8756934,
                "Ola",
                "Dunk",
                "1980-07-05",
                1,
                "0010",
                NORWAY_COUNTRY_ID,
                "ola.dunk@mailinator.com",
                "85569745",
                False,
            ),
            _Person(
                8756935,
                "Kari",
                "Nordmann",
                "1985-01-02",
                2,
                "0150",
                NORWAY_COUNTRY_ID,
                "kari.n@mailinator.com",
                "90909090",
                True,
            ),
            _Person(
                8756936,
                "Sven",
                "Svensson",
                "1990-03-04",
                1,
                "11122",
                1500159,
                "sven.s@mailinator.com",
                "70707070",
                False,
            ),
        ):
            self.persons[p.personId] = p
        self.club_memberships: dict[tuple[int, int], int] = {}
        self.active_memberships: dict[tuple[int, int, int], int] = {}
        self.verifications: dict[str, _Verification] = {}
        self.outbox: list[dict[str, Any]] = []
        self._faults: list[_Fault] = []
        self.payments = PaymentBook(self)  # devtools/nif_sandbox_payments.py
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        handler = _make_handler(self)
        server_cls = type("SandboxServer", (ThreadingHTTPServer,), {"request_queue_size": 256})
        self._server = server_cls((self._host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="nif-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "sandbox not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # --- test controls ------------------------------------------------------------------------

    def add_club(self, club_id: int) -> None:
        """Make ``club_id`` known, with the structure of the membership examples' club."""
        org = copy.deepcopy(ORG_MEMBERSHIP_CLUB)
        org["clubId"] = club_id
        with self._lock:
            self.orgs[club_id] = org

    def revoke_tokens(self, club_id: int) -> None:
        """Invalidate every token issued so far for the club (next call gets 401)."""
        with self._lock:
            self._token_generation[club_id] += 1

    def inject(
        self,
        path: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        times: int = 1,
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Next ``times`` requests whose path contains ``path``: wait ``delay`` s, then answer ``status``
        (``after``: handle the request first, so it is applied, then wait and answer)."""
        with self._lock:
            self._faults.append(_Fault(path, method, status, delay, times, after))

    def issue_token(self, club_id: int, *, ttl: int | None = None) -> str:
        now = int(self._clock().timestamp())
        payload = {
            "unique_name": "sandbox",
            "ClubId": str(club_id),
            "ClubDetail": f"{club_id}~5~sandbox",
            "nbf": now,
            "exp": now + (self.token_ttl if ttl is None else ttl),
            "iat": now,
            "iss": "self",
            "aud": "fun-tpi",
            "gen": self._token_generation[club_id],
        }
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}"

    def today(self) -> date:
        return rules.local_today(self._clock(), self._tz)

    # --- request handling (called by the HTTP handler) --------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in path and (fault.method is None or fault.method == method):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _check_token(self, headers: dict[str, str]) -> int | tuple[int, dict]:
        """Club id of a valid call, or an error (status, body)."""
        raw_club = (headers.get("clubid") or "").strip()
        auth = (headers.get("authorization") or "").strip()
        if auth.lower().startswith("bearer "):
            auth = auth[7:].strip()
        if not auth or not raw_club:
            return 401, {"statusCode": 401, "message": "Unauthorized: Authorization and ClubId headers are required."}
        try:
            head, body, sig = auth.split(".")
            expected = _b64(hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
            claims = json.loads(_b64decode(body))
        except (ValueError, json.JSONDecodeError):
            return 401, {"statusCode": 401, "message": "Unauthorized: invalid token."}
        if not hmac.compare_digest(sig, expected):
            return 401, {"statusCode": 401, "message": "Unauthorized: invalid token."}
        if not raw_club.isdigit() or claims.get("ClubId") != str(int(raw_club)):
            return 401, {"statusCode": 401, "message": "Unauthorized: token is not for this club."}
        club = int(raw_club)
        if claims.get("exp", 0) <= self._clock().timestamp():
            return 401, {"statusCode": 401, "message": "Unauthorized: token expired."}
        if claims.get("gen") != self._token_generation[club]:
            return 401, {"statusCode": 401, "message": "Unauthorized: token revoked."}
        if club not in self.orgs:
            return 400, _nif_error(1018)
        return club

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        self.calls[f"{method} {path}"] += 1
        if path.startswith("/_sandbox/"):
            routed = self.payments.sandbox_route(method, [p for p in path.split("/") if p][1:], body)
            return routed if routed is not None else self._sandbox_route(method, path, query)
        if headers.get("ocp-apim-subscription-key") != self.subscription_key:
            return 401, {"statusCode": 401, "message": "Access denied due to missing or invalid subscription key."}
        parts = [p for p in path.split("/") if p]
        if [p.lower() for p in parts] == GET_PARTS and method == "GET":  # no version segment (reference)
            club = self._check_token(headers)
            return self.payments.get(club, query) if isinstance(club, int) else club
        if len(parts) < 3 or parts[0] != "api" or parts[1] != "v1":
            return 404, {"statusCode": 404, "message": "Resource not found"}
        route = parts[2:]
        if method == "GET" and route[:2] == ["auth", "token"] and len(route) == 3:
            return self._token(route[2])
        club = self._check_token(headers)
        if not isinstance(club, int):
            return club
        if method == "GET" and route == ["sports"]:
            return 200, SPORTS
        if method == "GET" and route == ["countries"]:
            return 200, COUNTRIES
        if method == "GET" and route == ["organization", "structure"]:
            return 200, self.orgs[club]
        if method == "POST" and route == ["membership"]:
            return self._membership(club, body)
        if method == "POST" and [p.lower() for p in route] == POST_ROUTE:
            return self.payments.post(club, body)
        return 404, {"statusCode": 404, "message": "Resource not found"}

    def _token(self, raw_club: str) -> tuple[int, Any]:
        if not raw_club.isdigit() or int(raw_club) not in self.orgs:
            return 400, _nif_error(1018)
        club = int(raw_club)
        with self._lock:
            self.token_fetches[club] += 1
        return 200, {"token": self.issue_token(club)}

    # --- POST membership ----------------------------------------------------------------------

    def _membership(self, club: int, body: bytes) -> tuple[int, Any]:
        from pydantic import ValidationError

        try:
            data = json.loads(body)
            req = MembershipRequest.model_validate(data)
        except (ValueError, ValidationError) as exc:
            code = 1039
            if isinstance(exc, ValidationError) and any(e["loc"][:2] == ("person", "personId") for e in exc.errors()):
                code = 1002
            return 400, _nif_error(code)
        org = self.orgs[club]
        branch_ids = {int(b.get("branchId")) for g in org["groups"] for b in g.get("branches") or []}
        allidrett = {int(g["groupId"]) for g in org["groups"] if not g.get("branches") and not g.get("sportId")}
        violations = rules.validate_membership(
            req, today=self.today(), branch_ids=branch_ids, allidrett_group_ids=allidrett
        )
        if violations:
            primary = rules.primary_code(violations)
            assert primary is not None  # None only for an empty list
            return 400, _nif_error(primary, [v for v in violations if v.code == primary])
        with self._lock:
            return self._accept(club, req)

    def _find_or_new_person(self, req: MembershipRequest) -> tuple[_Person, bool] | None:
        p = _validated(req.person)
        if p.personId is not None:
            person = self.persons.get(p.personId)
            return (person, False) if person else None
        # Without personId, rule 1001 has required all of these.
        first_name, last_name = _validated(p.firstName), _validated(p.lastName)
        birth_date = _validated(p.birthDate).isoformat()
        gender_id, post_code = _validated(p.genderId), _validated(p.postCode)
        nationality_id = _validated(p.nationalityId)
        key = (first_name.lower(), last_name.lower(), birth_date, gender_id, post_code, nationality_id)
        for person in self.persons.values():
            if person.search_key() == key:
                return person, False
        person = _Person(
            next(self._ids),
            first_name,
            last_name,
            birth_date,
            gender_id,
            post_code,
            nationality_id,
            p.email,
            p.mobilePhone,
            validated=False,
        )
        return person, True

    def _accept(self, club: int, req: MembershipRequest) -> tuple[int, Any]:
        found = self._find_or_new_person(req)
        if found is None:
            return 400, _nif_error(1002)
        person, new = found
        club_level = rules.is_club_level(req)
        kind = "new" if new else ("validated" if person.validated else "unvalidated")
        existing_membership = None if new else self.club_memberships.get((club, person.personId))
        case, link, otp = matrix_case(
            club_level=club_level,
            branches=bool(req.sports or req.groups),
            person=kind,
            norwegian=person.nationalityId == NORWAY_COUNTRY_ID,
            has_club_membership=existing_membership is not None,
        )
        org = self.orgs[club]
        start = (req.startDate or self.today()).isoformat()
        items: list[dict[str, Any]] = [
            {
                "branchId": s.branchId,
                "sportId": s.sportId,
                "startDate": _validated(s.startDate).isoformat(),  # rule 1036
                "endDate": s.endDate.isoformat() if s.endDate else None,
            }
            for s in req.sports
        ]
        groups: list[dict[str, Any]] = [
            {
                "groupId": g.groupId,
                "sportId": g.sportId,
                "startDate": _validated(g.startDate).isoformat(),  # rule 1036
                "endDate": g.endDate.isoformat() if g.endDate else None,
            }
            for g in req.groups
        ]
        base = {"personId": person.personId, "clubId": club, "clubName": org["clubName"], "startDate": start}
        if existing_membership is not None:
            # Existing club membership: NIF answers with the existing ids, branches are added now.
            trace_id = None
            sports = [self._add_active(club, person, it, trace_id) for it in items]
            groups_out = [self._add_active(club, person, it, trace_id, group=True) for it in groups]
            return 200, {
                **base,
                "membershipId": existing_membership,
                "traceId": trace_id,
                "sports": sports,
                "groups": groups_out,
                "person": None,
                "sentToEmail": None,
                "sentToPhone": None,
                "responseMessage": "Membership already exists at Club Level.",
            }
        if not club_level:
            return 400, _nif_error(3001)  # matrix cases 13-16: no branch without a club membership
        if new:
            self.persons[person.personId] = person
        trace_id = None if kind == "validated" else str(uuid.uuid4()).upper()
        ver_id = trace_id or f"V-{uuid.uuid4()}"
        self.verifications[ver_id] = _Verification(
            ver_id, trace_id, club, case, link, otp, person, new, start, items, groups, self._clock()
        )
        names = {int(b["branchId"]): b.get("branchName") for g in org["groups"] for b in g.get("branches") or []}
        return 200, {
            **base,
            "membershipId": 0,
            "traceId": trace_id,
            "sports": [
                {
                    "branchId": it["branchId"],
                    "sportId": it["sportId"],
                    "branchName": names.get(it["branchId"]),
                    "activeMembershipId": 0,
                }
                for it in items
            ],
            "groups": [{"groupId": g["groupId"], "sportId": g["sportId"], "activeMembershipId": 0} for g in groups],
            "person": None,
            # Since March 2023 the verification goes to an existing person's own contacts; a new
            # person's contacts are the request's (copied into ``person`` by _find_or_new_person).
            "sentToEmail": person.email,
            "sentToPhone": person.mobilePhone,
            "responseMessage": PENDING_MESSAGE,
        }

    def _add_active(
        self, club: int, person: _Person, item: dict[str, Any], trace_id: str | None, group: bool = False
    ) -> dict[str, Any]:
        org_id = item["groupId"] if group else item["branchId"]
        key = (club, person.personId, org_id)
        active_id = self.active_memberships.get(key)
        if active_id is None:
            active_id = self.active_memberships[key] = next(self._ids)
            body = {
                "activeMembershipId": active_id,
                "personId": person.personId,
                "orgId": org_id,
                "clubId": club,
                "sportId": item["sportId"],
                "startDate": item["startDate"],
                "endDate": item["endDate"],
                "membershipStatusId": 2,
                "traceId": trace_id,
            }
            self._emit("TpActiveMembership", active_id, 1, body)
        out = {"sportId": item["sportId"], "activeMembershipId": active_id}
        out["groupId" if group else "branchId"] = org_id
        return out

    def _emit(self, entity: str, object_id: int, change_type: int, body: dict[str, Any]) -> None:
        """Append an informational (9, full object) message, then the change itself."""
        for ct in (9, change_type):
            self.outbox.append(
                {
                    "messageId": str(uuid.uuid4()),
                    "sequenceNumber": next(self._seq),
                    "enqueuedTimeUtc": datetime.now(UTC).isoformat(),
                    "applicationProperties": {"ObjectId": object_id, "EntityName": entity, "ChangeType": ct},
                    "body": dict(body),
                }
            )

    def complete(self, ver_id: str) -> tuple[int, Any]:
        """The person completes two-phase verification (link, and OTP when required)."""
        with self._lock:
            ver = self.verifications.get(ver_id) or self.verifications.get(ver_id.upper())
            if ver is None:
                return 404, {"message": "no such verification"}
            if ver.status == "completed":
                return 200, ver.result
            if self._clock() - ver.createdAt > VERIFICATION_WINDOW:
                ver.status = "expired"
                return 410, {"message": "verification window (24 h) has passed"}
            person, trace_id = ver.person, ver.traceId
            if ver.new_person or not person.validated:
                person.validated = True
                self._emit("TpPerson", person.personId, 1 if ver.new_person else 2, person.body(trace_id))
            key = (ver.clubId, person.personId)
            membership_id = self.club_memberships.get(key)
            if membership_id is None:
                membership_id = self.club_memberships[key] = next(self._ids)
                self._emit(
                    "TpMembership",
                    membership_id,
                    1,
                    {
                        "membershipId": membership_id,
                        "personId": person.personId,
                        "orgId": ver.clubId,
                        "startDate": ver.startDate,
                        "endDate": None,
                        "membershipStatusId": 2,
                        "traceId": trace_id,
                    },
                )
            sports = [self._add_active(ver.clubId, person, it, trace_id) for it in ver.branches]
            groups = [self._add_active(ver.clubId, person, it, trace_id, group=True) for it in ver.groups]
            ver.status = "completed"
            ver.result = {
                "traceId": trace_id,
                "personId": person.personId,
                "membershipId": membership_id,
                "sports": sports,
                "groups": groups,
            }
            return 200, ver.result

    def _sandbox_route(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][1:]
        if method == "GET" and parts == ["outbox"]:
            try:
                after = int(query.get("after", "0") or 0)
            except ValueError:
                return 400, {"message": "after must be an integer"}
            with self._lock:
                return 200, [m for m in self.outbox if m["sequenceNumber"] > after]
        if method == "GET" and parts == ["verifications"]:
            with self._lock:
                return 200, [v.public() for v in self.verifications.values()]
        if method == "POST" and len(parts) == 3 and parts[0] == "verifications" and parts[2] == "complete":
            return self.complete(parts[1])
        if method == "GET" and parts == ["stats"]:
            with self._lock:
                return 200, {
                    "tokenFetches": {str(k): v for k, v in self.token_fetches.items()},
                    "calls": dict(self.calls),
                }
        return 404, {"message": "unknown sandbox route"}


def _validated[T](value: T | None) -> T:
    """A request field that :func:`rules.validate_membership` has already required.

    Only called after validation passed, so ``None`` here is a sandbox bug (answered as NIF's 500).
    """
    assert value is not None, "validated membership request lacks a required field"
    return value


def _nif_error(code: int, violations: Iterable[rules.Violation] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": rules.NIF_MESSAGES.get(code, "Error")}
    errs = [{"path": v.path, "code": v.code, "message": v.message} for v in violations]
    if errs:
        out["errors"] = errs
    return out


def _make_handler(sandbox: NifSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: avoid delayed-ACK stalls

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = sandbox._take_fault(self.command, split.path)
            if fault is not None and fault.after:
                self._serve_then(fault, split, body)
                return
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is not None:
                    self._send(fault.status, {"statusCode": fault.status, "message": "injected fault"})
                    return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, payload = sandbox.handle(self.command, split.path, dict(parse_qsl(split.query)), headers, body)
            except Exception as exc:  # noqa: BLE001 - a sandbox bug must show up as NIF's 500
                status, payload = 500, {"statusCode": 500, "message": f"sandbox error: {type(exc).__name__}"}
            self._send(status, payload)

        def _serve_then(self, fault: _Fault, split: Any, body: bytes) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = sandbox.handle(self.command, split.path, dict(parse_qsl(split.query)), headers, body)
            time.sleep(fault.delay)
            if fault.status is not None:
                status, payload = fault.status, {"statusCode": fault.status, "message": "injected fault"}
            self._send(status, payload)

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: paths only, never headers
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local NIF sandbox (see module docstring).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7072)
    parser.add_argument("--subscription-key", default=DEFAULT_SUBSCRIPTION_KEY)
    parser.add_argument("--club", type=int, action="append", default=[], help="extra known club id")
    args = parser.parse_args(argv)
    sandbox = NifSandbox(subscription_key=args.subscription_key, clubs=args.club, host=args.host, port=args.port)
    sandbox.start()
    print(
        f"NIF sandbox on {sandbox.base_url}  (NIF_API_BASE_URL={sandbox.base_url}, "
        f"NIF_SUBSCRIPTION_KEY=<--subscription-key>)  clubs: {sorted(sandbox.orgs)}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
