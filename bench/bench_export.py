"""Export benchmark: ``python -m bench.bench_export``.

1. Throughput: 100 000 persons and 100 000 activities (in memory) → XML files with
   ``write_run`` (10 MB split, self-contained files) vs a bare lxml ``xmlfile`` loop writing the
   same elements into one file, same process, same run. Target: ratio ≥ 0.5.
2. Memory: peak RSS (``ru_maxrss``) of ``write_run`` at 10 000 vs 100 000 persons (activities
   = persons), each in a fresh subprocess, records generated lazily so the writer's own memory is
   measured. Target: ratio ≤ 1.3.

Activities are per team (20 persons per team, 4 participants + 1 leader each), as in a club.
"""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

from shared.idrott.xmlrecords import (
    ActivityRecord,
    ContactRecord,
    ParticipantRecord,
    PersonRecord,
    RunHeader,
    SportRecord,
)
from shared.idrott.xmlrecords import activity_element as _activity_element
from shared.idrott.xmlrecords import person_element as _person_element
from shared.idrott.xmlwriter import write_run

T0 = datetime(2024, 3, 4, 16, tzinfo=UTC)
HEADER = RunHeader(
    "idrettsbro",
    "5a0b7e2c-1234-4abc-8def-0123456789ab",
    "802000-0009",
    "12345",
    "club-1",
    "bench-batch",
    datetime(2024, 3, 5, 2, tzinfo=UTC),
    export_contacts=True,
)
MAX_BYTES = 10_000_000
TEAM = 20


def make_person(i: int) -> PersonRecord:
    return PersonRecord(
        external_id=f"person-{i:07d}",
        first_name="Anna-Karin",
        last_name=f"Söderström{i}",
        gender="female",
        birth_date=date(2008 + i % 10, 1 + i % 12, 1 + i % 28),
        sports=(SportRecord(10 + i % 3, i % 17 != 0),),
        personnummer=None,
        nationality="NO",
        member_since=date(2020, 1, 1),
        contact=ContactRecord(email=f"p{i}@example.se", mobile_phone="+46701234567", city="Umeå"),
        changed_at=T0,
    )


