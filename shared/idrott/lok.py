"""LOK-stöd prognosis per activity. ADVISORY ONLY: IdrottOnline alone decides; RF says
calculations elsewhere are not valid but may give a prognosis.

Rules (since 1 July 2023 unless noted), with stable ids:

activity level (any failure → ``eligible: False``)
- ``meeting_type``: TypeId 3 Möte, 7 Årsmöte, 8 Styrelsemöte, 9 Kommittémöte are not sport
  activities (**inferred**, not confirmed by RF);
- ``duration``: at least 45 minutes (60 for activities starting before 1 July 2023);
- ``venue``: a venue is required;
- ``min_participants``: at least 3 counted participants;
- ``leader_age``: at least one leader aged 13 or older (by calendar year);
- ``leader_ratio``: at most 20 counted participants per such leader.

participant level (the participant is not counted; listed in ``excludedParticipants``)
- ``unknown_person``: the participant is not a known person;
- ``participant_age``: age 7–25 in the calendar year of the activity (no upper limit with
  ``Disabled``);
- ``membership``: a member with the activity's sport ``IsActive=true``;
- ``one_per_sport_and_day``: a participant counts in one activity per sport and (Swedish) day;
- ``weekly_cap``: ages 7–9 at most 3 counted activities per ISO week, 10 and older at most 5.

Interpretations (documented, unconfirmed): leaders are not counted as participants (pass
``count_leaders=True`` to count those aged 7–25); activities are processed in start-time order
and only an eligible activity uses up a participant's day and week; days and weeks are in
Swedish time (``timezone_name``, :data:`shared.idrott.clock.SWEDISH_TIMEZONE` by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from shared.idrott.clock import SWEDISH_TIMEZONE
from shared.idrott.elements import MEETING_TYPES

__all__ = ["RULES", "prognose", "prognosis_for"]

RULES: dict[str, str] = {
    "meeting_type": "meeting types (3, 7, 8, 9) are not sport activities for LOK-stöd (inferred, not confirmed by RF)",
    "duration": "at least 45 minutes (60 before 1 July 2023)",
    "venue": "a venue is required",
    "min_participants": "at least 3 participants aged 7–25 (no upper limit with Disabled)",
    "leader_age": "at least one leader aged 13 or older",
    "leader_ratio": "at most 20 participants per leader",
    "unknown_person": "the participant must be a known person of the club",
    "participant_age": "participants must reach 7–25 during the calendar year (no upper limit with Disabled)",
    "membership": "participants must be members active in the activity's sport",
    "one_per_sport_and_day": "a participant counts in only one activity per sport and day",
    "weekly_cap": "ages 7–9 count in at most 3 activities a week, ages 10–25 in at most 5",
}
INFERRED_RULES = frozenset({"meeting_type"})
RULE_CHANGE = date(2023, 7, 1)
MIN_AGE, MAX_AGE, LEADER_MIN_AGE = 7, 25, 13
MIN_PARTICIPANTS, PER_LEADER = 3, 20


def _tz(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _lookup(persons: Mapping[str, Any] | Callable[[str], Any]) -> Callable[[str], Any]:
    return persons.get if isinstance(persons, Mapping) else persons


def prognose(
    activities: Iterable[Any],
    persons: Mapping[str, Any] | Callable[[str], Any],
    *,
    count_leaders: bool = False,
    timezone_name: str = SWEDISH_TIMEZONE,
) -> list[dict[str, Any]]:
    """Prognosis for each activity (deleted activities are skipped), in input order.

    ``activities``: :class:`~shared.idrott.models.Activity` or ``ActivityRecord``;
    ``persons``: id → Person/PersonRecord (needs ``birth_date`` and ``sports``) or a callable.
    Each result: ``{activityId, eligible, advisory: True, failures: [{rule, message}],
    countedParticipants, excludedParticipants: [{personId, rule, message}]}``.
    """
    tz = _tz(timezone_name)
    lookup = _lookup(persons)
    acts = [a for a in activities if not getattr(a, "deleted", False)]
    order = sorted(range(len(acts)), key=lambda i: (acts[i].start_time, acts[i].activity_id))
    day_used: set[tuple[str, int, date]] = set()
    week_used: dict[tuple[str, int, int], int] = {}
    results: dict[int, dict[str, Any]] = {}

    for i in order:
        a = acts[i]
        start_local: datetime = a.start_time.astimezone(tz)
        day = start_local.date()
        iso = day.isocalendar()
        failures: list[dict[str, str]] = []
        excluded: list[dict[str, str]] = []

        def fail(rule: str, message: str, failures: list[dict[str, str]] = failures) -> None:
            failures.append({"rule": rule, "message": message})

        def exclude(pid: str, rule: str, message: str, excluded: list[dict[str, str]] = excluded) -> None:
            excluded.append({"personId": pid, "rule": rule, "message": message})

        if a.type_id in MEETING_TYPES:
            fail("meeting_type", f"TypeId {a.type_id} is a meeting, not a sport activity (inferred rule)")
        minutes = (a.end_time - a.start_time).total_seconds() / 60
        need = 60 if day < RULE_CHANGE else 45
        if minutes < need:
            fail("duration", f"lasts {minutes:g} minutes; at least {need} needed")
        if not (a.venue_name or "").strip():
            fail("venue", "no venue")

        counted: list[tuple[str, int]] = []  # (person id, age)
        leaders_ok = 0
        for part in a.participants:
            pid = part.person_id
            person = lookup(pid)
            if person is None:
                exclude(pid, "unknown_person", "not a known person of the club")
                continue
            age = day.year - person.birth_date.year
            if part.leader:
                if age >= LEADER_MIN_AGE:
                    leaders_ok += 1
                if not count_leaders:
                    continue
            if age < MIN_AGE or (age > MAX_AGE and not part.disabled):
                if not part.leader:
                    exclude(
                        pid, "participant_age", f"aged {age} in {day.year}; 7–25 counts (no upper limit with Disabled)"
                    )
                continue
            if not any(s.sport_id == a.sport_id and s.is_active for s in person.sports):
                exclude(pid, "membership", f"not an active member in sport {a.sport_id}")
                continue
            if (pid, a.sport_id, day) in day_used:
                exclude(pid, "one_per_sport_and_day", f"already counted in sport {a.sport_id} on {day.isoformat()}")
                continue
            cap = 3 if age <= 9 else 5
            if week_used.get((pid, iso[0], iso[1]), 0) >= cap:
                exclude(
                    pid,
                    "weekly_cap",
                    f"already counted {cap} times in week {iso[0]}-W{iso[1]:02d} (cap {cap} at age {age})",
                )
                continue
            counted.append((pid, age))

        if len(counted) < MIN_PARTICIPANTS:
            fail("min_participants", f"{len(counted)} counted participants; at least {MIN_PARTICIPANTS} needed")
        if leaders_ok == 0:
            fail("leader_age", "no leader aged 13 or older")
        elif len(counted) > PER_LEADER * leaders_ok:
            fail(
                "leader_ratio",
                f"{len(counted)} participants for {leaders_ok} leader(s); at most {PER_LEADER} per leader",
            )

        eligible = not failures
        if eligible:
            for pid, _age in counted:
                day_used.add((pid, a.sport_id, day))
                wk = (pid, iso[0], iso[1])
                week_used[wk] = week_used.get(wk, 0) + 1
        results[i] = {
            "activityId": a.activity_id,
            "eligible": eligible,
            "advisory": True,
            "failures": failures,
            "countedParticipants": len(counted),
            "excludedParticipants": excluded,
        }
    return [results[i] for i in range(len(acts))]


def prognosis_for(activity: Any, persons: Mapping[str, Any] | Callable[[str], Any], **kw: Any) -> dict[str, Any]:
    """Prognosis of one activity on its own (no day/week interaction with others)."""
    return prognose([activity], persons, **kw)[0]
