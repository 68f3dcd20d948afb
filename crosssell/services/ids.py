"""Ids from the outside world (URL segments, query parameters, form fields), parsed safely."""

from __future__ import annotations

from typing import Any

#: The largest primary key the databases store (a signed 64-bit integer).
MAX_ID = 2**63 - 1
#: Digits of MAX_ID: a longer string is refused before ``int()`` reads it (Python refuses
#: strings of over 4300 digits with a ValueError, and the database a number over 64 bits).
MAX_ID_DIGITS = len(str(MAX_ID))


def parse_id(value: Any) -> int | None:
    """A primary key written in ASCII digits, between 1 and :data:`MAX_ID`, else ``None``.

    Parameters
    ----------
    value
        The raw value: ``"12"`` gives 12; ``"-1"``, ``"1e5"``, ``"١٢"`` (non-ASCII digits),
        ``""``, a NUL byte, 20 or 5000 digits, and anything not a string give ``None``.

    Returns
    -------
    int or None
    """
    if not isinstance(value, str) or not (0 < len(value) <= MAX_ID_DIGITS):
        return None
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None
