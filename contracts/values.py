"""The one text validator and the one number parser every input goes through.

Text: no control character (C0 but tab and newline in multi-line text, DEL, C1), no lone
surrogate, length within bounds. PostgreSQL refuses NUL in text, and control characters in a
title end up in alerts, e-mails and map popups.

Numbers: ASCII only, as a person types them in a URL or a command line. Python's ``float()``
and ``int()`` also read Arabic-Indic (``٤٨``), full-width (``４８``) and superscript digits,
underscores and surrounding spaces; none of that is a number here.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
MAX_NUMBER_CHARS = 40


def parse_number(text: str) -> float:
    """A decimal number written with ASCII digits (``48.85``, ``-1.5e-3``), or ValueError."""
    if len(text) > MAX_NUMBER_CHARS or DECIMAL.fullmatch(text) is None:
        raise ValueError(f"{_shown(text)} is not a number (ASCII digits, e.g. 48.85)")
    return float(text)


def parse_int(text: str) -> int:
    """An integer written with ASCII digits (``12``, ``-3``), or ValueError."""
    if len(text) > MAX_NUMBER_CHARS or INTEGER.fullmatch(text) is None:
        raise ValueError(f"{_shown(text)} is not an integer (ASCII digits, e.g. 12)")
    return int(text)


def _number(value: object) -> object:
    return parse_number(value) if isinstance(value, str) else value


def _integer(value: object) -> object:
    if isinstance(value, str):
        return parse_int(value)
    # JSON's true and 3.0 are not integers, though Python's int() would take them.
    if isinstance(value, bool | float):
        raise ValueError(f"{value!r} is not an integer (ASCII digits, e.g. 12)")
    return value


# Put in an Annotated number type: a number given as text (a query parameter, a path segment,
# a string in JSON) goes through the strict parser; pydantic then applies the type and bounds.
Number = BeforeValidator(_number)
Integer = BeforeValidator(_integer)


def _shown(text: str) -> str:
    return repr(text if len(text) <= MAX_NUMBER_CHARS else text[:MAX_NUMBER_CHARS] + "…")


def _control(char: str, multiline: bool) -> bool:
    if multiline and char in "\t\n\r":
        return False
    category = unicodedata.category(char)
    return category == "Cc" or category == "Cs"


# What _control refuses, as one regex: the C0 and C1 controls and DEL (category Cc) and the
# surrogates (Cs). A text without any is accepted by one C-level search (imports check millions
# of labels); only a refused one is walked character by character to say where.
_FORBIDDEN = {
    False: re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]"),
    True: re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]"),
}


def check_text(value: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or ValueError naming the first forbidden character and where."""
    if _FORBIDDEN[multiline].search(value) is None:
        return value
    for position, char in enumerate(value):
        if _control(char, multiline):
            if char in "\t\n\r":
                kind, hint = "a line break or tab", "give one line"
            elif unicodedata.category(char) == "Cs":
                kind, hint = "a lone surrogate", "give valid Unicode text"
            else:
                kind, hint = "a control character", "give plain text"
            raise ValueError(f"holds {kind} (U+{ord(char):04X}) at position {position}; {hint}")
    return value


def _one_line(value: str) -> str:
    return check_text(value, multiline=False)


def _lines(value: str) -> str:
    return check_text(value, multiline=True)


# Every text field of contracts/ is one of these (bounds in characters).
Label = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_one_line)]
"""A name, title or category: one line, 1 to 300 characters."""

OptionalLabel = Annotated[str, Field(max_length=300), AfterValidator(_one_line)]
"""One line of at most 300 characters, possibly empty (a contribution's title)."""

LongText = Annotated[str, Field(max_length=20_000), AfterValidator(_lines)]
"""A description: at most 20,000 characters, tabs and line breaks allowed."""
