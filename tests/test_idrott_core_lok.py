"""LOK-stöd prognosis: one test per rule (advisory output, stable rule ids)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared.idrott.lok import RULES, prognose, prognosis_for
from shared.idrott.xmlrecords import ActivityRecord, ParticipantRecord, PersonRecord, SportRecord

T0 = datetime(2024, 3, 4, 16, 0, tzinfo=UTC)  # Monday 17:00 in Stockholm


def person(pid, born=2012, sport=10, active=True):
    return PersonRecord(pid, "A", "B", "male", date(born, 6, 1), (SportRecord(sport, active),), nationality="NO")


PEOPLE = {f"k{i}": person(f"k{i}") for i in range(30)}  # aged 12 in 2024
PEOPLE["leader"] = person("leader", born=1990)
PEOPLE["young-leader"] = person("young-leader", born=2012)


def act(
    aid="a1",
    kids=("k0", "k1", "k2"),
    leaders=("leader",),
    start=T0,
    minutes=60,
    type_id=1,
    venue="Hallen",
    sport=10,
    disabled=(),
):
    parts = [ParticipantRecord(p, leader=True) for p in leaders]
    parts += [ParticipantRecord(p, disabled=p in disabled) for p in kids]
    return ActivityRecord(
        aid, type_id, "Träning", start, start + timedelta(minutes=minutes), sport, venue, tuple(parts)
    )


def rules(result):
    return [f["rule"] for f in result["failures"]]


def excluded(result):
    return {e["personId"]: e["rule"] for e in result["excludedParticipants"]}


def test_eligible_shape():
    r = prognosis_for(act(), PEOPLE)
    assert r == {
        "activityId": "a1",
        "eligible": True,
        "advisory": True,
        "failures": [],
        "countedParticipants": 3,
        "excludedParticipants": [],
    }


def test_min_participants():
    r = prognosis_for(act(kids=("k0", "k1")), PEOPLE)
    assert rules(r) == ["min_participants"] and not r["eligible"]


def test_age_7_to_25_by_calendar_year_and_disabled():
    people = dict(
        PEOPLE,
        old=person("old", born=1998),
        young=person("young", born=2018),
        turns7=person("turns7", born=2017),
        oldd=person("oldd", born=1960),
    )
    # 2024: old=26, young=6, turns7=7 (during the year), oldd=64
    r = prognosis_for(act(kids=("k0", "k1", "old", "young", "turns7", "oldd"), disabled=("oldd",)), people)
    assert excluded(r) == {"old": "participant_age", "young": "participant_age"}
    assert r["countedParticipants"] == 4


def test_leader_age_13():
    r = prognosis_for(act(leaders=("young-leader",)), PEOPLE)  # 12 in 2024
    assert rules(r) == ["leader_age"]
    r = prognosis_for(act(leaders=()), PEOPLE)
    assert rules(r) == ["leader_age"]


def test_leader_ratio_20():
    assert prognosis_for(act(kids=tuple(f"k{i}" for i in range(20))), PEOPLE)["eligible"]
    r = prognosis_for(act(kids=tuple(f"k{i}" for i in range(21))), PEOPLE)
    assert rules(r) == ["leader_ratio"]
    people = dict(PEOPLE, l2=person("l2", born=1980))
    assert prognosis_for(act(kids=tuple(f"k{i}" for i in range(21)), leaders=("leader", "l2")), people)["eligible"]


def test_duration_45_and_60_before_july_2023():
    assert rules(prognosis_for(act(minutes=44), PEOPLE)) == ["duration"]
    assert prognosis_for(act(minutes=45), PEOPLE)["eligible"]
    old = datetime(2023, 6, 30, 16, tzinfo=UTC)
    assert rules(prognosis_for(act(start=old, minutes=59), PEOPLE)) == ["duration"]
    assert prognosis_for(act(start=datetime(2023, 7, 1, 16, tzinfo=UTC), minutes=45), PEOPLE)["eligible"]


def test_one_activity_per_participant_sport_and_day():
    a1 = act("a1")
    a2 = act("a2", start=T0 + timedelta(hours=2))
    a3 = act("a3", start=T0 + timedelta(hours=2), sport=11)
    people = {
        k: (
            PersonRecord(
                v.external_id, "A", "B", "male", v.birth_date, (SportRecord(10), SportRecord(11)), nationality="NO"
            )
        )
        for k, v in PEOPLE.items()
    }
    r1, r2, r3 = prognose([a2, a1, a3], people)  # input order kept, evaluated by start time
    assert r2["eligible"] and r2["activityId"] == "a1"
    assert not r1["eligible"] and rules(r1) == ["min_participants"]
    assert set(excluded(r1).values()) == {"one_per_sport_and_day"}
    assert r3["eligible"]  # another sport the same day counts


def test_weekly_cap_3_for_7_to_9_and_5_for_10_to_25():
    people = dict(PEOPLE, **{f"s{i}": person(f"s{i}", born=2016) for i in range(3)})  # 8 in 2024
    small = [act(f"s{d}", kids=("s0", "s1", "s2"), start=T0 + timedelta(days=d)) for d in range(5)]
    res = prognose(small, people)
    assert [r["eligible"] for r in res] == [True, True, True, False, False]
    assert set(excluded(res[3]).values()) == {"weekly_cap"}
    big = [act(f"b{d}", start=T0 + timedelta(days=d)) for d in range(7)]
    res = prognose(big, PEOPLE)
    assert [r["eligible"] for r in res] == [True] * 5 + [False] * 2
    nextweek = prognose(big + [act("n", start=T0 + timedelta(days=7))], PEOPLE)
    assert nextweek[-1]["eligible"]


def test_membership_active_in_the_sport():
    people = dict(PEOPLE, inactive=person("inactive", active=False), other=person("other", sport=99))
    r = prognosis_for(act(kids=("k0", "k1", "inactive", "other")), people)
    assert excluded(r) == {"inactive": "membership", "other": "membership"}
    assert rules(r) == ["min_participants"]


def test_venue_required():
    assert rules(prognosis_for(act(venue=" "), PEOPLE)) == ["venue"]


def test_meeting_types_inferred():
    for t in (3, 7, 8, 9):
        r = prognosis_for(act(type_id=t), PEOPLE)
        assert rules(r) == ["meeting_type"] and "inferred" in r["failures"][0]["message"]
    for t in (1, 2, 4, 5, 6):
        assert prognosis_for(act(type_id=t), PEOPLE)["eligible"]
    assert "inferred" in RULES["meeting_type"]


def test_unknown_person_and_deletes_skipped():
    r = prognosis_for(act(kids=("k0", "k1", "k2", "ghost")), PEOPLE)
    assert excluded(r) == {"ghost": "unknown_person"} and r["eligible"]
    assert prognose([ActivityRecord.delete("x"), act()], PEOPLE)[0]["activityId"] == "a1"


def test_ineligible_activity_does_not_use_up_the_day():
    bad = act("bad", minutes=30)
    good = act("good", start=T0 + timedelta(hours=2))
    r_bad, r_good = prognose([bad, good], PEOPLE)
    assert not r_bad["eligible"] and r_good["eligible"]