def make_activity(i: int, n_persons: int) -> ActivityRecord:
    team = (i % (n_persons // TEAM)) * TEAM
    pids = [f"person-{team + (i + k) % TEAM:07d}" for k in range(5)]
    start = T0 + timedelta(days=i % 180, hours=i % 5)
    return ActivityRecord(
        activity_id=f"act-{i:07d}",
        type_id=1,
        name="Träning P12",
        start_time=start,
        end_time=start + timedelta(minutes=90),
        sport_id=10,
        venue_name="Sporthallen",
        participants=tuple(ParticipantRecord(p, leader=(k == 0)) for k, p in enumerate(pids)),
    )


class Lookup:
    """Synthesises a person from its id (no dict: the RSS run measures the writer only)."""

    def __call__(self, pid: str) -> PersonRecord:
        return make_person(int(pid.rsplit("-", 1)[1]))


def ordered_activities(n: int):
    # grouped by team, like a club's calendar exported per team
    per_team = max(1, n // (n // TEAM))
    for t in range(n // TEAM):
        for k in range(per_team):
            i = t + k * (n // TEAM)
            if i < n:
                yield make_activity(i, n)


def bare_baseline(persons, activities, path: str) -> float:
    """Same elements, one file, no splitting, no self-containment: xmlfile + xf.write(element)."""
    from lxml import etree

    t = time.perf_counter()
    with open(path, "wb") as f, etree.xmlfile(f, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element("Import", Version="1"):
            with xf.element("Persons"):
                for p in persons:
                    xf.write(_person_element(p, HEADER, etree))
            with xf.element("Activities"):
                for a in activities:
                    xf.write(_activity_element(a, HEADER, etree))
    return time.perf_counter() - t


def bare_baseline_nested(persons, path: str) -> float:
    """Bare persons loop with nested ``xf.element`` contexts (no element trees)."""
    from lxml import etree

    t = time.perf_counter()
    with (
        open(path, "wb") as f,
        etree.xmlfile(f, encoding="utf-8") as xf,
        xf.element("Import", Version="1"),
        xf.element("Persons"),
    ):
        for p in persons:
            with xf.element("Person"):
                for tag, v in (
                    ("ExternalIdentification", p.external_id),
                    ("OptionType", "Update"),
                    ("ChangeDate", "2024-03-04T16:00:00"),
                    ("BirthDate", p.birth_date.isoformat()),
                    ("FirstName", p.first_name),
                    ("LastName", p.last_name),
                    ("Gender", p.gender),
                    ("Nationality", p.nationality),
                ):
                    with xf.element(tag):
                        xf.write(v)
                with xf.element("Contact"):
                    for tag, v in (
                        ("Email", p.contact.email),
                        ("MobilePhone", p.contact.mobile_phone),
                        ("City", p.contact.city),
                    ):
                        with xf.element(tag):
                            xf.write(v)
                with xf.element("Organisations"), xf.element("Organisation"):
                    for tag, v in (
                        ("OptionType", "Update"),
                        ("ExternalOrganisationIdentification", "club-1"),
                        ("OrganisationIdentityNumber", "802000-0009"),
                        ("MemberSince", "2020-01-01"),
                    ):
                        with xf.element(tag):
                            xf.write(v)
                    with xf.element("Sports"):
                        for s in p.sports:
                            with xf.element("Sport"):
                                for tag, v in (
                                    ("OptionType", "Update"),
                                    ("SportID", str(s.sport_id)),
                                    ("IsActive", "true" if s.is_active else "false"),
                                ):
                                    with xf.element(tag):
                                        xf.write(v)
    return time.perf_counter() - t


def throughput(n: int = 100_000) -> None:
    persons = [make_person(i) for i in range(n)]
    lookup = {p.external_id: p for p in persons}
    activities = list(ordered_activities(n))
    with tempfile.TemporaryDirectory() as d:
        # warm up both paths once on a small slice
        bare_baseline(persons[:1000], activities[:1000], os.path.join(d, "warm.xml"))
        best_bare = min(bare_baseline(persons, activities, os.path.join(d, "bare.xml")) for _ in range(2))
        bare_size = os.path.getsize(os.path.join(d, "bare.xml"))
        nested = bare_baseline_nested(persons, os.path.join(d, "nested.xml"))
        best_ours = math.inf
        for r in range(2):

            def open_file(seq: int, r=r):
                return open(os.path.join(d, f"ours-{r}-{seq}.xml"), "wb")

            t = time.perf_counter()
            infos = write_run(
                HEADER,
                persons,
                activities,
                max_file_bytes=MAX_BYTES,
                open_file=open_file,
                person_lookup=lookup,
                temp_dir=d,
            )
            el = time.perf_counter() - t
            best_ours = min(best_ours, el)
            for f in os.listdir(d):
                if f.startswith(f"ours-{r}-"):
                    os.remove(os.path.join(d, f))
    person_elems = sum(i.persons for i in infos)
    print(f"throughput: {n} persons + {len(activities)} activities")
    print(
        f"  bare xmlfile loop (one file)   : {bare_size / 1e6:7.1f} MB in {best_bare:6.2f} s"
        f" = {n / best_bare:9.0f} persons/s (persons+activities pass)"
    )
    print(
        f"  write_run (10 MB split)        : {sum(i.size for i in infos) / 1e6:7.1f} MB in {best_ours:6.2f} s"
        f" = {n / best_ours:9.0f} persons/s; {len(infos)} files, {person_elems} Person elements"
        f" ({person_elems - n} repeated for self-contained files)"
    )
    print(f"  ratio write_run / bare         : {best_bare / best_ours:.2f}  (target >= 0.5)")
    print(f"  (info) bare nested xf.element persons-only loop: {n / nested:9.0f} persons/s")


def rss_child(n: int) -> None:
    lookup = Lookup()
    with tempfile.TemporaryDirectory() as d:
        infos = write_run(
            HEADER,
            (make_person(i) for i in range(n)),
            ordered_activities(n),
            max_file_bytes=MAX_BYTES,
            open_file=lambda s: open(os.path.join(d, f"{s}.xml"), "wb"),  # noqa: SIM115 - write_run closes it
            person_lookup=lookup,
            temp_dir=d,
        )
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(infos), sum(i.size for i in infos))


def rss(n: int) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_export", "--rss-child", str(n)], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-child":
        rss_child(int(sys.argv[2]))
        return
    # RSS first: on Linux a child inherits its parent's RSS high-water mark across fork/exec,
    # so the children must be started while this process is still small.
    small, s_files, s_bytes = rss(10_000)
    large, l_files, l_bytes = rss(100_000)
    throughput()
    print("peak RSS (fresh subprocess, ru_maxrss):")
    print(f"  10 000 persons + 10 000 activities  : {small / 1024:6.1f} MiB ({s_files} files, {s_bytes / 1e6:.1f} MB)")
    print(f"  100 000 persons + 100 000 activities: {large / 1024:6.1f} MiB ({l_files} files, {l_bytes / 1e6:.1f} MB)")
    print(f"  ratio                               : {large / small:.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
