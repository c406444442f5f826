"""Mirror read API over the NIF queue projections.

- ``GET /api/nif/clubs/{clubId}/members``: the club's memberships (link partition
  ``NifLinks/club-<clubId>``) with person, contact and active (branch) memberships; paged with
  an opaque ``continuationToken``; ``status`` filter (comma list of ``active``, ``cancelled``,
  ``ended``, ``merged``, or ``all``; default ``active,cancelled``) and ``branchId`` filter
  (members holding an active membership in that branch). A page may hold fewer than
  ``pageSize`` items (filters apply after the read): continue while a token is returned.
- ``GET /api/nif/persons/{personId}``: the person, contact and memberships. An old PersonId of a
  merged person resolves to the survivor (``requestedPersonId`` keeps the asked id).

The function-key views are built from an **allow-list** (:data:`PUBLIC_FIELDS`, per entity):
a field is shown only when its name (case-insensitive, trimmed) is listed for that entity and its
value is a scalar or a list of scalars. Contact values (address, e-mail, phones) are listed but
gated by NIF's secret flags, read tolerantly (any key containing ``secret``/``hidden``/
``confidential``, any spelling or nesting, any value that is not clearly false counts as set).
Everything else, unknown and nested fields included, is shown only by the admin-level twins
(``…/full``, master key). The host decides which key was used only through the route's auth
level, hence the twins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.http import ApiRequest
from shared.nif.queue import entities as E
from shared.nif.queue.rows import entity_to_state, is_ended, row_data, row_version
from shared.problems import FieldError, bad_request, not_found

if TYPE_CHECKING:
    from shared.tables_contract import Storage

STATUSES = ("active", "cancelled", "ended", "merged")
DEFAULT_STATUSES = ("active", "cancelled")
MAX_PAGE = 500


def _store() -> Storage:
    from shared.tables import get_table_store

    return get_table_store()


# --- the function-key view: allow-list + secret flags -----------------------------------------

#: Contact values hidden by each secret category (the canonical flag → the values it hides).
SECRET_CATEGORIES: dict[str, tuple[str, ...]] = {
    **E.SECRET_FLAGS,
    "isSecretMobilePhone": (*E.SECRET_FLAGS["isSecretMobilePhone"], "countryCode"),
}
_CONTACT_VALUES = tuple(name for names in SECRET_CATEGORIES.values() for name in names)

_PERSON_FIELDS = (
    *E.PERSON_ID,
    "firstName",
    "lastName",
    "middleName",
    "genderId",
    "birthDate",
    "deathDate",
    "nationalityId",
    "sportNo",
    "publishingConsent",
    "marketingConsent",
    "isPassive",
    "isValidatedBySsn",
    *E.MERGED_PERSONS,
    *E.TRACE_ID,
)
_MEMBERSHIP_FIELDS = (
    "membershipId",
    *E.PERSON_ID,
    *E.CLUB_ID,
    "startDate",
    "endDate",
    *E.STATUS_ID,
    *E.SOFT_DELETE,
    *E.MERGED_MEMBERSHIPS,
    *E.TRACE_ID,
)
_ACTIVE_FIELDS = (
    "activeMembershipId",
    *E.PERSON_ID,
    *E.BRANCH_ID,
    "clubId",
    "sportId",
    "startDate",
    "endDate",
    *E.STATUS_ID,
    *E.SOFT_DELETE,
    *E.MERGED_ACTIVE,
    *E.TRACE_ID,
)
_CONTACT_FIELDS = ("contactId", "contactInformationId", *E.PERSON_ID, *SECRET_CATEGORIES, *_CONTACT_VALUES)

#: Fields a function-key caller may see, per entity (matched case-insensitively after trimming).
PUBLIC_FIELDS: dict[str, frozenset[str]] = {
    entity: frozenset(n.lower() for n in names)
    for entity, names in (
        ("TpPerson", _PERSON_FIELDS),
        ("TpPersonContactInformation", _CONTACT_FIELDS),
        ("TpMembership", _MEMBERSHIP_FIELDS),
        ("TpActiveMembership", _ACTIVE_FIELDS),
    )
}

_FLAG_WORDS = ("secret", "hidden", "hide", "confidential")
_FALSE_TEXT = frozenset({"", "false", "0", "no", "n", "f", "off", "nei", "none", "null"})
_CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "isSecretEmail": ("mail",),
    "isSecretMobilePhone": ("mobile", "cell"),
    "isSecretPrivatePhone": ("private", "home"),
    "isSecretWorkPhone": ("work", "office", "job"),
    "isSecretAddress": ("address", "post", "zip", "city", "street", "country"),
}
_PHONES = ("isSecretMobilePhone", "isSecretPrivatePhone", "isSecretWorkPhone")
_FLAG_SCAN_DEPTH = 6


def _norm(name: Any) -> str:
    """``is_Secret-E.mail`` → ``issecretemail``: lower case, letters and digits only."""
    return "".join(c for c in str(name).lower() if c.isalnum())


_NORM_PUBLIC: dict[str, str] = {_norm(n): n.lower() for names in PUBLIC_FIELDS.values() for n in names}


def flag_is_set(value: Any) -> bool:
    """A secret flag's value, failing closed: only null, false, 0 and texts such as "false",
    "no", "0" count as not set; "Y", "true", 1, "ja", an object… count as set."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return True


