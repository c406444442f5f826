"""Swedish personnummer: strict parsing, normalisation to ``YYYYMMDD-XXXX``, Luhn, gender digit.

Accepted input (nothing else, and never any whitespace):

- 12 digits ``YYYYMMDDXXXX`` or ``YYYYMMDD-XXXX``;
- 10 digits with a separator: ``YYMMDD-XXXX`` (the most recent century that does not put the
  birth date in the future) or ``YYMMDD+XXXX`` (the person is 100 or older: the most recent
  century that makes them at least 100 on ``today``).

A 10-digit number without separator is refused: its century is ambiguous. Whitespace anywhere is
refused, not stripped: a trailing space in a personnummer corrupts a whole IdrottOnline batch, so
the source system must be fixed.

Samordningsnummer (coordination number, day of month + 60) are **accepted** by default and kept
as given (the number is the identity; the day is not rewritten); the date check and the derived
birth date use day - 60. Pass ``allow_samordningsnummer=False`` to refuse them.

Checks: a real calendar date, birth year 1800–2100, Luhn check digit over the 10-digit form.
Errors (:class:`InvalidPersonnummer`) never contain the number: it is personal data.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

__all__ = [
    "NORMALIZED_RE",
    "InvalidPersonnummer",
    "birth_date_from_personnummer",
    "gender_from_personnummer",
    "is_samordningsnummer",
    "luhn_check_digit",
    "luhn_valid",
    "normalize_personnummer",
]

MIN_YEAR = 1800
MAX_YEAR = 2100
NORMALIZED_RE = re.compile(r"[0-9]{8}-[0-9]{4}")
_TWELVE_RE = re.compile(r"([0-9]{8})-?([0-9]{4})")
_TEN_RE = re.compile(r"([0-9]{6})([-+])([0-9]{4})")
_WS_RE = re.compile(r"\s")


class InvalidPersonnummer(ValueError):
    """The personnummer is not acceptable. ``reason`` never contains the number itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def luhn_check_digit(nine_digits: str) -> int:
    """Luhn check digit for the first nine digits of the 10-digit form (YYMMDDNNN)."""
    total = 0
    for i, ch in enumerate(nine_digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return (10 - total % 10) % 10


def luhn_valid(ten_digits: str) -> bool:
    """True if the last of ten digits is the Luhn check digit of the first nine (personnummer in
    the 10-digit form, organisationsnummer)."""
    return (
        len(ten_digits) == 10
        and ten_digits.isascii()
        and ten_digits.isdigit()
        and luhn_check_digit(ten_digits[:9]) == int(ten_digits[9])
    )


def _today(today: date | None) -> date:
    """``today``, or today in Sweden (:mod:`shared.idrott.clock`)."""
    if today is not None:
        return today
    from shared.idrott.clock import local_date, utc_now

    return local_date(utc_now())


def _real_date(year: int, month: int, day: int, *, allow_samordningsnummer: bool) -> date:
    if day > 60:
        if not allow_samordningsnummer:
            raise InvalidPersonnummer("personnummer: samordningsnummer (day + 60) is not accepted here")
        day -= 60
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidPersonnummer(f"personnummer: birth year must be {MIN_YEAR}–{MAX_YEAR}")
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidPersonnummer("personnummer: the date part is not a real calendar date") from None


def normalize_personnummer(raw: str, *, today: date | None = None, allow_samordningsnummer: bool = True) -> str:
    """Return ``YYYYMMDD-XXXX`` (13 chars) or raise :class:`InvalidPersonnummer`. ``today`` decides
    the century of a 10-digit number (``None``: today in Sweden)."""
    if not isinstance(raw, str):
        raise InvalidPersonnummer("personnummer must be a string")
    if _WS_RE.search(raw):
        raise InvalidPersonnummer(
            "personnummer contains whitespace; it is refused, not stripped (a stray space "
            "corrupts a whole IdrottOnline batch): fix it in the source system"
        )
    m = _TWELVE_RE.fullmatch(raw)
    if m:
        ymd, tail = m.group(1), m.group(2)
        year, month, day = int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8])
    else:
        m = _TEN_RE.fullmatch(raw)
        if not m:
            if re.fullmatch(r"[0-9]{10}", raw):
                raise InvalidPersonnummer(
                    "personnummer with 10 digits needs '-' (or '+' when 100 or older) before the "
                    "last four digits, or give all 12 digits (YYYYMMDD-XXXX)"
                )
            raise InvalidPersonnummer("personnummer must be YYYYMMDD-XXXX, YYYYMMDDXXXX, YYMMDD-XXXX or YYMMDD+XXXX")
        ymd6, sep, tail = m.groups()
        yy, month, day = int(ymd6[:2]), int(ymd6[2:4]), int(ymd6[4:6])
        t = _today(today)
        ref_year = t.year - 100 if sep == "+" else t.year
        ref = (ref_year, t.month, t.day)
        year = ref_year - ((ref_year - yy) % 100)
        real_day = day - 60 if day > 60 else day
        if (year, month, real_day) > ref:
            year -= 100
    _real_date(year, month, day, allow_samordningsnummer=allow_samordningsnummer)
    ten = f"{year % 100:02d}{month:02d}{day:02d}{tail}"
    if not luhn_valid(ten):
        raise InvalidPersonnummer("personnummer: the check digit (Luhn) does not match")
    return f"{year:04d}{month:02d}{day:02d}-{tail}"


def _normalized(pnr: str) -> str:
    if isinstance(pnr, str) and NORMALIZED_RE.fullmatch(pnr):
        return pnr
    return normalize_personnummer(pnr)


def gender_from_personnummer(pnr: str) -> Literal["male", "female"]:
    """The 9th of the 10 digits: odd = male, even = female."""
    return "male" if int(_normalized(pnr)[-2]) % 2 else "female"


def is_samordningsnummer(pnr: str) -> bool:
    return int(_normalized(pnr)[6:8]) > 60


def birth_date_from_personnummer(pnr: str) -> date:
    """Birth date of a (normalisable) personnummer; samordningsnummer: day - 60."""
    n = _normalized(pnr)
    return _real_date(int(n[:4]), int(n[4:6]), int(n[6:8]), allow_samordningsnummer=True)
