"""The signed token of an impression: what a widget's links and forms, and the API's lists,
carry so that a click or an add-to-cart names the list it came from.

A token names the impression (its UUID), the variant it was served in, the products it showed,
and the visitor it was served to, as a keyed hash (:func:`visitor_tag`: the token never shows
the visitor id itself, so a shared link does not give it away). :func:`read_token` with a
``visitor`` accepts only a token served to that visitor: a link followed by someone else, or a
token posted under another visitor's name, counts for nobody.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings as django_settings
from django.core import signing

from crosssell.conf import settings

SIGNER_SALT = "crosssell.impression"
VISITOR_SALT = "crosssell.impression.visitor"
#: Characters of the visitor's keyed hash a token keeps (66 bits; :data:`COMPACT` says 11).
TAG_LENGTH = 11

#: The payload of a compact token: the impression's UUID in base64, the visitor's tag (empty
#: for a token served to nobody in particular), the variant, the products.
COMPACT = re.compile(r"([A-Za-z0-9_-]{22})~((?:[A-Za-z0-9_-]{11})?)~([0-9]{0,18})~([0-9.]{0,2000})")


def sign(
    impression: str,
    variant: int | None,
    products: Sequence[int],
    *,
    visitor: str | None = None,
    **extra: Any,
) -> str:
    """The token of one impression: its id, variant and products, and the visitor it is served
    to, signed once for the whole list (a link adds the product it leads to, which must be one
    of them). A token without a ``visitor`` is accepted by no visitor's events.

    A widget's token is compact (``<id in base64>~<visitor tag>~<variant>~<id.id...>``, about
    110 characters: every link and form of the widget carries it); one with ``extra`` fields
    (the API's, which also name the placement, sources and strategies) is signed JSON.
    """
    tag = visitor_tag(visitor) if visitor is not None else ""
    if extra:
        data = {"i": impression, "v": variant, "p": [int(p) for p in products], **extra}
        if tag:
            data["u"] = tag
        signer = _signer(django_settings.SECRET_KEY)
        return signer.sign_object(data, compress=len(products) > 8)
    shown = ".".join(str(int(p)) for p in products)
    return compact_token(uuid.UUID(impression).bytes, variant, shown, tag)


def compact_token(uid: bytes, variant: int | None, shown: str, tag: str) -> str:
    """The compact token of an impression (``uid``: its UUID's bytes; ``shown``: the products
    as ``id.id...``; ``tag``: :func:`visitor_tag` of the visitor it is served to)."""
    b64 = base64.urlsafe_b64encode(uid).rstrip(b"=").decode()
    return timestamp_sign(f"{b64}~{tag}~{variant or ''}~{shown}")


def visitor_tag(visitor: str) -> str:
    """The keyed hash of a visitor id a token carries (HMAC-SHA256 with a key derived from
    ``SECRET_KEY``, :data:`TAG_LENGTH` characters of its URL-safe base64)."""
    mac = _visitor_hmac(django_settings.SECRET_KEY).copy()
    mac.update(visitor.encode())
    return base64.urlsafe_b64encode(mac.digest()).decode()[:TAG_LENGTH]


@functools.lru_cache(maxsize=4)
def _visitor_hmac(secret: str) -> hmac.HMAC:
    key = hashlib.sha256(f"{VISITOR_SALT}{secret}".encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=4)
def _signer(secret: str) -> signing.TimestampSigner:
    """One signer per secret key (making one per token cost a third of the signing)."""
    return signing.TimestampSigner(key=secret, salt=SIGNER_SALT)


@functools.lru_cache(maxsize=4)
def _hmac(secret: str) -> hmac.HMAC:
    """The HMAC Django's signer computes for :data:`SIGNER_SALT`, keyed once (``salted_hmac``
    derives the key anew for every token); each token hashes a copy."""
    key = hashlib.sha256(f"{SIGNER_SALT}signer{secret}".encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


#: The current second and its base-62 form, as ``TimestampSigner`` stamps them.
_stamp: tuple[int, str] = (0, "")


def timestamp_sign(value: str) -> str:
    """``TimestampSigner(salt=SIGNER_SALT).sign(value)``, to the byte, at half the cost
    (every widget shown signs one token): the key is derived once per secret and the
    timestamp once per second; :func:`read_token` checks it with Django's own signer."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, signing.b62_encode(now))
    value = f"{value}:{_stamp[1]}"
    mac = _hmac(django_settings.SECRET_KEY).copy()
    mac.update(value.encode())
    return f"{value}:{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"


def read_token(token: str, visitor: str | None = None) -> dict[str, Any] | None:
    """The impression a link or form carried: ``{"i": id, "v": variant, "p": products}`` (and
    the API's placement ``l``, sources ``s`` and strategies ``t``).

    ``None`` for a forged or stale token and, when ``visitor`` is given, for a token that was
    not served to that visitor.
    """
    data = _unsign(token)
    if data is None:
        return None
    tag = data.pop("u", "")
    if visitor is not None and not (
        isinstance(tag, str) and tag and hmac.compare_digest(tag, visitor_tag(visitor))
    ):
        return None
    return data


def _unsign(token: str) -> dict[str, Any] | None:
    signer = _signer(django_settings.SECRET_KEY)
    try:
        payload = signer.unsign(token, max_age=settings.ATTRIBUTION_WINDOW)
        compact = COMPACT.fullmatch(payload)
        if compact:
            uid, tag, variant, shown = compact.groups()
            return {
                "i": str(uuid.UUID(bytes=base64.urlsafe_b64decode(uid + "=="))),
                "v": int(variant) if variant else None,
                "p": [int(p) for p in shown.split(".") if p],
                "u": tag,
            }
        data = signer.unsign_object(token, max_age=settings.ATTRIBUTION_WINDOW)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), str):
        return None
    return data


def token_products(data: dict[str, Any]) -> set[int]:
    """The products an impression token vouches for."""
    shown = data.get("p")
    if isinstance(shown, list):
        return {int(p) for p in shown if isinstance(p, int)}
    return set()
