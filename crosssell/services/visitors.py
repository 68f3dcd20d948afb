"""Visitor identity and variant assignment.

A visitor is a random id (kept in a cookie by the tracking middleware, else in the session),
never the user's identity. A visitor's variant of a running experiment is a hash of the
experiment and the visitor id (:func:`assign`), so it never changes while the variants and their
weights stay the same. Split from :mod:`crosssell.services.tracking`, which re-exports these
names.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from crosssell.models import Experiment, Variant
from crosssell.services import cache as cs_cache

SESSION_VISITOR = "crosssell_visitor"

#: The cookie that keeps a visitor's random id (set by the tracking middleware): no session
#: row is written for a visitor who only looks.
COOKIE = "crosssell_visitor"


def valid_visitor(value: Any) -> bool:
    """A visitor id as this module makes them: 32 hexadecimal digits (or one a test chose)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value.isascii()
        and (value.replace("-", "").replace("_", "").isalnum())
    )


def visitor_id(holder: Any) -> str:
    """A stable, random visitor id (never the user's identity).

    ``holder`` is a request (the id the middleware read from, or gave to, the visitor's cookie;
    without the middleware, the session's) or a session.
    """
    value = getattr(holder, "crosssell_visitor", None)
    if value:
        holder.crosssell_visitor_used = True  # the middleware sets the cookie
        return str(value)
    session = getattr(holder, "session", holder)
    value = session.get(SESSION_VISITOR)
    if not value:
        value = secrets.token_hex(16)
        session[SESSION_VISITOR] = value
    return str(value)


def _session(holder: Any) -> Any:
    """The session of a request, or ``holder`` itself when it is one."""
    return getattr(holder, "session", holder)


class NamedVisitor:
    """A request acting as the visitor its caller names (a storefront whose calls carry no
    cookie), for :func:`visitor_id` and :func:`record_touch`."""

    def __init__(self, request: Any, visitor: str) -> None:
        self.session = getattr(request, "session", {})
        self.crosssell_visitor = visitor


def added_to_cart(request: Any, product_ids: Iterable[int]) -> None:
    """Tell tracking which products a cart-add view really added (call it with ``()`` first
    thing, so a refused form records nothing). A view that never calls it has every widget
    product it was posted counted as added, once it answers below 400."""
    added: set[int] = getattr(request, "crosssell_added", None) or set()
    added.update(int(p) for p in product_ids)
    request.crosssell_added = added


def known_visitor(request: Any) -> str | None:
    """The visitor a request already is: its cookie's, else its session's; ``None`` for a
    caller seen for the first time."""
    cookie = getattr(request, "COOKIES", {}).get(COOKIE)
    if valid_visitor(cookie):
        return str(cookie)
    session = getattr(request, "session", None)
    value = session.get(SESSION_VISITOR) if session is not None else None
    return str(value) if value else None


def acting_as(request: Any, named: str | None) -> Any | None:
    """The holder (see :func:`visitor_id`) of the visitor ``request`` acts as.

    The request itself, or, when its caller names a visitor (the API's ``visitor``), that
    visitor; ``None`` when the name differs from the visitor the request's cookie (or session)
    already is: a caller cannot act as another visitor than its own.
    """
    if named is None:
        return request
    known = known_visitor(request)
    if known is None:
        return NamedVisitor(request, named)
    return request if known == named else None


def current_visitor(holder: Any) -> str | None:
    """The visitor id ``holder`` carries, without making one (``None``: none yet)."""
    value = getattr(holder, "crosssell_visitor", None) or _session(holder).get(SESSION_VISITOR)
    return str(value) if value else None


def variant_for(placement: str, holder: Any) -> Variant | None:
    """The variant of the placement's running experiment that this visitor sees, if any."""
    running = active_experiment(placement)
    return assign(running[0], running[1], visitor_id(holder)) if running else None


def active_experiment(placement: str) -> tuple[Experiment, list[Variant]] | None:
    """The running experiment of a placement (or of every placement), with its variants."""

    def compute() -> tuple[Experiment, list[Variant]] | None:
        exp = (
            Experiment.objects.filter(is_active=True, placement__in=[placement, ""])
            .order_by("-placement")
            .first()
        )
        if exp is None:
            return None
        variants = list(exp.variants.order_by("pk"))
        return (exp, variants) if variants else None

    return cs_cache.get_or_set(f"experiment:{placement}", compute, local=True)


def running_experiment() -> tuple[Experiment, list[Variant]] | None:
    """The experiment whose variants an order counts for (the oldest running one)."""

    def compute() -> tuple[Experiment, list[Variant]] | None:
        exp = Experiment.objects.filter(is_active=True).order_by("started_at", "pk").first()
        variants = list(exp.variants.order_by("pk")) if exp else []
        return (exp, variants) if exp and variants else None

    return cs_cache.get_or_set("experiment:running", compute, local=True)


def assign(experiment: Experiment, variants: Sequence[Variant], visitor: str) -> Variant:
    """The visitor's variant: a hash of the experiment and the visitor id, so it never changes
    while the variants and their weights stay the same."""
    digest = hashlib.sha256(f"{experiment.pk}:{experiment.name}:{visitor}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return variants[-1]


def own_variants(visitor: str, variant_ids: Iterable[int]) -> set[int]:
    """Those of ``variant_ids`` that are ``visitor``'s own: the variant :func:`assign` gives the
    visitor in its experiment, while the experiment runs (one query)."""
    wanted = {v for v in variant_ids if isinstance(v, int)}
    if not wanted:
        return set()
    experiments: dict[int, list[Variant]] = {}
    running = Experiment.objects.filter(is_active=True, variants__in=wanted)
    for v in Variant.objects.filter(experiment__in=running).select_related("experiment"):
        experiments.setdefault(v.experiment_id, []).append(v)
    own = {assign(vs[0].experiment, sorted(vs, key=lambda v: v.pk), visitor).pk
           for vs in experiments.values()}  # fmt: skip
    return own & wanted
