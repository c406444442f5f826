"""Upper bounds of an import file's size per intake record, measured with the real XML writer.

Used at intake (an activity whose participants could never fit in ``IDROTTONLINE_MAX_FILE_BYTES``
is refused there) and by the tests that prove every accepted person fits in the smallest file.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from shared.idrott.models import MAX_PARTICIPANTS, MAX_SPORTS, Activity, Person
from shared.idrott.personnummer import luhn_check_digit

# Sizes are measured with the real XML writer (lxml, imported here lazily), on worst-case values:
# every text at its limit in the character with the longest escaped form ('&' → '&amp;', 5 bytes),
# every id at 64 characters, every optional element present, contacts exported.


def worst_case_person(external_id: str, personnummer: str) -> Person:
    """A person with every field at its longest, in the character with the longest escaped form
    ('&' → '&amp;', 5 bytes), every optional element present and :data:`MAX_SPORTS` sports."""
    amp = "&"
    return Person.model_validate(
        {
            "externalId": external_id,
            "personnummer": personnummer,
            "firstName": amp * 100,
            "lastName": amp * 100,
            "gender": "female",  # longer than "male": the personnummer must be a woman's
            "nationality": "NO",
            "contact": {
                "email": amp * 250 + "@&.&",
                "mobilePhone": "+" + "1" * 20,
                "street": amp * 100,
                "coAddress": amp * 100,
                "postalCode": "1" * 10,
                "city": amp * 100,
                "countryCode": "SE",
            },
            "memberSince": "2020-01-01",
            "sports": [{"sportId": 2_147_483_647 - i, "isActive": False} for i in range(MAX_SPORTS)],
            "createdAt": "2020-01-01T00:00:00+00:00",
            "changedAt": "2020-01-01T00:00:00+00:00",
        }
    )


@functools.cache
def _worst_case() -> tuple[int, int, Any, Any]:
    """``(file overhead, largest Person element, worst-case header, lxml.etree)``."""
    from lxml import etree

    from shared.idrott import elements
    from shared.idrott.xmlrecords import PersonRecord, RunHeader, header_bytes, person_element
    from shared.idrott.xmlwriter import PLACEHOLDER_COUNT

    header = RunHeader(
        application_id="a" * 64,
        organisation_guid="0" * 8 + "-0000-0000-0000-" + "0" * 12,
        organisation_number="000000-0000",
        rf_association_number="0" * 20,
        club_id="c" * 64,
        batch_id="b" * 64,
        created_at=datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC),
        export_contacts=True,
    )
    # what write_run counts for a file: header (placeholder counts), the section tags, the end
    overhead = len(header_bytes(header, PLACEHOLDER_COUNT, PLACEHOLDER_COUNT)) + sum(
        len(t)
        for t in (
            f"<{elements.PERSONS}>",
            f"</{elements.PERSONS}>",
            f"<{elements.ACTIVITIES}>",
            f"</{elements.ACTIVITIES}>",
        )
    )
    overhead += len(f"</{elements.IMPORT}>\n")
    worst = worst_case_person("x" * 64, f"20100315-232{luhn_check_digit('100315232')}")
    person_el = person_element(PersonRecord.from_model(worst), header, etree)
    return overhead, len(etree.tostring(person_el, encoding="UTF-8")), header, etree


def max_person_element_bytes() -> int:
    """Upper bound of one ``Person`` element of any person intake accepts (contacts included)."""
    return _worst_case()[1]


def person_size_bound() -> int:
    """Upper bound of an import file holding one person alone (must fit any allowed file size)."""
    overhead, person, _, _ = _worst_case()
    return overhead + person


def _activity_sizes(activity: Activity) -> tuple[int, int]:
    """``(Activity element bytes, of which its Participant elements)``, measured exactly."""
    from shared.idrott import elements
    from shared.idrott.xmlrecords import ActivityRecord, activity_element

    _, _, header, etree = _worst_case()
    el = activity_element(ActivityRecord.from_model(activity), header, etree)
    parts = sum(
        len(etree.tostring(p, encoding="UTF-8")) for p in el.iterfind(f"{elements.PARTICIPANTS}/{elements.PARTICIPANT}")
    )
    return len(etree.tostring(el, encoding="UTF-8")), parts


def activity_size_bound(activity: Activity) -> int:
    """Upper bound of an import file holding ``activity`` with every participant as a worst-case
    ``Person`` element (what the writer needs for the activity alone in a fresh file).

    The XML writer writes an activity and its participants as one unit into one file, so an
    activity above ``IDROTTONLINE_MAX_FILE_BYTES`` might never be exportable: its participants'
    person records may change after intake, but never beyond the worst case. The activity's own
    element is measured exactly.
    """
    overhead, person, _, _ = _worst_case()
    own, _ = _activity_sizes(activity)
    return overhead + own + len(activity.participants) * person


def max_participants_for(activity: Activity, max_file_bytes: int) -> int:
    """How many participants (with ids like this activity's) fit with it in ``max_file_bytes``."""
    overhead, person, _, _ = _worst_case()
    own, parts = _activity_sizes(activity)
    n = len(activity.participants)
    per_participant = parts / n if n else 0.0
    room = max_file_bytes - overhead - (own - parts)
    return max(0, min(MAX_PARTICIPANTS, int(room // (person + per_participant))))
