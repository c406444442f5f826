"""Personnummer: accepted forms, normalisation, century rules, refusals (never echoing the number)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.idrott.personnummer import (
    InvalidPersonnummer,
    birth_date_from_personnummer,
    gender_from_personnummer,
    is_samordningsnummer,
    normalize_personnummer,
)

TODAY = date(2024, 5, 20)


def luhn(nine: str) -> str:
    """Independent Luhn (not the module's) for building test numbers."""
    s = 0
    for i, c in enumerate(nine):
        d = int(c) * (2 - i % 2)
        s += d // 10 + d % 10
    return str((10 - s % 10) % 10)


def pnr(yyyymmdd: str, nnn: str) -> str:
    return f"{yyyymmdd}-{nnn}{luhn(yyyymmdd[2:] + nnn)}"


def test_skatteverket_test_number_tolvan():
    # Skatteverket's well-known test person "Tolvan Tolvansson"
    assert normalize_personnummer("191212121212") == "19121212-1212"
    assert normalize_personnummer("19121212-1212") == "19121212-1212"
    assert gender_from_personnummer("19121212-1212") == "male"


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("200801012386", "20080101-2386"),
        ("20080101-2386", "20080101-2386"),
        ("080101-2386", "20080101-2386"),  # most recent century not in the future
        ("250101-2386".replace("25", "99", 1), None),  # placeholder replaced below
    ],
)
def test_forms_normalise(raw, expected):
    if expected is None:
        raw = "990101-" + "238" + luhn("990101238")
        expected = "19990101-238" + luhn("990101238")
    assert normalize_personnummer(raw, today=TODAY) == expected


def test_century_minus_picks_most_recent_past():
    n = "240520-123" + luhn("240520123")  # born "today" → 2024
    assert normalize_personnummer(n, today=TODAY).startswith("20240520")
    n = "240521-123" + luhn("240521123")  # tomorrow in 2024 would be future → 1924
    assert normalize_personnummer(n, today=TODAY).startswith("19240521")


def test_century_plus_means_100_or_older():
    n = "240520+123" + luhn("240520123")
    assert normalize_personnummer(n, today=TODAY).startswith("19240520")  # exactly 100
    n = "240521+123" + luhn("240521123")
    assert normalize_personnummer(n, today=TODAY).startswith("18240521")  # would be 99 → 1824
    n = "100101+123" + luhn("100101123")
    assert normalize_personnummer(n, today=TODAY).startswith("19100101")


@pytest.mark.parametrize("variant", [" {}", "{} ", "{}\t", "{}\n", "{}\u00a0", "{:.8}- {:.0}"])
def test_whitespace_anywhere_refused_not_stripped(variant):
    good = pnr("20080101", "238")
    raw = variant.format(good, good) if "{:.8}" not in variant else good[:8] + " " + good[8:]
    with pytest.raises(InvalidPersonnummer) as exc:
        normalize_personnummer(raw, today=TODAY)
    assert "whitespace" in str(exc.value)
    assert "corrupts" in str(exc.value)
    assert good not in str(exc.value) and good.replace("-", "") not in str(exc.value)


@pytest.mark.parametrize(
    "raw,needle",
    [
        ("0801012386", "needs '-'"),  # 10 digits without separator: century ambiguous
        ("2008-01-01-2386", "must be"),
        ("20080101+2386", "must be"),  # '+' only with 10 digits
        ("abc", "must be"),
        ("", "must be"),
        ("2008010123865", "must be"),
        ("２００８０１０１２３８４", "must be"),  # full-width digits
    ],
)
def test_malformed(raw, needle):
    with pytest.raises(InvalidPersonnummer) as exc:
        normalize_personnummer(raw, today=TODAY)
    assert needle in str(exc.value)


def test_not_a_string():
    with pytest.raises(InvalidPersonnummer):
        normalize_personnummer(200801012386)  # type: ignore[arg-type]


@pytest.mark.parametrize("ymd", ["20080230", "20070229", "20081301", "20080001", "20080132"])
def test_date_must_be_real(ymd):
    with pytest.raises(InvalidPersonnummer, match="real calendar date"):
        normalize_personnummer(pnr(ymd, "238"), today=TODAY)


def test_leap_day_is_a_real_date():
    assert normalize_personnummer(pnr("20080229", "238")) == pnr("20080229", "238")


@pytest.mark.parametrize("ymd", ["17991231", "21010101"])
def test_birth_year_range(ymd):
    with pytest.raises(InvalidPersonnummer, match="1800–2100"):
        normalize_personnummer(pnr(ymd, "238"), today=TODAY)


def test_luhn_refused():
    good = pnr("20080101", "238")
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(InvalidPersonnummer, match="Luhn") as exc:
        normalize_personnummer(bad, today=TODAY)
    assert bad not in str(exc.value)


def test_gender_digit():
    assert gender_from_personnummer(pnr("20080101", "231")) == "male"  # 9th digit 1
    assert gender_from_personnummer(pnr("20080101", "248")) == "female"  # 9th digit 8
    assert gender_from_personnummer("080101-" + "231" + luhn("080101231")) == "male"


def test_samordningsnummer_accepted_and_kept():
    s = pnr("20080161", "238")  # day 01 + 60
    assert normalize_personnummer(s, today=TODAY) == s
    assert is_samordningsnummer(s)
    assert birth_date_from_personnummer(s) == date(2008, 1, 1)
    with pytest.raises(InvalidPersonnummer, match="samordningsnummer"):
        normalize_personnummer(s, today=TODAY, allow_samordningsnummer=False)
    with pytest.raises(InvalidPersonnummer, match="real calendar date"):
        normalize_personnummer(pnr("20080292", "238"), today=TODAY)  # 31 Feb + 60 is not real


def test_is_value_error():
    assert issubclass(InvalidPersonnummer, ValueError)


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 5, 20)),
    st.integers(min_value=0, max_value=999),
)
def test_roundtrip_every_form(d, n):
    nnn = f"{n:03d}"
    full = pnr(d.strftime("%Y%m%d"), nnn)
    for raw in (full, full.replace("-", "")):
        assert normalize_personnummer(raw, today=TODAY) == full
    age = TODAY.year - d.year - ((TODAY.month, TODAY.day) < (d.month, d.day))
    short = full[2:8] + ("+" if age >= 100 else "-") + full[9:]
    assert normalize_personnummer(short, today=TODAY) == full
    assert gender_from_personnummer(full) == ("male" if int(nnn[2]) % 2 else "female")
