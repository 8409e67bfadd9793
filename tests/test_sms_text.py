"""SMS templates, rendering, and GSM-7 / UCS-2 segment counting."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db import sms_text
from db.agency import Agency
from db.money import format_money
from db.services.errors import InvalidInput
from db.sms_text import Encoding, encoding, render, segments

VALUES = {
    "name": "Asha Rao",
    "amount_due": "INR 1500.00",
    "outstanding": "INR 9000.00",
    "due_date": "05 Mar 2025",
    "loan_number": "L-0001",
    "agency": "Vasooli",
}


@pytest.mark.parametrize(
    ("days", "template"),
    [
        (-3, sms_text.BEFORE_DUE),
        (-1, sms_text.BEFORE_DUE),
        (0, sms_text.ON_THE_DAY),
        (1, sms_text.OVERDUE),
        (30, sms_text.OVERDUE),
    ],
)
def test_template_per_rule(days, template):
    assert sms_text.template_for(days) is template


def test_rule_names_are_signed():
    assert [sms_text.rule_name(d) for d in (-3, 0, 7)] == ["due-3", "due+0", "due+7"]


@pytest.mark.parametrize("template", [sms_text.BEFORE_DUE, sms_text.ON_THE_DAY, sms_text.OVERDUE])
def test_default_templates_render_to_one_gsm_segment(template):
    text = render(template, VALUES)
    assert "{" not in text and "Asha Rao" in text and "L-0001" in text
    assert text.endswith(sms_text.OPT_OUT_LINE)
    assert encoding(text) is Encoding.GSM7
    assert segments(text) == 1


def test_render_fills_missing_values_with_nothing_and_keeps_an_explicit_opt_out():
    assert render("Hi {name}. {opt_out}", {}) == "Hi . Reply STOP to opt out."
    assert render("Hi {name}.{opt_out}", {"name": "Ravi", "opt_out": ""}) == "Hi Ravi."


def test_render_does_not_interpret_braces_inside_values():
    assert render("Hi {name}", {"name": "{agency}"}) == "Hi {agency}"


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("Hi {nmae}", "{nmae}"),
        ("Pay {amount_due:>10}", "{amount_due:>10}"),
        ("Hi {name!r}", "{name!r}"),
        ("Hi {name.upper}", "{name.upper}"),
        ("{0}", "{0}"),
    ],
)
def test_check_template_names_the_unknown_placeholder(template, named):
    with pytest.raises(InvalidInput) as err:
        sms_text.check_template(template)
    assert named in err.value.message
    assert err.value.code == "template_placeholder"


@pytest.mark.parametrize("template", ["Hi {name", "Hi name}", "Pay {", "}"])
def test_check_template_refuses_stray_braces(template):
    with pytest.raises(InvalidInput) as err:
        sms_text.check_template(template)
    assert err.value.code == "template_braces"


def test_check_template_accepts_escaped_braces_and_refuses_empty():
    sms_text.check_template("Use {{code}} {name}")
    assert render("Use {{code}} {name}", {"name": "A"}) == "Use {code} A"
    with pytest.raises(InvalidInput):
        sms_text.check_template("   ")


def test_amount_and_date_formatting_stay_gsm():
    assert format_money(Decimal("1500"), Agency(), plain=True) == "INR 1500.00"
    assert format_money(Decimal("1500.5"), Agency(currency="JPY"), plain=True) == "JPY 1501"
    assert format_money(Decimal("-5"), Agency(currency="KWD"), plain=True) == "KWD -5.000"
    assert sms_text.sms_date(date(2025, 3, 5)) == "05 Mar 2025"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", Encoding.GSM7),
        ("£5 @ Café Ä§¿", Encoding.GSM7),
        ("price {€}", Encoding.GSM7),
        ("₹1500", Encoding.UCS2),
        ("नमस्ते", Encoding.UCS2),
        ("it’s", Encoding.UCS2),
        ("ç lowercase", Encoding.UCS2),
        ("ok 👍", Encoding.UCS2),
    ],
)
def test_encoding_uses_the_real_gsm_tables(text, expected):
    assert encoding(text) is expected


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("a" * 159 + "€", 2),
        ("अ" * 70, 1),
        ("अ" * 71, 2),
        ("अ" * 134, 2),
        ("अ" * 135, 3),
        ("👍" * 35, 1),
        ("👍" * 36, 2),
        ("a" * 68 + "👍", 1),
        ("a" * 69 + "👍", 2),
    ],
)
def test_segments(text, parts):
    assert segments(text) == parts


def test_an_escape_pair_is_never_split_across_parts():
    # 152 septets then a two-septet character: it moves whole to part two.
    text = "a" * 152 + "[" + "a" * 152
    assert segments(text) == 3


@given(st.text(alphabet="abc XYZ019.,!?", min_size=1, max_size=2000))
def test_gsm_segments_match_the_simple_formula_without_extension_characters(text):
    expected = 1 if len(text) <= 160 else -(-len(text) // 153)
    assert segments(text) == expected


@given(st.text(min_size=1, max_size=600))
def test_segments_grow_with_the_text(text):
    assert segments(text) >= 1
    assert segments(text + text) >= segments(text)


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
def test_money_for_sms_round_trips_and_stays_gsm(amount):
    text = format_money(amount, Agency(), plain=True)
    currency, number = text.split(" ")
    assert currency == "INR" and Decimal(number) == amount
    assert encoding(text) is Encoding.GSM7