def _flag_targets(key: str) -> tuple[set[str], set[str]] | None:
    """For a key that is a secret flag: (hidden categories, hidden field names); else None."""
    norm = _norm(key)
    if not any(w in norm for w in _FLAG_WORDS):
        return None
    hint = norm
    for word in _FLAG_WORDS:
        hint = hint.replace(word, "")
    for prefix in ("is", "has"):
        hint = hint.removeprefix(prefix)
    words_of = hint.replace("mailaddress", "mail")  # "isSecretEmailAddress" is about the e-mail only
    categories = {flag for flag, words in _CATEGORY_WORDS.items() if any(w in words_of for w in words)}
    if "phone" in hint and not categories & set(_PHONES):
        categories.update(_PHONES)
    names = {_NORM_PUBLIC[hint]} if hint in _NORM_PUBLIC else set()
    if not categories and not names:
        categories = set(SECRET_CATEGORIES)  # "isSecret", "secret", "hidden: yes", …: hide every contact value
    return categories, names


def secret_fields(sources: list[dict[str, Any] | None]) -> set[str]:
    """Lower-cased names of the allow-listed fields hidden by any secret flag set in ``sources``
    (flags found at any nesting depth, in any spelling)."""
    hidden: set[str] = set()

    def scan(value: Any, depth: int) -> None:
        if depth > _FLAG_SCAN_DEPTH:
            return
        if isinstance(value, dict):
            for key, inner in value.items():
                targets = _flag_targets(str(key))
                if targets is not None and flag_is_set(inner):
                    categories, names = targets
                    hidden.update(names)
                    for category in categories:
                        hidden.update(n.lower() for n in SECRET_CATEGORIES[category])
                scan(inner, depth + 1)
        elif isinstance(value, list):
            for inner in value:
                scan(inner, depth + 1)

    for source in sources:
        scan(source, 0)
    return hidden


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def public_view(entity: str, data: dict[str, Any] | None, hidden: set[str]) -> dict[str, Any] | None:
    """The function-key view of one entity's data: allow-listed fields with a scalar (or list of
    scalars) value, minus those in ``hidden`` (from :func:`secret_fields`). Canonical secret flags
    are shown as the effective bool (true when any spelling of that flag is set)."""
    if data is None:
        return None
    allowed = PUBLIC_FIELDS.get(entity, frozenset())
    flags = {f.lower(): f for f in SECRET_CATEGORIES}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).strip().lower()
        if name not in allowed or name in hidden:
            continue
        if name in flags:
            out[key] = any(n.lower() in hidden for n in SECRET_CATEGORIES[flags[name]])
            continue
        if _scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value)):
            out[key] = value
    return out


# --- reads ------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, store: Storage) -> None:
        self.store = store
        self._merge: dict[int, int | None] = {}

    def survivor(self, person_id: int) -> int:
        """Follow the person-merge map old → new (cycle-safe)."""
        seen = {person_id}
        current = person_id
        while True:
            if current not in self._merge:
                row = self.store.table(E.MERGE_TABLE).get("person", E.pad(current))
                self._merge[current] = int(row["SurvivorId"]) if row else None
            nxt = self._merge[current]
            if nxt is None or nxt in seen:
                return current
            seen.add(nxt)
            current = nxt

    def row(self, entity: str, object_id: int) -> dict[str, Any] | None:
        pk, rk = E.row_keys(entity, True, object_id)
        return self.store.table(E.PROJECTION_TABLES[entity]).get(pk, rk)

    def person_links(self, person_id: int) -> list[dict[str, Any]]:
        p = E.pad(person_id)
        return list(
            self.store.table(E.LINKS_TABLE).query(
                "RowKey ge @lo and RowKey lt @hi",
                parameters={"lo": p + "-", "hi": p + "."},
                partition_key=f"person-{E.bucket(person_id)}",
            )
        )

    def contact(self, person_id: int, links: list[dict[str, Any]]) -> dict[str, Any] | None:
        best = None
        for link in links:
            if link.get("Kind") != "c":
                continue
            row = self.row("TpPersonContactInformation", int(link["ObjectId"]))
            if row is None or row.get("PersonId") != person_id or row.get("Deleted"):
                continue
            if best is None or row_version(row) > row_version(best):
                best = row
        return best

    def membership_status(self, entity: str, row: dict[str, Any]) -> str:
        state = entity_to_state(row, entity)
        if is_ended(state):
            if state.merged_into:
                return "merged"
            pid = row.get("PersonId")
            if pid and self.survivor(int(pid)) != int(pid):
                return "merged"
            return "ended"
        status_id = E.as_id(E.field(state.data, *E.STATUS_ID))
        return "cancelled" if status_id == 4 else "active"


