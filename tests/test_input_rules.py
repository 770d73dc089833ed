"""The pure input rules (app.input_rules) and the id path convertor, without web or database."""

from __future__ import annotations

import pytest

from app.input_rules import (
    FORM_RULES,
    TextRule,
    field_problems,
    is_clause_number,
    is_slug,
    text_problem,
)
from app.path_params import IdConvertor

HEADING = TextRule("Heading", 200)
WORDING = TextRule("Wording", 5000, multi_line=True)


@pytest.mark.parametrize("value", ["a\x00b", "a\x01", "bell\x07", "esc\x1b[0m", "del\x7f", "\x85"])
def test_control_characters_are_refused_on_one_line_and_many(value):
    assert "must not contain" in text_problem(value, HEADING)
    assert "must not contain control characters such as NUL" in text_problem(value, WORDING)


def test_tabs_and_line_ends_are_fine_in_multi_line_text_only():
    assert text_problem("one\r\ntwo\tthree\n\nfour", WORDING) is None
    assert "line breaks" in text_problem("one\ntwo", HEADING)
    assert "line breaks" in text_problem("one\ttwo", HEADING)


def test_lone_surrogates_from_lenient_decoding_are_refused():
    assert text_problem("broken \udcff byte", WORDING) is not None


@pytest.mark.parametrize(
    "value",
    ["<script>alert(1)</script>", "{{7*7}}", "' OR 1=1 --", "\u202eabc\u200b", "\U0001f600"],
)
def test_hostile_but_printable_text_is_text(value):
    assert text_problem(value, HEADING) is None


def test_lengths_count_the_text_as_it_will_be_stored():
    assert text_problem("H" * 200, HEADING) is None
    assert text_problem("H" * 201, HEADING) == "Heading must be 200 characters or fewer"
    # Runs of spaces are folded before storing, so they do not count against the limit.
    assert text_problem("word " + " " * 400 + "word", HEADING) is None
    assert text_problem("x" * 5001, WORDING) == "Wording must be 5,000 characters or fewer"


def test_field_problems_names_each_bad_field_and_treats_missing_as_empty():
    problems = field_problems(
        {"heading": "H" * 100_000, "text": "ok", "reason": "a\x00"}, FORM_RULES["revise"]
    )
    assert set(problems) == {"heading", "reason"}
    assert field_problems({}, FORM_RULES["propose"]) == {}


@pytest.mark.parametrize("slug", ["social-media-guidance", "a", "2026-guidance", "x" * 100])
def test_slugs_of_the_shape_slugify_makes_are_accepted(slug):
    assert is_slug(slug)


@pytest.mark.parametrize(
    "slug", ["", "a\x00b", "Upper", "under_score", "-lead", "trail-", "a--b", "x" * 101, "é", "a b"]
)
def test_other_slugs_are_not(slug):
    assert not is_slug(slug)


@pytest.mark.parametrize("number", ["1", "3.2", "10.1.4", "12.3.4.5"])
def test_clause_numbers(number):
    assert is_clause_number(number)


@pytest.mark.parametrize("number", ["", "3.", ".3", "3..2", "a", "3\x00", "1" * 21, "\u0663"])
def test_not_clause_numbers(number):
    assert not is_clause_number(number)


def test_the_id_convertor_matches_only_ids_both_engines_can_hold():
    import re

    pattern = re.compile(IdConvertor.regex)
    for value in ("1", "42", "9" * 18):
        assert pattern.fullmatch(value)
        assert IdConvertor().convert(value) == int(value)
        assert int(value) <= 2**63 - 1
    for value in ("0", "01", "-1", "9" * 19, str(2**63), str(2**64), "1e3", "\u0661"):
        assert not pattern.fullmatch(value), value
    with pytest.raises(ValueError):
        IdConvertor().to_string(0)
