"""HTTP handlers: club registry, IdrottOnline intake, ledger, manual export, preview.

Bulk intake (``PUT .../persons``, ``PUT .../activities``): the body is a JSON array (or an object
``{"persons": [...]}`` / ``{"activities": [...]}``) of at most 1 000 records. Each record is
validated on its own. Valid records are stored; invalid ones are not.

- all valid → ``200 {"stored": n, "results": [{"index", "id", "status": "stored"}]}``;
- some invalid → ``422`` problem (``application/problem+json``) whose ``errors`` list every
  failure with its field path (``[3].personnummer``, ``[0].participants[2].personId``), plus
  ``stored`` and ``rejected`` lists (``{"index", "id"}``) saying which records were stored.
  ``detail`` gives the counts. (A 422 therefore does not mean "nothing happened": read ``stored``.)
- not a list, more than 1 000 records, or an empty list → ``422`` and nothing is stored.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.http import ApiRequest, ApiResponse, json_response
from shared.problems import FieldError, Problem, conflict, not_found, validation_problem

log = logging.getLogger(__name__)

MAX_BULK = 1000
_SEG = re.compile(r"^\d+$")


# ---- helpers ---------------------------------------------------------------------------------
def _club_id(req: ApiRequest) -> str:
    from shared.clubs import CLUB_ID_PATTERN

    club_id = req.route_param("clubId")
    if not re.fullmatch(CLUB_ID_PATTERN, club_id):
        raise validation_problem(
            [FieldError("clubId", "must be 1-64 of A-Z a-z 0-9 _ - (starting with a letter or digit)")],
            "Invalid clubId.",
        )
    return club_id


def _se_club(req: ApiRequest):
    from shared.clubs import get_club

    club_id = _club_id(req)
    club = get_club(club_id)
    if club is None:
        raise not_found(f"Club {club_id} is not registered (PUT /api/clubs/{club_id} first).")
    if club.country != "SE":
        raise conflict(f"Club {club_id} is not a Swedish club; IdrottOnline applies to SE clubs only.")
    return club


def _path(index: int, loc: str) -> str:
    out = f"[{index}]"
    for part in [p for p in loc.split(".") if p != ""]:
        out += f"[{part}]" if _SEG.match(part) else f".{part}"
    return out


def _items(req: ApiRequest, key: str) -> list:
    data = req.json_body()
    if isinstance(data, dict) and set(data) == {key}:
        data = data[key]
    if not isinstance(data, list):
        raise validation_problem([FieldError("$", f'expected a JSON array of {key} (or {{"{key}": [...]}})')])
    if not data:
        raise validation_problem([FieldError("$", "at least one record is required")])
    if len(data) > MAX_BULK:
        raise validation_problem(
            [FieldError("$", f"at most {MAX_BULK} records per call; got {len(data)}")],
            "Too many records; nothing was stored.",
        )
    return data


def _raw_id(item: Any, field: str) -> str | None:
    if isinstance(item, dict):
        v = item.get(field)
        if v is None:
            v = item.get({"externalId": "external_id", "activityId": "activity_id"}[field])
        if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", v):
            return v
    return None


def _bulk_answer(
    kind: str, id_field: str, items: list, stored: list[tuple[int, str]], errors: list[tuple[int, str, str]]
) -> Any:
    if not errors:
        return {"stored": len(stored), "results": [{"index": i, "id": rid, "status": "stored"} for i, rid in stored]}
    bad = sorted({i for i, _, _ in errors})
    detail = (
        f"{len(bad)} of {len(items)} {kind} are invalid and were not stored; {len(stored)} valid {kind} were stored."
    )
    raise validation_problem(
        [FieldError(_path(i, loc), msg) for i, loc, msg in sorted(errors, key=lambda e: e[0])],
        detail,
        slug="idrott-bulk-validation",
        extra={
            "stored": [{"index": i, "id": rid} for i, rid in stored],
            "rejected": [{"index": i, "id": _raw_id(items[i], id_field)} for i in bad],
        },
    )


def _duplicates(valid: list[tuple[int, Any]], attr: str, json_name: str) -> tuple[list, list]:
    seen: set[str] = set()
    keep, errors = [], []
    for i, m in valid:
        key = getattr(m, attr)
        if key in seen:
            errors.append((i, json_name, f"{json_name} repeats an earlier record of this request"))
        else:
            seen.add(key)
            keep.append((i, m))
    return keep, errors


# ---- club registry (admin) -------------------------------------------------------------------
def put_club(req: ApiRequest) -> ApiResponse:
    from shared.clubs import ClubIn
    from shared.clubs import put_club as store_club

    club_id = _club_id(req)
    data = req.json_body(ClubIn)
    club, created = store_club(club_id, data)
    return json_response(club, status=201 if created else 200)


def get_club(req: ApiRequest) -> Any:
    from shared.clubs import get_club as load

    club_id = _club_id(req)
    club = load(club_id)
    if club is None:
        raise not_found(f"Club {club_id} is not registered.")
    return club


# ---- intake ----------------------------------------------------------------------------------
def put_persons(req: ApiRequest) -> Any:
    from shared.idrott.models import Person, validate_bulk
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    items = _items(req, "persons")
    valid, errors = validate_bulk(Person, items)
    valid, dup = _duplicates(valid, "external_id", "externalId")
    errors += dup
    if valid:
        ClubRecords(club.club_id).upsert_persons([m for _, m in valid])
    log.info("club %s: %d person(s) stored, %d rejected", club.club_id, len(valid), len({i for i, _, _ in errors}))
    return _bulk_answer("persons", "externalId", items, [(i, m.external_id) for i, m in valid], errors)


def delete_person(req: ApiRequest) -> Any:
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    external_id = req.route_param("externalId")
    if not _raw_id({"externalId": external_id}, "externalId") or not ClubRecords(club.club_id).mark_person_left(
        external_id
    ):
        raise not_found(f"Person {external_id} is not registered for club {club.club_id}.")
    return {
        "externalId": external_id,
        "active": False,
        "note": "The member left: the next export sends the person with every sport IsActive=false.",
    }


def put_activities(req: ApiRequest) -> Any:
    from shared.idrott.models import Activity, check_participants_resolve, validate_bulk
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    items = _items(req, "activities")
    valid, errors = validate_bulk(Activity, items)
    valid, dup = _duplicates(valid, "activity_id", "activityId")
    errors += dup
    records = ClubRecords(club.club_id)
    if valid:
        known = records.known_person_ids({p.person_id for _, a in valid for p in a.participants})
        unresolved = check_participants_resolve([a for _, a in valid], known)
        bad_positions = {pos for pos, _, _ in unresolved}
        errors += [(valid[pos][0], loc, msg) for pos, loc, msg in unresolved]
        valid = [v for pos, v in enumerate(valid) if pos not in bad_positions]
    if valid:
        records.upsert_activities([m for _, m in valid])
    log.info("club %s: %d activit(ies) stored, %d rejected", club.club_id, len(valid), len({i for i, _, _ in errors}))
    return _bulk_answer("activities", "activityId", items, [(i, m.activity_id) for i, m in valid], errors)


def delete_activity(req: ApiRequest) -> Any:
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    activity_id = req.route_param("activityId")
    if not _raw_id({"activityId": activity_id}, "activityId") or not ClubRecords(club.club_id).delete_activity(
        activity_id
    ):
        raise not_found(f"Activity {activity_id} is not registered for club {club.club_id}.")
    return {
        "activityId": activity_id,
        "deleted": True,
        "note": "The next export sends OptionType=Delete (if IdrottOnline has received it before).",
    }


# ---- ledger, manual run, preview -------------------------------------------------------------
def get_exports(req: ApiRequest) -> Any:
    from shared.idrott.export import list_runs

    club = _se_club(req)
    limit = req.int_param("limit", where="query", default=50, minimum=1, maximum=500)
    return {"clubId": club.club_id, "runs": [r.to_json() for r in list_runs(club.club_id, limit)]}


def post_export(req: ApiRequest) -> Any:
    from shared.idrott.export import export_club

    club = _se_club(req)
    if not club.enabled:
        raise conflict(f"Club {club.club_id} is disabled; enable it in the registry first.")
    result = export_club(club, trigger="manual")
    if result.status == "skipped":
        raise Problem(
            409, "Conflict", f"Another export run for club {club.club_id} holds the lock; try later.", "export-locked"
        )
    if result.status == "failed":
        raise Problem(
            502,
            "Bad Gateway",
            f"The export failed and was recorded in the ledger: {result.error}",
            "export-failed",
            extra={"batchId": result.batch_id, "run": result.to_json()},
        )
    return result.to_json()


def get_preview(req: ApiRequest) -> Any:
    from shared.idrott.export import preview
    from shared.idrott.xmlwriter import RecordTooLarge, UnresolvedParticipant
    from shared.idrott.xsd import InvalidExportFile
    from shared.logs import redact

    club = _se_club(req)
    try:
        return preview(club)
    except (InvalidExportFile, RecordTooLarge, UnresolvedParticipant) as exc:
        raise Problem(409, "Conflict", redact(f"The next run would fail: {exc}")[:2000], "export-would-fail")
