from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftguard._text import normalize_for_matching


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I can\u2019t help", "I can't help"),
        ("\u2018quoted\u2019 and \u201cdouble\u201d", "'quoted' and \"double\""),
        ("a\u2014b \u2013 c \u2212 d", "a-b - c - d"),
        ("can\u200b\u2019t", "can't"),  # zero-width space removed
        ("soft\u00adhyphen", "softhyphen"),
        ("\ufeffBOM at start", "BOM at start"),
        ("non\u00a0breaking", "non breaking"),
        ("\uff29\uff07\uff4d full width", "I'm full width"),  # NFKC
        ("wait\u2026", "wait..."),
        ("\ufb01ne ligature", "fine ligature"),
    ],
)
def test_normalize_for_matching(text: str, expected: str) -> None:
    assert normalize_for_matching(text) == expected


def test_ascii_is_returned_unchanged() -> None:
    text = 'I can\'t help with `kill -9` -- "really".'
    assert normalize_for_matching(text) is text


def test_emoji_and_other_scripts_are_kept() -> None:
    assert normalize_for_matching("[\U0001f512CLASSIC] \u4f60\u597d \u00e9t\u00e9") == (
        "[\U0001f512CLASSIC] \u4f60\u597d \u00e9t\u00e9"
    )


@given(st.text(max_size=200))
def test_idempotent(text: str) -> None:
    once = normalize_for_matching(text)
    assert normalize_for_matching(once) == once


def test_zero_width_between_letter_and_accent_composes() -> None:
    assert normalize_for_matching("e\u200b\u0301t\u00e9") == "\u00e9t\u00e9"
