"""Find spoken payment card numbers in a transcript. Pure: no files, no model.

A card number is a run of consecutive digit words (digits as the model wrote them, "4539", "4,539", or
spoken number words, "four five three nine", "oh", "twenty eight") of 13 to 19 digits that passes the
Luhn check. Speech recognition drops digits now and then, so a run of at least CONTEXT_DIGITS digits
within a few words after "card" is taken as a card number too (the Luhn check cannot hold then), while
the same digits without that context (an order number) are left alone. Once a card is found, the digits
said right after "expiry"/"expiration"/"expires" and "security code"/"CVV"/"CVC" are redacted too.
Runs are built over all of one speaker's words in time order, so a number split across segments is one
run. Each interval is widened by PAD seconds on both sides (word times are approximate)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from postprocess.transcribe.models import RedactionInterval, Transcript, Word

MIN_DIGITS = 13
MAX_DIGITS = 19
CONTEXT_DIGITS = 8
CONTEXT_WORDS = 6
"""How many words after "card" a run of digits may start and still be a card number by context."""
PAD = 0.25
RULE = "auto"

_UNITS = {"zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "seven": 7, "eight": 8, "nine": 9}  # fmt: skip
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}  # fmt: skip
_TENS = {"twenty": 2, "thirty": 3, "forty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8, "ninety": 9}
_NUMERAL = re.compile(r"^[0-9][0-9,.\-/]*$")
_EXPIRY = {"expiry", "expiration", "expires", "expire", "exp"}
_SECURITY = {"cvv", "cvc", "cv2", "cvv2", "cid"}


@dataclass
class Token:
    word: Word
    bare: str
    """Lower case, letters and digits only."""
    digits: str | None
    """The digits it says, None when it says none."""


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def tokens(words: list[Word]) -> list[Token]:
    out: list[Token] = []
    for w in words:
        text = w.text.strip().strip(".,;:!?\"'()").lower()
        bare = re.sub(r"[^a-z0-9]", "", text)
        digits: str | None = None
        if _NUMERAL.match(text):
            digits = re.sub(r"\D", "", text)
        elif bare in _UNITS:
            digits = str(_UNITS[bare])
        elif bare in _TEENS:
            digits = str(_TEENS[bare])
        elif bare in _TENS:
            digits = f"{_TENS[bare]}0"
        elif "-" in text and text.split("-", 1)[0] in _TENS and text.split("-", 1)[1] in _UNITS:
            digits = f"{_TENS[text.split('-', 1)[0]]}{_UNITS[text.split('-', 1)[1]]}"
        out.append(Token(w, bare, digits or None))
    # "twenty" "eight" is 28, not 208
    for a, b in itertools.pairwise(out):
        if a.bare in _TENS and b.bare in _UNITS and b.bare not in ("oh", "o", "zero") and a.digits:
            a.digits, b.digits = a.digits[0], b.digits
    return out


def runs(toks: list[Token]) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive digit tokens."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        if toks[i].digits is None:
            i += 1
            continue
        j = i
        while j < len(toks) and toks[j].digits is not None:
            j += 1
        out.append((i, j))
        i = j
    return out


def _digits(toks: list[Token], i: int, j: int) -> str:
    return "".join(t.digits or "" for t in toks[i:j])


def luhn_windows(toks: list[Token], i: int, j: int) -> list[tuple[int, int]]:
    """Non-overlapping windows of whole tokens in [i, j) holding 13-19 digits that pass Luhn, longest
    first."""
    found: list[tuple[int, int]] = []
    candidates = sorted(
        ((a, b) for a in range(i, j) for b in range(a + 1, j + 1)
         if MIN_DIGITS <= len(_digits(toks, a, b)) <= MAX_DIGITS),
        key=lambda ab: -len(_digits(toks, *ab)),
    )  # fmt: skip
    for a, b in candidates:
        if luhn(_digits(toks, a, b)) and all(b <= x or a >= y for x, y in found):
            found.append((a, b))
    return found


def _after(toks: list[Token], i: int, keywords: set[str], span: int) -> bool:
    """Whether one of `keywords` is among the `span` tokens before index i."""
    return any(t.bare in keywords for t in toks[max(0, i - span) : i])


def _security_before(toks: list[Token], i: int, span: int = 4) -> bool:
    window = toks[max(0, i - span) : i]
    bares = [t.bare for t in window]
    return any(b in _SECURITY for b in bares) or any(
        a == "security" and b == "code" for a, b in itertools.pairwise(bares)
    )


def find_in_words(words: list[Word]) -> list[RedactionInterval]:
    """The intervals of one speaker's words (in time order) to redact."""
    toks = tokens(words)
    found: list[tuple[int, int, str]] = []
    for i, j in runs(toks):
        windows = luhn_windows(toks, i, j)
        found += [(a, b, "card-number") for a, b in windows]
        if (
            not windows
            and len(_digits(toks, i, j)) >= CONTEXT_DIGITS
            and _after(toks, i, {"card"}, CONTEXT_WORDS)
        ):
            found.append((i, j, "card-number"))
    if found:
        for i, j in runs(toks):
            if any(a < j and i < b for a, b, _ in found):
                continue
            if _after(toks, i, _EXPIRY, 4) and 2 <= len(_digits(toks, i, j)) <= 6:
                found.append((i, j, "card-expiry"))
            elif _security_before(toks, i) and 3 <= len(_digits(toks, i, j)) <= 4:
                found.append((i, j, "card-security-code"))
    return [
        RedactionInterval(
            start=round(max(0.0, toks[a].word.start - PAD), 3),
            end=round(toks[b - 1].word.end + PAD, 3),
            reason=reason,
            rule=RULE,
        )
        for a, b, reason in sorted(found)
    ]


def find_card_numbers(transcript: Transcript) -> list[RedactionInterval]:
    """Every interval to redact in the transcript, by start."""
    out: list[RedactionInterval] = []
    for track in {s.track for s in transcript.segments}:
        words = sorted(
            (w for s in transcript.segments if s.track == track for w in s.words), key=lambda w: w.start
        )
        out += find_in_words(words)
    return sorted(out, key=lambda r: (r.start, r.end))


def merge(intervals: list[RedactionInterval]) -> list[tuple[float, float]]:
    """The union of the intervals, as sorted disjoint (start, end) pairs."""
    spans = sorted((r.start, r.end) for r in intervals if r.end > r.start)
    out: list[tuple[float, float]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
