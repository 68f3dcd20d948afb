"""The incremental update (crosssell.services.incremental.update_products) rewrites a product's
live list with today's co-purchase counts, and keeps the merchant's decisions on its rows."""

from __future__ import annotations

import pytest

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Recommendation
from crosssell.services import curation
from crosssell.services.build import rebuild
from crosssell.services.incremental import update_products
from crosssell.testing import buy, camera_shop

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER
Status = Recommendation.Status


def live_status(source: int, target: int) -> str:
    row = Recommendation.objects.get(
        build__state=Build.State.LIVE, kind=FBT, source_id=source, target_id=target
    )
    return str(row.status)


def test_an_update_keeps_pinned_and_rejected_statuses() -> None:
    p = camera_shop()
    camera, card, bag = p["camera"], p["card"], p["bag"]
    rebuild(strategy=CoCount())
    curation.reject(camera.pk, card.pk)
    curation.pin(camera.pk, bag.pk)
    assert live_status(camera.pk, card.pk) == Status.REJECTED
    assert live_status(camera.pk, bag.pk) == Status.PINNED
    # New orders change both pairs' counts (three new customers each): the list is rewritten.
    for i in range(3):
        buy(f"new-card-{i}", f"new-c{i}", camera, card)
        buy(f"new-bag-{i}", f"new-b{i}", camera, bag)
    assert update_products([camera.pk]) > 0
    rows = Recommendation.objects.filter(build__state=Build.State.LIVE, kind=FBT, source=camera)
    counts = {r.target_id: r.evidence.get("co_count") for r in rows}
    assert counts[card.pk] == 11 and counts[bag.pk] == 6  # the fresh counts are in
    assert live_status(camera.pk, card.pk) == Status.REJECTED
    assert live_status(camera.pk, bag.pk) == Status.PINNED
