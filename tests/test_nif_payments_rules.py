"""The payment rules (pure): every rule with its code and field path, and generated inputs.

Invariants (hypothesis):
- a payment built from valid parts has no violation, and its content hash does not depend on how
  the JSON was written (key order, key case, the amount as a number or as text);
- any JSON object at all either validates or yields violations, each with a code from the rule
  table and a field path; nothing raises;
- GET payment-details queries of any text yield only codes 1022–1026 / 1039, or a query.
"""

from __future__ import annotations

import ast
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.nif.payments.models import PaymentRequest
from shared.nif.payments.rules import (
    MembershipFacts,
    PaymentTypeFacts,
    content_hash,
    lookup_window,
    normalise_details,
    retry_delay,
    validate_details_query,
    validate_payment,
)

TODAY = date(2026, 6, 15)
CODES = {1002, 1006, 1007, 1036, 1039, 3001}


def valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalId": "INV-1",
        "personId": 8756935,
        "orgId": 19428,
        "paidToOrgId": 19428,
        "paymentTypeId": 0,
        "amount": 350,
        "isPaid": True,
        "paidDate": "2026-01-15",
        "periodFrom": "2026-01-01",
        "periodTo": "2026-12-31",
        "paymentCategory": "Invoice",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def violations(body: dict[str, Any], **kw: Any) -> set[tuple[str, int]]:
    return {(v.path, v.code) for v in validate_payment(PaymentRequest.model_validate(body), today=TODAY, **kw)}


def test_the_valid_example_passes() -> None:
    assert violations(valid()) == set()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"personId": None}, ("personId", 1002)),
        ({"personId": 0}, ("personId", 1002)),
        ({"externalId": None}, ("externalId", 1039)),
        ({"externalId": "x" * 26}, ("externalId", 1039)),
        ({"externalId": " INV-1"}, ("externalId", 1039)),
        ({"externalId": "INV#1"}, ("externalId", 1039)),
        ({"externalId": "INV\n1"}, ("externalId", 1039)),
        ({"orgId": None}, ("orgId", 1039)),
        ({"paidToOrgId": None}, ("paidToOrgId", 1039)),
        ({"paymentTypeId": None}, ("paymentTypeId", 1039)),
        ({"paymentTypeId": 5}, ("paymentTypeId", 1039)),
        ({"amount": None}, ("amount", 1039)),
        ({"amount": -0.01}, ("amount", 1039)),
        ({"amount": "10.001"}, ("amount", 1039)),
        ({"amount": 10**9}, ("amount", 1039)),
        ({"isPaid": None}, ("isPaid", 1039)),
        ({"paidDate": None}, ("paidDate", 1039)),
        ({"periodFrom": None}, ("periodFrom", 1036)),
        ({"periodFrom": "2025-12-31"}, ("periodFrom", 1007)),
        ({"periodTo": None}, ("periodTo", 1039)),
        ({"periodTo": "2026-01-01"}, ("periodTo", 1039)),
        ({"paymentCategory": None}, ("paymentCategory", 1039)),
        ({"paymentCategory": "c" * 128}, ("paymentCategory", 1039)),
        ({"comment": "c" * 201}, ("comment", 1039)),
    ],
)
def test_each_rule_has_its_code_and_path(changes: dict[str, Any], expected: tuple[str, int]) -> None:
    assert expected in violations(valid(**changes))


def test_lengths_at_the_limit_pass() -> None:
    assert violations(valid(externalId="x" * 25, paymentCategory="c" * 127, comment="c" * 200)) == set()


def test_mirror_facts_membership_start_and_org() -> None:
    known = MembershipFacts(start=date(2026, 3, 1), org_ids=frozenset({19428, 827527}))
    assert ("periodFrom", 3001) in violations(valid(periodFrom="2026-02-01"), membership=known)
    assert violations(valid(periodFrom="2026-03-01"), membership=known) == set()
    assert ("orgId", 1006) in violations(valid(orgId=999, periodFrom="2026-03-01"), membership=known)
    assert violations(valid(orgId=827527, periodFrom="2026-03-01"), membership=known) == set()


def test_payment_types_from_the_queue_add_and_remove() -> None:
    facts = PaymentTypeFacts(active=frozenset({7}), removed=frozenset({3}))
    assert violations(valid(paymentTypeId=7), types=facts) == set()
    assert ("paymentTypeId", 1039) in violations(valid(paymentTypeId=3), types=facts)
    assert violations(valid(paymentTypeId=0), types=facts) == set()


@pytest.mark.parametrize("field", ["personId", "amount", "isPaid", "periodFrom", "paymentTypeId"])
@pytest.mark.parametrize("value", [True, "abc", [], {}, 1.5e300, "2026-13-01"])
def test_wrong_types_fail_validation_of_the_model(field: str, value: Any) -> None:
    if (field, value) == ("isPaid", True):
        return  # the one right value
    body = valid(**{field: value})
    try:
        req = PaymentRequest.model_validate(body)
    except ValidationError as exc:
        assert all(e["loc"][0] == field for e in exc.errors())
        return
    assert validate_payment(req, today=TODAY) or field == "amount"


