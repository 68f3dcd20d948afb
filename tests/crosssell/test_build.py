"""The rebuild path: extract, fit, privacy filter, write, publish, roll back, prune."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt
import pytest
from django.db import transaction
from django.test import override_settings

from crosssell.engine.base import Interactions, TopK
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Purchase, Recommendation
from crosssell.services import incremental
from crosssell.services.build import publish, rebuild
from crosssell.services.purchases import Line, record_order
from crosssell.testing import buy, make_product

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER


@pytest.fixture
def shop() -> dict[str, Any]:
    """Cameras go with cards (5 customers), a tripod with a camera (2 customers only)."""
    p = {
        n: make_product(n, category=c)
        for n, c in [
            ("camera", "Photo"),
            ("card", "Photo"),
            ("bag", "Photo"),
            ("tripod", "Photo"),
            ("beans", "Coffee"),
            ("mug", "Coffee"),
        ]
    }
    for i in range(5):
        buy(f"a{i}", f"c{i}", p["camera"], p["card"])
    for i in range(3):
        buy(f"b{i}", f"d{i}", p["camera"], p["bag"])
    for i in range(2):  # two customers, several orders each: still only two customers
        buy(f"t{i}a", f"e{i}", p["camera"], p["tripod"])
        buy(f"t{i}b", f"e{i}", p["camera"], p["tripod"])
    for i in range(4):
        buy(f"k{i}", f"f{i}", p["beans"], p["mug"])
    return p


def companions(product: Any, build: Build) -> list[int]:
    """The targets stored with co-purchase evidence (not a best-seller fill)."""
    rows = Recommendation.objects.filter(build=build, kind=FBT, source=product)
    return [r.target_id for r in rows if r.evidence.get("customers")]


def targets(product: Any, build: Build | None = None) -> list[int]:
    build = build or Build.objects.get(state=Build.State.LIVE)
    return list(
        Recommendation.objects.filter(build=build, kind=FBT, source=product)
        .order_by("rank")
        .values_list("target_id", flat=True)
    )


def test_rebuild_publishes_one_live_build_with_full_lists(shop: dict[str, Any]) -> None:
    build = rebuild(strategy=CoCount())
    assert build.state == Build.State.LIVE
    assert Build.objects.filter(state=Build.State.LIVE).count() == 1
    assert build.counts["orders"] == 16 and build.counts["products"] == 6
    # Offline metrics of the strategy on held-out orders, for the admin's history and chart.
    assert {"hr@10", "recall@10", "ndcg@10", "queries", "fit_seconds"} <= set(build.metrics)
    assert 0 <= build.metrics["ndcg@10"] <= build.metrics["hr@10"] <= 1
    for product in shop.values():
        ranked = targets(product, build)
        assert product.pk not in ranked
        assert len(ranked) == len(set(ranked))
    # The camera's best companion is the card (5 orders), then the bag (3).
    assert targets(shop["camera"])[:2] == [shop["card"].pk, shop["bag"].pk]
    row = Recommendation.objects.get(
        build=build, kind=FBT, source=shop["camera"], target=shop["card"]
    )
    assert row.strategy == "cocount"
    assert row.evidence["co_count"] == 5 and row.evidence["customers"] == 5
    assert row.evidence["confidence"] == pytest.approx(5 / 12, abs=1e-6)  # 12 camera orders


def test_privacy_threshold_hides_pairs_of_fewer_customers(shop: dict[str, Any]) -> None:
    build = rebuild(strategy=CoCount())
    # Four orders hold camera + tripod, but only two customers: never published, either way
    # (a best seller may still fill a list, chosen from sales alone: with no evidence).
    assert shop["tripod"].pk not in companions(shop["camera"], build)
    assert shop["camera"].pk not in companions(shop["tripod"], build)
    with override_settings(CROSSSELL_MIN_CUSTOMERS=2):
        relaxed = rebuild(strategy=CoCount())
    assert shop["tripod"].pk in companions(shop["camera"], relaxed)


class Exploding(CoCount):
    name = "exploding"

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        raise RuntimeError("the engine broke")


def test_failed_build_leaves_the_previous_one_live(shop: dict[str, Any]) -> None:
    good = rebuild(strategy=CoCount())
    before = targets(shop["camera"])
    with pytest.raises(RuntimeError, match="the engine broke"):
        rebuild(strategy=Exploding())
    failed = Build.objects.exclude(pk=good.pk).get()
    assert failed.state == Build.State.FAILED
    assert "the engine broke" in failed.error
    assert Build.objects.get(state=Build.State.LIVE).pk == good.pk
    assert targets(shop["camera"]) == before


class OutOfRange(CoCount):
    """Proposes an item that does not exist: the write fails half way."""

    name = "out_of_range"

    def fit(self, data: Interactions) -> OutOfRange:
        super().fit(data)
        self.n_ = data.n_items
        return self

    def similar_items(self, items: npt.ArrayLike, k: int) -> TopK:
        top = super().similar_items(items, k)
        top.indices[-1, 0] = self.n_ + 5
        return top


def test_error_while_ranking_or_writing_keeps_live_build(shop: dict[str, Any]) -> None:
    good = rebuild(strategy=CoCount())
    with pytest.raises(IndexError):
        rebuild(strategy=OutOfRange())
    assert Build.objects.get(state=Build.State.LIVE).pk == good.pk
    assert not Recommendation.objects.filter(build__state=Build.State.FAILED).exists()


def test_rollback_and_roll_forward(shop: dict[str, Any]) -> None:
    first = rebuild(strategy=CoCount())
    buy("late1", "z1", shop["beans"], shop["card"])
    buy("late2", "z2", shop["beans"], shop["card"])
    buy("late3", "z3", shop["beans"], shop["card"])
    second = rebuild(strategy=CoCount())
    old, new = targets(shop["beans"], first), targets(shop["beans"], second)
    assert new[:2] == [shop["mug"].pk, shop["card"].pk] and old[1] != shop["card"].pk
    publish(first)
    assert Build.objects.get(state=Build.State.LIVE).pk == first.pk
    assert targets(shop["beans"]) == old
    second.refresh_from_db()
    assert second.state == Build.State.READY
    publish(second)
    assert Build.objects.get(state=Build.State.LIVE).pk == second.pk
    assert targets(shop["beans"]) == new


def test_failed_build_cannot_be_published(shop: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError):
        rebuild(strategy=Exploding())
    with pytest.raises(ValueError, match="only a ready build"):
        publish(Build.objects.get())


def test_curation_carries_over_to_new_builds(shop: dict[str, Any]) -> None:
    rebuild(strategy=CoCount())
    Recommendation.objects.create(
        source=shop["camera"], target=shop["card"], kind=FBT, status="rejected"
    )
    build = rebuild(strategy=CoCount())
    row = Recommendation.objects.get(
        build=build, kind=FBT, source=shop["camera"], target=shop["card"]
    )
    assert row.status == Recommendation.Status.REJECTED


@override_settings(CROSSSELL_KEEP_BUILDS=2)
def test_old_builds_are_pruned(shop: dict[str, Any]) -> None:
    builds = [rebuild(strategy=CoCount()) for _ in range(4)]
    assert set(Build.objects.values_list("pk", flat=True)) == {b.pk for b in builds[1:]}
    assert Build.objects.get(state=Build.State.LIVE).pk == builds[-1].pk


@override_settings(CROSSSELL_MIN_CUSTOMERS=1)
def test_incremental_update_puts_a_new_pair_first(shop: dict[str, Any]) -> None:
    rebuild(strategy=CoCount())
    assert targets(shop["mug"])[0] == shop["beans"].pk
    for i in range(6):
        with transaction.atomic():
            record_order(
                f"new{i}", [Line(shop["mug"].pk), Line(shop["bag"].pk)], customer_ref=f"n{i}"
            )
    incremental.process_pending()
    assert targets(shop["mug"])[0] == shop["bag"].pk
    row = Recommendation.objects.get(
        build__state=Build.State.LIVE, kind=FBT, source=shop["mug"], target=shop["bag"]
    )
    assert row.evidence == {"co_count": 6, "customers": 6, "incremental": True}


def test_record_order_is_idempotent_and_merges_lines(shop: dict[str, Any]) -> None:
    lines = [Line(shop["mug"].pk, 1), Line(shop["mug"].pk, 2), Line(shop["bag"].pk)]
    record_order("same", lines, customer_ref="u1")
    record_order("same", lines, customer_ref="u1")
    rows = Purchase.objects.filter(order_ref="same")
    assert rows.count() == 2
    assert rows.get(product=shop["mug"]).quantity == 3
    with pytest.raises(ValueError, match="quantity"):
        record_order("bad", [Line(shop["mug"].pk, 0)])


def test_also_bought_counts_customers_across_orders(shop: dict[str, Any]) -> None:
    # Three customers bought a mug in one order and a camera in another: never together in an
    # order, so not "bought together", but "customers also bought".
    for i in range(3):
        buy(f"m{i}a", f"f{i}", shop["mug"])
        buy(f"m{i}b", f"f{i}", shop["bag"])
    build = rebuild(strategy=CoCount())
    also = Recommendation.objects.filter(
        build=build, kind=Recommendation.Kind.ALSO_BOUGHT, source=shop["mug"]
    ).order_by("rank")
    row = also.get(target=shop["bag"])
    assert row.strategy == "cocount" and row.evidence["customers"] == 3
    fbt = Recommendation.objects.get(build=build, kind=FBT, source=shop["mug"], target=shop["bag"])
    assert fbt.strategy == "popularity" and fbt.evidence["co_count"] == 0
