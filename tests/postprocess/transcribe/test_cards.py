"""Finding spoken card numbers in words (postprocess/redact/cards.py): pure, no model."""

from __future__ import annotations

import pytest

from postprocess.redact.cards import find_in_words, luhn, merge
from postprocess.redact.mask import mask_transcript
from postprocess.transcribe.models import MASK, RedactionInterval, Segment, Transcript, Word


def words(text: str) -> list[Word]:
    return [
        Word(text=t, start=i * 0.5, end=i * 0.5 + 0.4, probability=0.9) for i, t in enumerate(text.split())
    ]


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4539148803436467", True),
        ("4111111111111111", True),
        ("5273840192658301", False),
        ("79927398713", True),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn(digits) is valid


@pytest.mark.parametrize(
    "said",
    [
        "my card number is 4539148803436467 thanks",
        "it's 4539 1488 0343 6467 thanks",  # groups, no keyword: Luhn alone
        "four five three nine, one four eight eight, zero three four three, six four six seven.",
        "the number is 4,539,148,803,436,467.",
        "card is 4539 14803 43646",  # a digit dropped by the model: caught by the keyword 'card'
    ],
)
def test_card_numbers_are_found(said: str) -> None:
    found = find_in_words(words(said))
    assert [r.reason for r in found] == ["card-number"], found


@pytest.mark.parametrize(
    "said",
    [
        "my order number is 5273840192658301",  # 16 digits, Luhn-invalid, no 'card'
        "my extension is four five six seven",  # too short
        "call me on 0 2 0 7 9 4 6 0 1 2 3",  # a phone number
        "the expiration date is zero nine two eight",  # an expiry without a card is just digits
    ],
)
def test_other_digits_are_left_alone(said: str) -> None:
    assert find_in_words(words(said)) == []


def test_expiry_and_security_code_after_a_card() -> None:
    found = find_in_words(
        words(
            "card 4539148803436467 expiration date is 0.928 and the security code is seven one two then 1234"
        )
    )
    assert [r.reason for r in found] == ["card-number", "card-expiry", "card-security-code"]
    assert found[2].end < 8.0  # the 1234 after it is left alone


def test_mask_and_merge() -> None:
    ws = words("card 4539148803436467 thanks")
    seg = Segment(speaker="bob", track="bob-audio-1", start=0, end=1.5, text="card 4539148803436467 thanks",
                  confidence=0.9, words=ws)  # fmt: skip
    t = Transcript(recording="r", model="tiny.en", segments=[seg])
    found = find_in_words(ws)
    masked = mask_transcript(t, found)
    assert masked.segments[0].text == f"card {MASK} thanks"
    assert masked.redactions == found and t.segments[0].text == seg.text
    spans = merge([RedactionInterval(start=1, end=2, reason="a", rule="manual"),
                   RedactionInterval(start=1.5, end=3, reason="b", rule="auto")])  # fmt: skip
    assert spans == [(1, 3)]
