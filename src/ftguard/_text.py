"""Text normalisation shared by every rule that matches words in model or dataset text.

Rules are written in ASCII ("I can't", "--", '"'); models write typographic text
("I can’t", "—", “ ”), full-width forms, non-breaking spaces and, in adversarial data,
zero-width characters between letters. :func:`normalize_for_matching` maps all of these to
the ASCII the rules expect. It is for matching only: keep the original text for anything
that is shown, stored or hashed.
"""

from __future__ import annotations

import unicodedata

__all__ = ["normalize_for_matching"]

_ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
_TABLE = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u02bb\uff07", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb\uff02", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00a0\u2007\u202f\u3000", " "),
        **dict.fromkeys(_ZERO_WIDTH, None),
    }
)


def normalize_for_matching(text: str) -> str:
    """``text`` in the form the matching rules expect.

    Applies Unicode NFKC (full-width letters, ligatures and compatibility forms to their
    plain letters; "…" to "..."), then maps typographic single and double quotes to ``'``
    and ``"``, hyphens and dashes (en, em, minus) to ``-``, non-breaking spaces to a space,
    and removes zero-width characters and soft hyphens. Emoji and letters of other scripts
    are kept. ASCII text is returned unchanged (and fast).

    Args:
        text: Any text.

    Returns:
        The normalised text (possibly of another length: indices do not carry over).

    """
    if text.isascii():
        return text
    # Zero-width characters go before NFKC too, so that letters they separated compose.
    return unicodedata.normalize("NFKC", text.translate(_TABLE)).translate(_TABLE)
