"""Cheap natural-language statistics for telling text from encodings and ciphers."""

from __future__ import annotations

import codecs
import math
import re

__all__ = [
    "FUNCTION_WORDS",
    "deleet",
    "english_ratio",
    "leet_ratio",
    "letter_cross_entropy",
    "rot13",
    "vowelless_ratio",
]

FUNCTION_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "please",
        "step",
        "steps",
        "first",
        "make",
        "use",
        "using",
        "how",
        "write",
        "give",
        "tell",
        "list",
        "provide",
        "describe",
        "explain",
        "create",
        "one",
        "two",
        "new",
        "way",
        "like",
        "get",
        "need",
        "want",
        "know",
        "time",
        "people",
        "work",
        "good",
        "help",
        "i'm",
        "it's",
        "don't",
        "can't",
        "here's",
        "sure",
        "yes",
    ]
)
_TOKEN = re.compile(r"[A-Za-z']+")
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!|+']+")
_LEET = str.maketrans(
    {
        "4": "a",
        "@": "a",
        "3": "e",
        "1": "i",
        "!": "i",
        "|": "l",
        "0": "o",
        "5": "s",
        "$": "s",
        "7": "t",
        "+": "t",
        "8": "b",
        "9": "g",
    }
)
_VOWELS = set("aeiouy")
# English letter frequencies in percent (P. Norvig, "English Letter Frequency Counts: Mayzner
# Revisited", counts over the Google Books n-grams).
_LETTER_FREQ = {
    "e": 12.49,
    "t": 9.28,
    "a": 8.04,
    "o": 7.64,
    "i": 7.57,
    "n": 7.23,
    "s": 6.51,
    "r": 6.28,
    "h": 5.05,
    "l": 4.07,
    "d": 3.82,
    "c": 3.34,
    "u": 2.73,
    "m": 2.51,
    "f": 2.40,
    "p": 2.14,
    "g": 1.87,
    "w": 1.68,
    "y": 1.66,
    "b": 1.48,
    "v": 1.05,
    "k": 0.54,
    "x": 0.23,
    "j": 0.16,
    "q": 0.12,
    "z": 0.09,
}
_LETTER_BITS = {c: -math.log2(v / 100.0) for c, v in _LETTER_FREQ.items()}


def rot13(text: str) -> str:
    """ROT13 of ``text``."""
    return codecs.encode(text, "rot_13")


def deleet(text: str) -> str:
    """Map common leetspeak digits and symbols back to letters."""
    return text.translate(_LEET)


def english_ratio(text: str) -> tuple[float, int]:
    """Fraction of word tokens that are common English function words, and the token count."""
    toks = _TOKEN.findall(text.lower())
    if not toks:
        return 0.0, 0
    return sum(1 for t in toks if t in FUNCTION_WORDS) / len(toks), len(toks)


def vowelless_ratio(text: str) -> float:
    """Fraction of words of 3+ letters that contain no vowel (high in ciphers)."""
    toks = [t for t in _TOKEN.findall(text.lower()) if len(t) >= 3]
    if not toks:
        return 0.0
    return sum(1 for t in toks if not (_VOWELS & set(t))) / len(toks)


def leet_ratio(text: str) -> float:
    """Fraction of tokens that mix letters with leetspeak digits/symbols (h4ck, 3xpl01t)."""
    toks = _LEET_TOKEN.findall(text)
    if not toks:
        return 0.0
    mixed = 0
    for t in toks:
        if (
            len(t) >= 3
            and any(c.isalpha() for c in t)
            and any(c in "4@31!05$7+|89" for c in t[:-1] if c != "!")
        ):
            mixed += 1
    return mixed / len(toks)


def letter_cross_entropy(text: str) -> tuple[float, int]:
    """Bits per ASCII letter of ``text`` under English letter frequencies, and the letter count.

    English prose scores about 4.2 bits (short requests up to about 4.7); a substitution
    cipher, which keeps word shapes but swaps letter identities, scores about 5 or more.
    """
    bits = 0.0
    n = 0
    for c in text.lower():
        b = _LETTER_BITS.get(c)
        if b is not None:
            bits += b
            n += 1
    return (bits / n if n else 0.0), n
