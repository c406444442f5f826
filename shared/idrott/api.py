"""HTTP handlers: club registry, IdrottOnline intake, ledger, manual export, preview.

Bulk intake (``PUT .../persons``, ``PUT .../activities``): the body is a JSON array (or an object
``{"persons": [...]}`` / ``{"activities": [...]}``) of at most 1 000 records. Each record is
validated on its own. Valid records are stored; invalid ones are not.

- all valid → ``200 {"stored": n, "results": [{"index", "id", "status": "stored"}]}``;
- some invalid → ``422`` problem (``application/problem+json``) whose ``errors`` list every
  failure with its field path (``[3].personnummer``, ``[0].participants[2].personId``), plus
  ``stored`` and ``rejected`` lists (``{"index", "id"}``) saying which records were stored.
  ``detail`` gives the counts. (A 422 therefore does not mean "nothing happened": read ``stored``.)
- a person whose personnummer another externalId holds in the club (or an earlier record of the
  same request) is refused with error code ``personnummer-conflict`` and listed in ``conflicts``
  (``{"index", "id", "existingExternalId"}``); the answer is ``409`` when every rejected record is
  such a conflict, else ``422``. ``"replacesExternalId": "<old>"`` on the record re-keys instead.
- an activity that might not fit in one import file with its participants is refused at
  ``[i].participants`` (see ``sizes.activity_size_bound``).
- not a list, more than 1 000 records, or an empty list → ``422`` and nothing is stored.

DELETE looks up any non-empty id of up to ``rows.MAX_LOOKUP_ID`` characters exactly, so every
stored record can be removed (also one stored before ids were matched as a whole).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
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
    from shared.idrott.models import is_safe_id

    if isinstance(item, dict):
        v = item.get(field)
        if v is None:
            v = item.get({"externalId": "external_id", "activityId": "activity_id"}[field])
        if is_safe_id(v):
            return v
    return None


def _shown(record_id: str) -> str:
    """An id for a message: as is when valid, else JSON-quoted (a newline stays visible)."""
    from shared.idrott.models import is_safe_id
    from shared.idrott.rows import MAX_LOOKUP_ID

    return record_id if is_safe_id(record_id) else json.dumps(record_id[:MAX_LOOKUP_ID])


#: Code of a bulk error whose record conflicts with a stored one (409 when every rejected record
#: is such a conflict); ``conflicts`` in the problem names the existing externalId.
CONFLICT_CODE = "personnummer-conflict"


def _bulk_answer(
    kind: str,
    id_field: str,
    items: list,
    stored: list[tuple[int, str]],
    errors: list[tuple[int, str, str]],
    conflicts: Sequence[tuple[int, str, str | None]] = (),
) -> Any:
    if not errors:
        return {"stored": len(stored), "results": [{"index": i, "id": rid, "status": "stored"} for i, rid in stored]}
    bad = sorted({i for i, _, _ in errors})
    conflicting = {i for i, _, _ in conflicts}
    field_errors = [
        FieldError(_path(i, loc), msg, CONFLICT_CODE if i in conflicting else None)
        for i, loc, msg in sorted(errors, key=lambda e: e[0])
    ]
    extra: dict[str, Any] = {
        "stored": [{"index": i, "id": rid} for i, rid in stored],
        "rejected": [{"index": i, "id": _raw_id(items[i], id_field)} for i in bad],
    }
    if conflicts:
        extra["conflicts"] = [{"index": i, "id": rid, "existingExternalId": ex} for i, rid, ex in conflicts]
    if conflicting and conflicting == set(bad):
        raise Problem(
            409,
            "Conflict",
            f"{len(bad)} of {len(items)} {kind} conflict with a person already registered in the club (same "
            f"personnummer, see errors) and were not stored; {len(stored)} {kind} were stored.",
            type_slug="idrott-personnummer-conflict",
            errors=field_errors,
            extra=extra,
        )
    detail = (
        f"{len(bad)} of {len(items)} {kind} are invalid and were not stored; {len(stored)} valid {kind} were stored."
    )
    if conflicting:
        detail += f" {len(conflicting)} of them conflict with a registered person (code {CONFLICT_CODE})."
    raise validation_problem(field_errors, detail, slug="idrott-bulk-validation", extra=extra)


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
    from shared.idrott.bulk import validate_bulk
    from shared.idrott.models import Person
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    items = _items(req, "persons")
    valid, errors = validate_bulk(Person, items)
    valid, dup = _duplicates(valid, "external_id", "externalId")
    errors += dup
    conflicts: list[tuple[int, str, str | None]] = []
    if valid:
        # one personnummer, one externalId per club (IdrottOnline matches persons by personnummer)
        refused = ClubRecords(club.club_id).upsert_persons([m for _, m in valid])
        for r in refused:
            i, m = valid[r.position]
            errors.append((i, r.path, r.message))
            if r.status == 409:
                conflicts.append((i, m.external_id, r.existing_id))
        gone = {r.position for r in refused}
        valid = [v for pos, v in enumerate(valid) if pos not in gone]
    log.info("club %s: %d person(s) stored, %d rejected", club.club_id, len(valid), len({i for i, _, _ in errors}))
    return _bulk_answer("persons", "externalId", items, [(i, m.external_id) for i, m in valid], errors, conflicts)


def delete_person(req: ApiRequest) -> Any:
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    # any id that could be stored is looked up exactly (also one stored before ids were matched
    # as a whole, e.g. with a trailing newline), so whatever is stored can be removed
    external_id = req.route_param("externalId")
    outcome = ClubRecords(club.club_id).mark_person_left(external_id)
    if outcome is None:
        raise not_found(f"Person {_shown(external_id)} is not registered for club {club.club_id}.")
    if outcome == "removed":
        return {
            "externalId": external_id,
            "active": False,
            "removed": True,
            "note": "Removed: the record could never be exported (an id left by a re-key, or an id the "
            "import format cannot carry), so IdrottOnline never received it under this id.",
        }
    return {
        "externalId": external_id,
        "active": False,
        "note": "The member left: the next export sends the person with every sport IsActive=false.",
    }


def put_activities(req: ApiRequest) -> Any:
    from shared.idrott.bulk import check_participants_resolve, validate_bulk
    from shared.idrott.models import Activity
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    items = _items(req, "activities")
    valid, errors = validate_bulk(Activity, items)
    valid, dup = _duplicates(valid, "activity_id", "activityId")
    errors += dup
    valid, too_big = _too_large(valid)
    errors += too_big
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


def _too_large(valid: list[tuple[int, Any]]) -> tuple[list[tuple[int, Any]], list[tuple[int, str, str]]]:
    """Activities that might never fit in one import file with their participants (the writer
    sends an activity and its participants as one unit; ``sizes.activity_size_bound``)."""
    from shared.config import get_settings
    from shared.idrott.sizes import activity_size_bound, max_participants_for, max_person_element_bytes

    limit = get_settings().IDROTTONLINE_MAX_FILE_BYTES
    keep, errors = [], []
    for i, a in valid:
        if activity_size_bound(a) <= limit:
            keep.append((i, a))
            continue
        fit = max_participants_for(a, limit)
        message = (
            f"{len(a.participants)} participants may not fit in one import file "
            f"(IDROTTONLINE_MAX_FILE_BYTES={limit}): an activity is sent with all its participants in one "
            f"file, each counted as a person of up to {max_person_element_bytes()} bytes; at most {fit} "
            "fit, so split the activity"
        )
        errors.append((i, "participants", message))
    return keep, errors


def delete_activity(req: ApiRequest) -> Any:
    from shared.idrott.store import ClubRecords

    club = _se_club(req)
    activity_id = req.route_param("activityId")  # looked up exactly, like delete_person
    outcome = ClubRecords(club.club_id).delete_activity(activity_id)
    if outcome is None:
        raise not_found(f"Activity {_shown(activity_id)} is not registered for club {club.club_id}.")
    if outcome == "removed":
        return {
            "activityId": activity_id,
            "deleted": True,
            "removed": True,
            "note": "Removed: the import format cannot carry this id, so IdrottOnline never received it.",
        }
    return {
        "activityId": activity_id,
        "deleted": True,
        "note": "The next export sends OptionType=Delete (if IdrottOnline has received it before).",
    }


# ---- ledger, manual run, preview -------------------------------------------------------------
def _ledger(req: ApiRequest, *, admin: bool) -> Any:
    from shared.idrott.ledger import list_runs

    club = _se_club(req)
    limit = req.int_param("limit", where="query", default=50, minimum=1, maximum=500)
    return {"clubId": club.club_id, "runs": [r.to_json(admin=admin) for r in list_runs(club.club_id, limit)]}


def get_exports(req: ApiRequest) -> Any:
    """The ledger for function-key callers: errors as a code and a plain sentence only."""
    return _ledger(req, admin=False)


def get_exports_full(req: ApiRequest) -> Any:
    """The ledger with ``errorDetail`` (hosts, users, secret names): admin-level route only."""
    return _ledger(req, admin=True)


def post_export(req: ApiRequest) -> Any:
    """Run now (admin-level route): the run with ``errorDetail``; the problem's ``detail`` is the
    plain sentence of its error code."""
    from shared.idrott.error_codes import ERROR_CODES
    from shared.idrott.export import export_club

    club = _se_club(req)
    if not club.enabled:
        raise conflict(f"Club {club.club_id} is disabled; enable it in the registry first.")
    result = export_club(club, trigger="manual")
    if result.status == "skipped":
        raise Problem(
            409,
            "Conflict",
            f"Another export run for club {club.club_id} holds the lock; try later.",
            type_slug="export-locked",
        )
    if result.status == "failed":
        code = result.error_code or "internal-error"
        raise Problem(
            502,
            "Bad Gateway",
            f"The export failed and was recorded in the ledger: {ERROR_CODES[code]}",
            type_slug="export-failed",
            extra={"errorCode": code, "batchId": result.batch_id, "run": result.to_json(admin=True)},
        )
    return result.to_json(admin=True)


def get_preview(req: ApiRequest) -> Any:
    """What the next run would send, and the records it would skip. 409 only when the whole run
    would fail (nothing a single record explains): a code and its sentence, no technical detail."""
    from shared.idrott.error_codes import ERROR_CODES, error_code
    from shared.idrott.preview import preview
    from shared.idrott.xmlwriter import RecordTooLarge, UnresolvedParticipant
    from shared.idrott.xsd import InvalidExportFile

    club = _se_club(req)
    try:
        return preview(club)
    except (InvalidExportFile, RecordTooLarge, UnresolvedParticipant) as exc:
        code = error_code(exc)
        log.warning("club %s: the preview found that the next run would fail (%s): %s", club.club_id, code, exc)
        raise Problem(
            409,
            "Conflict",
            f"The next run would fail: {ERROR_CODES[code]}",
            type_slug="export-would-fail",
            extra={"errorCode": code},
        ) from exc
