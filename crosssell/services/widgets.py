"""The envelope of a served list, one rule for the template tags and the API.

A list on a placement (``"product"``, ``"cart"``, ``"also_bought"``, ``"for_you"``) is served
to a visitor in three steps, the same whoever asks: the visitor's variant of the placement's
running experiment (tracking on), that variant's own build if it has one (else the live
build), and the list cached per cache generation, per build and per tracking state. What the
caller caches (the rendered HTML of a widget, the API's serialized envelope) is its own; the
impression it records or signs uses the :class:`Assignment` returned with it. A visitor in a
holdout variant is shown nothing: the list is still computed (and cached for the others) so
that the caller answers as for anyone else otherwise (the API's 404 for a product not for
sale), then the caller shows it empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crosssell.conf import settings
from crosssell.models import Variant
from crosssell.services import cache as cs_cache
from crosssell.services import tracking

T = TypeVar("T")


@dataclass(frozen=True)
class Assignment:
    """The visitor's place in the placement's experiment, and what it serves.

    Attributes
    ----------
    variant
        The visitor's variant of the running experiment (``None``: no experiment, or not
        tracked).
    tracked
        Whether the list is tracked (``CROSSSELL_TRACKING`` on and a visitor to track).
    """

    variant: Variant | None
    tracked: bool

    @property
    def holdout(self) -> bool:
        """Whether the visitor is in a holdout variant (shown no recommendation)."""
        return self.variant is not None and bool(self.variant.holdout)

    @property
    def build_id(self) -> int | None:
        """The build the list comes from: the variant's own, else ``None`` (the live build)."""
        if self.variant is None or not self.variant.build_id:
            return None
        return int(self.variant.build_id)


def assign(placement: str, holder: Any | None) -> Assignment:
    """The :class:`Assignment` of the visitor ``holder`` carries on ``placement``.

    Parameters
    ----------
    placement
        The placement the list is shown on.
    holder
        What carries the visitor (a request with a session, or the visitor a cookie-less
        storefront names, ``tracking.acting_as``); ``None``: nobody to track (a widget
        rendered without a session).
    """
    tracked = bool(settings.TRACKING) and holder is not None
    return Assignment(tracking.variant_for(placement, holder) if tracked else None, tracked)


@dataclass(frozen=True)
class Served(Generic[T]):
    """A cached list (as the caller made it) with the assignment it was served under."""

    value: T
    assignment: Assignment

    @property
    def variant(self) -> Variant | None:
        return self.assignment.variant

    @property
    def holdout(self) -> bool:
        return self.assignment.holdout


def serve(
    placement: str, holder: Any | None, key: str, compute: Callable[[Assignment], T]
) -> Served[T]:
    """The list of ``placement`` for the visitor ``holder`` carries: assigned, then cached.

    Parameters
    ----------
    placement
        The placement (its experiment decides the variant).
    holder
        What carries the visitor (:func:`assign`); ``None``: not tracked.
    key
        What the list depends on besides the build and the tracking state (the caller's
        namespace, sources, limit...): the cache key is ``key`` with those two.
    compute
        Makes the value to cache from the assignment (its ``build_id`` is the build to serve,
        its ``tracked`` whether the list carries an impression): called on a cache miss only.
        The value is kept in the process too, so it must not be changed by the caller.

    Returns
    -------
    Served
        The value and the assignment; for a holdout visitor the caller shows nothing.
    """
    assignment = assign(placement, holder)
    full_key = f"{key}:{assignment.build_id or ''}:{int(assignment.tracked)}"
    value = cs_cache.get_or_set(full_key, lambda: compute(assignment), local=True)
    return Served(value, assignment)


__all__ = ["Assignment", "Served", "assign", "serve"]