def _membership_view(reader: _Reader, entity: str, row: dict[str, Any], *, full: bool) -> dict[str, Any]:
    data: dict[str, Any] | None = row_data(row)
    if not full:
        data = public_view(entity, data, secret_fields([data]))
    view = {
        ("membershipId" if entity == "TpMembership" else "activeMembershipId"): row.get("ObjectId"),
        "status": reader.membership_status(entity, row),
        "personId": row.get("PersonId"),
        "data": data,
    }
    if entity == "TpMembership":
        view["clubId"] = row.get("ClubId")
    else:
        view["branchId"] = row.get("BranchId")
    if row.get("Deleted"):
        view["deletedAt"] = row.get("DeletedAt")
        view["deletedByMessageId"] = row.get("DeletedBy")
    if row.get("MergedInto"):
        view["mergedIntoPersonId"] = row.get("MergedInto")
    return view


def _person_view(reader: _Reader, person_id: int, *, full: bool) -> dict[str, Any]:
    survivor = reader.survivor(person_id)
    person = reader.row("TpPerson", survivor)
    links = reader.person_links(survivor)
    contact = reader.contact(survivor, links)
    pdata = row_data(person) if person else None
    cdata = row_data(contact) if contact else None
    if not full:
        hidden = secret_fields([pdata, cdata])
        pdata = public_view("TpPerson", pdata, hidden)
        cdata = public_view("TpPersonContactInformation", cdata, hidden)
    actives = []
    for link in links:
        if link.get("Kind") == "a":
            row = reader.row("TpActiveMembership", int(link["ObjectId"]))
            if row is not None and row.get("PersonId") == survivor:
                actives.append(_membership_view(reader, "TpActiveMembership", row, full=full))
    view = {
        "personId": survivor,
        "person": pdata,
        "contact": cdata,
        "deleted": bool(person.get("Deleted")) if person else False,
        "activeMemberships": actives,
        "_links": links,
        "_found": person is not None,
    }
    if survivor != person_id:
        view["requestedPersonId"] = person_id
    return view


def _statuses(req: ApiRequest) -> set[str]:
    raw = (req.params.get("status") or "").strip().lower()
    if not raw:
        return set(DEFAULT_STATUSES)
    if raw == "all":
        return set(STATUSES)
    wanted = {s.strip() for s in raw.split(",") if s.strip()}
    bad = wanted - set(STATUSES)
    if bad:
        raise bad_request(
            "Unknown status filter.", errors=[FieldError("status", f"one of {', '.join(STATUSES)} or all")]
        )
    return wanted


def _club_members(req: ApiRequest, *, full: bool) -> dict[str, Any]:
    club_id = req.int_param("clubId", minimum=1)
    page_size = req.int_param("pageSize", where="query", default=100, minimum=1, maximum=MAX_PAGE)
    branch_id = req.int_param("branchId", where="query", default=0, minimum=0) or None
    statuses = _statuses(req)
    token = req.params.get("continuationToken") or None
    store = _store()
    reader = _Reader(store)
    try:
        links, next_token = store.table(E.LINKS_TABLE).page(
            partition_key=f"club-{club_id}", page_size=page_size, continuation=token
        )
    except ValueError:
        raise bad_request("Invalid continuation token.", errors=[FieldError("continuationToken", "invalid")]) from None
    items = []
    for link in links:
        row = reader.row("TpMembership", int(link["ObjectId"]))
        if row is None or row.get("ClubId") != club_id:
            continue  # the membership moved club: stale link
        view = _membership_view(reader, "TpMembership", row, full=full)
        if view["status"] not in statuses:
            continue
        pid = row.get("PersonId")
        if pid:
            pview = _person_view(reader, int(pid), full=full)
            pview.pop("_links")
            pview.pop("_found")
            if branch_id and not any(
                a.get("branchId") == branch_id and a["status"] in ("active", "cancelled")
                for a in pview["activeMemberships"]
            ):
                continue
            view["personId"] = pview["personId"]
            if pview.get("requestedPersonId"):
                view["mergedFromPersonId"] = pview["requestedPersonId"]
            view["person"] = pview
        elif branch_id:
            continue
        items.append(view)
    return {"clubId": club_id, "items": items, "continuationToken": next_token}


def _person(req: ApiRequest, *, full: bool) -> dict[str, Any]:
    person_id = req.int_param("personId", minimum=1)
    reader = _Reader(_store())
    view = _person_view(reader, person_id, full=full)
    links = view.pop("_links")
    if not view.pop("_found"):
        raise not_found(f"Person {person_id} is not in the mirror.")
    memberships = []
    for link in links:
        if link.get("Kind") == "m":
            row = reader.row("TpMembership", int(link["ObjectId"]))
            if row is not None and row.get("PersonId") == view["personId"]:
                memberships.append(_membership_view(reader, "TpMembership", row, full=full))
    view["memberships"] = memberships
    return view


def club_members(req: ApiRequest) -> dict[str, Any]:
    return _club_members(req, full=False)


def club_members_full(req: ApiRequest) -> dict[str, Any]:
    return _club_members(req, full=True)


def person(req: ApiRequest) -> dict[str, Any]:
    return _person(req, full=False)


def person_full(req: ApiRequest) -> dict[str, Any]:
    return _person(req, full=True)
