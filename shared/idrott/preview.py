"""What the next run would send, read-only: its files (the XML), the records it would skip, and an
advisory LOK-stöd prognosis per activity (``GET …/export/preview``). Nothing is uploaded or recorded.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from shared.idrott.clock import Clock, local_date, utc_now
from shared.idrott.files import build_files
from shared.idrott.ledger import MAX_SKIPPED_LISTED, skipped_view
from shared.idrott.state import full_load_done

if TYPE_CHECKING:
    from shared.clubs import Club
    from shared.idrott.selection import ClubSelection

__all__ = ["PREVIEW_MAX_XML_CHARS", "lok_prognosis", "preview"]

#: XML shown in one preview, over all files (a file beyond it is listed with ``truncated: true``).
PREVIEW_MAX_XML_CHARS = 2_000_000


def preview(club: Club, *, now: Clock = utc_now) -> dict:
    """What the next run would send: the XML (read-only; nothing is uploaded or recorded), the
    records it would skip, and a LOK-stöd prognosis per activity it would send, marked advisory."""
    from shared.idrott.selection import leave_out
    from shared.idrott.store import ClubRecords

    at = now()
    today = local_date(at)
    full = not full_load_done(club.club_id)
    records = ClubRecords(club.club_id, now=now)
    sel = records.select(full_load=full, today=today)
    files: list[dict] = []
    skipped: list[dict] = []
    budget = PREVIEW_MAX_XML_CHARS
    if not sel.empty:
        with tempfile.TemporaryDirectory(prefix="idrott-preview-") as tmp:
            directory = Path(tmp)
            built = build_files(
                club,
                sel,
                directory,
                batch_id="preview-" + uuid.uuid4().hex[:8],
                created_at=at.replace(microsecond=0),
            )
            skipped = built.skipped
            leave_out(sel, skipped)
            for info in built.files:
                entry = {
                    "name": info.name,
                    "size": info.size,
                    "sha256": info.sha256,
                    "persons": info.persons,
                    "activities": info.activities,
                    "deletes": info.deletes,
                    "xml": None,
                    "truncated": True,
                }
                if info.size <= budget:
                    entry["xml"] = (directory / info.name).read_text(encoding="utf-8")
                    entry["truncated"] = False
                    budget -= info.size
                files.append(entry)
    return {
        "clubId": club.club_id,
        "fullLoad": full,
        "persons": len(sel.persons),
        "referencedPersons": len(sel.referenced_persons),
        "activities": len(sel.activities),
        "deletes": len(sel.deletes),
        "files": files,
        "skipped": [skipped_view(s) for s in skipped[:MAX_SKIPPED_LISTED]],
        "skippedCount": len(skipped),
        "lokPrognosis": lok_prognosis(sel, today=today),
    }


def lok_prognosis(sel: ClubSelection, *, today: date) -> dict:
    """Advisory LOK-stöd prognosis per selected activity (the core's rules, ``shared.idrott.lok``).

    Only the activities of this run are considered together (day and week caps do not see
    activities sent earlier)."""
    from shared.idrott import lok

    persons = {p.external_id: p.record() for p in sel.all_persons()}
    return {
        "advisory": True,
        "note": "Prognosis only: IdrottOnline alone decides LOK-stöd (rules since 1 July 2023). "
        "Day and week caps consider only the activities of this run.",
        "rules": dict(lok.RULES),
        "activities": lok.prognose([a.record() for a in sel.activities], persons),
    }