amounts = st.decimals(min_value=0, max_value=Decimal("999999999.99"), places=2)
dates_in_year = st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 30))
ids = st.integers(min_value=1, max_value=2_147_483_647)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=25)


@st.composite
def valid_payments(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(dates_in_year)
    end = draw(st.dates(min_value=start + timedelta(days=1), max_value=date(2027, 12, 31)))
    ext = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._:-]{0,23}[A-Za-z0-9]", fullmatch=True))
    return valid(
        externalId=ext,
        personId=draw(ids),
        orgId=draw(ids),
        paidToOrgId=draw(ids),
        paymentTypeId=draw(st.integers(0, 4)),
        amount=str(draw(amounts)),
        isPaid=draw(st.booleans()),
        periodFrom=start.isoformat(),
        periodTo=end.isoformat(),
        paymentCategory=draw(st.text(min_size=1, max_size=127).filter(str.strip)),
        comment=draw(st.none() | st.text(max_size=200)),
    )


@settings(max_examples=200, deadline=None)
@given(valid_payments(), st.randoms())
def test_valid_payments_pass_and_hash_the_same_however_written(body: dict[str, Any], rnd: Any) -> None:
    req = PaymentRequest.model_validate(body)
    assert validate_payment(req, today=TODAY) == []
    items = list(body.items())
    rnd.shuffle(items)
    rewritten = {(k.upper() if rnd.random() < 0.5 else k): v for k, v in items}
    amount = Decimal(body["amount"])
    rewritten = {k: v for k, v in rewritten.items() if k.lower() != "amount"}
    rewritten["amount"] = float(amount) if amount == Decimal(repr(float(amount))) else str(amount)
    assert content_hash(PaymentRequest.model_validate(rewritten)) == content_hash(req)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(valid()) + ["comment", "isFamilyMember", "x"]), json_values))
def test_any_object_validates_or_names_its_fields_never_raises(body: dict[str, Any]) -> None:
    try:
        req = PaymentRequest.model_validate({**valid(), **body})
    except ValidationError as exc:
        assert all(e["loc"] for e in exc.errors())
        return
    for v in validate_payment(req, today=TODAY):
        assert v.code in CODES and v.path


@settings(max_examples=300, deadline=None)
@given(st.none() | texts, st.none() | texts | dates_in_year.map(str), st.none() | texts | dates_in_year.map(str))
def test_details_queries_of_any_text_yield_nif_codes(person: Any, start: Any, end: Any) -> None:
    found, query = validate_details_query(person, start, end, today=TODAY)
    assert (query is None) == bool(found)
    assert {v.code for v in found} <= {1022, 1023, 1024, 1025, 1026, 1039}


def test_details_query_codes() -> None:
    def codes(*args: Any) -> set[int]:
        return {v.code for v in validate_details_query(*args, today=TODAY)[0]}

    assert codes(None, "2026-01-01", "2026-02-01") == {1022}
    assert codes("1", None, "2026-02-01") == {1023}
    assert codes("1", "2026-01-01", None) == {1024}
    assert codes("1", "2025-12-31", "2026-02-01") == {1025}
    assert codes("1", "2026-03-01", "2026-02-01") == {1026}
    assert codes("1", "2026-02-30", "2026-03-01") == {1039}
    assert codes("1", "2026-03-01", "2026-03-01") == set()


def test_both_response_shapes_normalise_to_the_same_payments() -> None:
    item = {"personId": 5, "paidToOrgId": 19428, "paymentTypeId": 0, "fee": 350.0, "externalReference": "INV-1"}
    current = normalise_details({"totalRecords": 1, "pageSize": 100, "currentPage": 1, "data": [item]})
    legacy = normalise_details({"paymentDetails": [item], "updatedPersonId": 7})
    assert current.payments == legacy.payments and current.payments[0].amount == "350.0"
    assert (current.total, legacy.updated_person_id) == (1, 7)
    for bad in ("text", 5, {"data": {}}, {"data": [1]}):
        with pytest.raises(ValueError):
            normalise_details(bad)


def test_backoff_doubles_up_to_the_cap_and_the_lookup_window() -> None:
    assert [retry_delay(n, base=60, cap=3600, jitter=1.0) for n in (1, 2, 3, 7, 50)] == [60, 120, 240, 3600, 3600]
    assert lookup_window(date(2026, 11, 30), TODAY) == (date(2026, 1, 1), date(2026, 12, 31))
    assert lookup_window(date(2027, 3, 1), TODAY) == (date(2026, 1, 1), date(2027, 12, 31))
    assert lookup_window(date(2025, 12, 31), TODAY) is None


@pytest.mark.parametrize("module", ["shared/nif/payments/rules.py", "shared/nif/payments/models.py"])
def test_the_rules_are_pure(module: str) -> None:
    """No Azure SDK, HTTP client or I/O module in the rules (as tests/test_architecture.py's core)."""
    root = Path(__file__).resolve().parents[1]
    tree = ast.parse((root / module).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in ("azure", "httpx", "requests", "paramiko", "socket")]
    local = [n for n in names if n.startswith("shared.")]
    assert set(local) <= {"shared.nif.models", "shared.nif.rules", "shared.nif.payments.models"}
