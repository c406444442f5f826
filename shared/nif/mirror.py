"""Mirror read API over the NIF queue projections.

- ``GET /api/nif/clubs/{clubId}/members``: the club's memberships (link partition
  ``NifLinks/club-<clubId>``) with person, contact and active (branch) memberships; paged with
  an opaque ``continuationToken``; ``status`` filter (comma list of ``active``, ``cancelled``,
  ``ended``, ``merged``, or ``all``; default ``active,cancelled``) and ``branchId`` filter
  (members holding an active membership in that branch). A page may hold fewer than
  ``pageSize`` items (filters apply after the read): continue while a token is returned.
- ``GET /api/nif/persons/{personId}``: the person, contact and memberships. An old PersonId of a
  merged person resolves to the survivor (``requestedPersonId`` keeps the asked id).

Fields NIF marks secret (``isSecretAddress``, ``isSecretEmail``, ``isSecretMobilePhone``,
``isSecretPrivatePhone``, ``isSecretWorkPhone`` → the corresponding values) are omitted unless
the caller used the admin-level twin (``…/full``, master key). The host decides which key was
used only through the route's auth level, hence the twins.
"""

from __future__ import annotations

from typing import Any

from shared.http import ApiRequest
from shared.nif.queue import entities as E
from shared.nif.queue.processor import entity_to_state, is_ended, row_data, row_version
from shared.problems import FieldError, bad_request, not_found

STATUSES = ("active", "cancelled", "ended", "merged")
DEFAULT_STATUSES = ("active", "cancelled")
MAX_PAGE = 500


def _store() -> Any:
    from shared.tables import get_table_store

    return get_table_store()


# --- secret fields --------------------------------------------------------------------------


def redact_secrets(data: dict[str, Any] | None, flags_from: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Copy of ``data`` without values whose isSecret* flag is true in any of ``flags_from``."""
    if data is None:
        return None
    hidden: set[str] = set()
    for flag, names in E.SECRET_FLAGS.items():
        if any(src and E.as_bool(E.field(src, flag)) for src in flags_from):
            hidden.update(n.lower() for n in names)
    return {k: v for k, v in data.items() if k.strip().lower() not in hidden}


# --- reads ------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, store: Any) -> None:
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


def _membership_view(reader: _Reader, entity: str, row: dict[str, Any]) -> dict[str, Any]:
    data = row_data(row)
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
        pdata = redact_secrets(pdata, [pdata, cdata])
        cdata = redact_secrets(cdata, [pdata, cdata])
    actives = []
    for link in links:
        if link.get("Kind") == "a":
            row = reader.row("TpActiveMembership", int(link["ObjectId"]))
            if row is not None and row.get("PersonId") == survivor:
                actives.append(_membership_view(reader, "TpActiveMembership", row))
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
        view = _membership_view(reader, "TpMembership", row)
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
                memberships.append(_membership_view(reader, "TpMembership", row))
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
