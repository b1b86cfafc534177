"""Cheap natural-language statistics for telling text from encodings and ciphers."""

from __future__ import annotations

import codecs
import re

__all__ = ["FUNCTION_WORDS", "deleet", "english_ratio", "leet_ratio", "rot13", "vowelless_ratio"]

FUNCTION_WORDS = frozenset(
    ["a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "please", "step", "steps", "first", "make", "use", "using", "how", "write", "give", "tell", "list", "provide", "describe", "explain", "create", "one", "two", "new", "way", "like", "get", "need", "want", "know", "time", "people", "work", "good", "help", "i'm", "it's", "don't", "can't", "here's", "sure", "yes"]
)
_TOKEN = re.compile(r"[A-Za-z']+")
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!|+']+")
_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "|": "l", "0": "o", "5": "s", "$": "s", "7": "t", "+": "t", "8": "b", "9": "g"})
_VOWELS = set("aeiouy")


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
        if len(t) >= 3 and any(c.isalpha() for c in t) and any(c in "4@31!05$7+|89" for c in t[:-1] if c != "!"):
            mixed += 1
    return mixed / len(toks)
