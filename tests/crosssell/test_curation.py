"""The merchant's curation service: decisions take effect at once, survive rebuilds and
rollbacks; the bulk rule; build diffs; coverage and readiness; exclusions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Exclusion, Recommendation
from crosssell.services import build_history, curation, curation_rules, dashboard, exclusions
from crosssell.services import cache as cs_cache
from crosssell.services.build import publish, rebuild
from crosssell.services.serving import ranked_slots, recommend
from crosssell.testing import buy, camera_shop

# Transactional: decisions bump the cache generation when their transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)
FBT = Recommendation.Kind.BOUGHT_TOGETHER
Status = Recommendation.Status


@pytest.fixture
def shop() -> dict[str, Any]:
    return camera_shop()


def live_row(source: Any, target: Any) -> Recommendation:
    return Recommendation.objects.get(
        build__state=Build.State.LIVE, kind=FBT, source=source, target=target
    )


def shown(product: Any, limit: int = 4) -> list[int]:
    return [int(i.product.pk) for i in recommend([product.pk], limit)]


def test_pin_takes_effect_at_once_and_survives_a_rebuild(shop: dict[str, Any]) -> None:
    rebuild(strategy=CoCount())
    before = shown(shop["camera"])
    assert before[0] == shop["card"].pk and shop["bag"].pk in before
    curated = curation.pin(shop["camera"].pk, shop["bag"].pk)
    assert curated.build_id is None and curated.status == Status.PINNED and curated.rank == 0
    assert curated.evidence["customers"] == 3  # copied from the build row, for the admin
    assert live_row(shop["camera"], shop["bag"]).status == Status.PINNED
    slots = ranked_slots([shop["camera"].pk], FBT)
    assert (slots[0].product_id, slots[0].strategy, slots[0].pinned) == (
        shop["bag"].pk,
        "pinned",
        True,
    )
    assert shown(shop["camera"])[0] == shop["bag"].pk
    rebuild(strategy=CoCount())
    assert live_row(shop["camera"], shop["bag"]).status == Status.PINNED
    assert shown(shop["camera"])[0] == shop["bag"].pk


def test_reject_hides_the_pair_now_and_in_later_builds(shop: dict[str, Any]) -> None:
    rebuild(strategy=CoCount())
    assert shop["card"].pk in shown(shop["camera"])
    curation.reject(shop["camera"].pk, shop["card"].pk)
    assert shop["card"].pk not in shown(shop["camera"])
    assert live_row(shop["camera"], shop["card"]).status == Status.REJECTED
    rebuild(strategy=CoCount())
    assert live_row(shop["camera"], shop["card"]).status == Status.REJECTED
    assert shop["card"].pk not in shown(shop["camera"])


def test_reset_forgets_the_decision_even_with_other_decisions_cached(
    shop: dict[str, Any],
) -> None:
    rebuild(strategy=CoCount())
    camera, card, bag = shop["camera"].pk, shop["card"].pk, shop["bag"].pk
    curation.pin(camera, bag)
    assert shown(shop["camera"])[0] == bag  # cached in this generation
    curation.reject(camera, card)
    assert card not in shown(shop["camera"])
    curation.reset(camera, card)  # the newest curated row is gone again
    assert not Recommendation.objects.filter(build__isnull=True, target_id=card).exists()
    assert live_row(shop["camera"], shop["card"]).status == Status.AUTO
    assert card in shown(shop["camera"])
    curation.reset(camera, bag)
    assert [s.pinned for s in ranked_slots([camera], FBT)] == [False] * len(
        ranked_slots([camera], FBT)
    )
    assert shown(shop["camera"])[0] == card


def test_add_by_hand_and_the_order_of_pins(shop: dict[str, Any]) -> None:
    rebuild(strategy=CoCount())
    camera = shop["camera"].pk
    first = curation.add_by_hand(camera, shop["lens"].pk)  # no build row for this pair
    assert (first.strategy, first.rank) == ("manual", 0)
    curation.pin(camera, shop["filter"].pk)
    assert shown(shop["camera"])[:2] == [shop["lens"].pk, shop["filter"].pk]
    curation.pin(camera, shop["filter"].pk, rank=0)  # move it to the front
    assert shown(shop["camera"])[:2] == [shop["filter"].pk, shop["lens"].pk]
    ranks = dict(
        Recommendation.objects.filter(build__isnull=True, source_id=camera).values_list(
            "target_id", "rank"
        )
    )
    assert ranks == {shop["filter"].pk: 0, shop["lens"].pk: 1}
    # A pin that becomes a rejection leaves no gap in the pins' ranks.
    curation.reject(camera, shop["filter"].pk)
    assert Recommendation.objects.get(build__isnull=True, target=shop["lens"]).rank == 0
    assert shown(shop["camera"])[0] == shop["lens"].pk


def test_bad_requests_are_refused(shop: dict[str, Any]) -> None:
    with pytest.raises(curation.CurationError, match="itself"):
        curation.pin(shop["camera"].pk, shop["camera"].pk)
    with pytest.raises(curation.CurationError, match="No product"):
        curation.pin(shop["camera"].pk, 987654)
    with pytest.raises(curation.CurationError, match="Unknown kind"):
        curation.pin(shop["camera"].pk, shop["bag"].pk, kind="nonsense")
    assert not Recommendation.objects.exists()


def test_rollback_does_not_resurrect_an_old_decision(shop: dict[str, Any]) -> None:
    first = rebuild(strategy=CoCount())
    curation.reject(shop["camera"].pk, shop["card"].pk)
    rebuild(strategy=CoCount())
    curation.reset(shop["camera"].pk, shop["card"].pk)
    publish(first)  # roll back to the build that was live when the pair was rejected
    assert live_row(shop["camera"], shop["card"]).status == Status.AUTO
    assert shop["card"].pk in shown(shop["camera"])


def test_curate_rows_decides_each_pair_once(shop: dict[str, Any]) -> None:
    first = rebuild(strategy=CoCount())
    rebuild(strategy=CoCount())
    rows = Recommendation.objects.filter(
        kind=FBT, source=shop["camera"], target__in=[shop["card"], shop["bag"]]
    )
    assert rows.count() == 4  # two builds
    done = curation.curate_rows(rows, Status.REJECTED)
    assert len(done) == 2
    assert set(
        Recommendation.objects.filter(
            build=first, kind=FBT, source=shop["camera"], target__in=[shop["card"], shop["bag"]]
        ).values_list("status", flat=True)
    ) == {Status.REJECTED}
    assert Recommendation.objects.filter(build__isnull=True, status=Status.REJECTED).count() == 2


def test_pin_by_rule(shop: dict[str, Any]) -> None:
    with override_settings(CROSSSELL_MIN_CUSTOMERS=1):
        build = rebuild(strategy=CoCount())
    rows = Recommendation.objects.filter(build=build, kind=FBT)
    expected = {
        (r.source_id, r.target_id)
        for r in rows
        if r.evidence.get("lift", 0) >= 2.0 and r.evidence.get("customers", 0) >= 3
    }
    assert expected  # the data has pairs above the thresholds...
    assert len(expected) < rows.count()  # ...and below them
    curation.reject(shop["beans"].pk, shop["mug"].pk)
    assert (shop["beans"].pk, shop["mug"].pk) in expected
    dry = curation_rules.pin_by_rule(2.0, 3, dry_run=True)
    assert dry.matched == len(expected) and dry.skipped_rejected == 1
    assert dry.pinned == len(expected) - 1
    assert not Recommendation.objects.filter(status=Status.PINNED).exists()
    result = curation_rules.pin_by_rule(2.0, 3)
    assert result == dry
    pinned = set(
        Recommendation.objects.filter(build__isnull=True, status=Status.PINNED).values_list(
            "source_id", "target_id"
        )
    )
    assert pinned == expected - {(shop["beans"].pk, shop["mug"].pk)}
    assert live_row(shop["beans"], shop["mug"]).status == Status.REJECTED
    for s, t in pinned:
        pinned_row = Recommendation.objects.get(build=build, kind=FBT, source_id=s, target_id=t)
        assert pinned_row.status == "pinned"
    # Pins of one source are ranked 0, 1, ... in the build's order.
    for source in {s for s, _ in pinned}:
        ranks = list(
            Recommendation.objects.filter(build__isnull=True, source_id=source)
            .order_by("rank")
            .values_list("rank", flat=True)
        )
        assert ranks == list(range(len(ranks)))
    again = curation_rules.pin_by_rule(2.0, 3)
    assert again.pinned == 0 and again.already_pinned == len(pinned)
    with pytest.raises(curation.CurationError):
        curation_rules.pin_by_rule(-1, 3)


@override_settings(CROSSSELL_LIST_LENGTH=2)  # short lists, so new orders change them
def test_build_diff_counts_added_dropped_and_moved(shop: dict[str, Any]) -> None:
    first = rebuild(strategy=CoCount())
    for i in range(6):
        buy(f"late{i}", f"z{i}", shop["beans"], shop["card"])
    second = rebuild(strategy=CoCount())

    def pairs(b: Build) -> dict[tuple[str, int, int], int]:
        return {
            (r.kind, r.source_id, r.target_id): r.rank
            for r in Recommendation.objects.filter(build=b)
        }

    old, new = pairs(first), pairs(second)
    diff = build_history.build_diff(second, limit=1000)
    assert diff.previous is not None and diff.previous.pk == first.pk
    assert diff.added_count == len(new.keys() - old.keys()) > 0
    assert diff.dropped_count == len(old.keys() - new.keys()) > 0
    moved = {k for k in new.keys() & old.keys() if new[k] != old[k]}
    assert diff.moved_count == len(moved) > 0
    assert {(r.kind, r.source_id, r.target_id) for r in diff.added} == new.keys() - old.keys()
    assert {(r.kind, r.source_id, r.target_id): r.old_rank for r in diff.moved} == {  # type: ignore[attr-defined]
        k: old[k] for k in moved
    }
    assert (FBT, shop["beans"].pk, shop["card"].pk) in {
        (r.kind, r.source_id, r.target_id) for r in diff.added
    } | moved
    assert build_history.build_diff(first).previous is None
    assert not build_history.build_diff(second, second).changed


def test_coverage_and_readiness(shop: dict[str, Any]) -> None:
    empty = dashboard.coverage()
    assert empty.sellable == 9 and empty.some_real == 0 and empty.only_fallback == 9
    build = rebuild(strategy=CoCount())
    cov = dashboard.coverage(limit=2)
    # Independently: sellable sources with >= 1 / >= 2 live cocount rows.
    real: dict[int, int] = {}
    for r in Recommendation.objects.filter(build=build, kind=FBT).exclude(
        strategy__in=dashboard.FALLBACK_STRATEGIES
    ):
        real[r.source_id] = real.get(r.source_id, 0) + 1
    assert cov.some_real == len(real) > 0
    assert cov.full == sum(1 for n in real.values() if n >= 2)
    assert cov.only_fallback == 9 - len(real)
    # A pin by hand gives an unsold product a real recommendation.
    curation.pin(shop["poster"].pk, shop["mug"].pk)
    assert dashboard.coverage(limit=2).some_real == cov.some_real + 1
    ready = dashboard.readiness()
    assert (ready.orders, ready.lines, ready.customers) == (
        15,
        33,
        15,
    )  # 5x2 + 3x2 + 3x3 + 4x2 lines
    assert ready.products_with_sales == 6 and ready.products == 9
    assert ready.live_build is not None and ready.live_build.pk == build.pk
    assert ready.live_age is not None and ready.live_age.total_seconds() >= 0


def test_metric_series_keeps_numbers_only(shop: dict[str, Any]) -> None:
    a = rebuild(strategy=CoCount())
    b = rebuild(strategy=CoCount())
    Build.objects.filter(pk=a.pk).update(metrics={"hit_rate": 0.25, "note": "x", "ok": True})
    Build.objects.filter(pk=b.pk).update(metrics={"hit_rate": 0.5, "fit_seconds": 2})
    series = build_history.metric_series(build_history.metrics_history())
    assert series == {"fit_seconds": [(b.pk, 2.0)], "hit_rate": [(a.pk, 0.25), (b.pk, 0.5)]}


def test_exclusions(shop: dict[str, Any]) -> None:
    camera, card, mug, beans = (shop[n].pk for n in ("camera", "card", "mug", "beans"))
    assert not exclusions.is_excluded(camera, card)
    Exclusion.objects.create(source_product=shop["camera"], target_product=shop["card"])
    curation.bump()
    assert exclusions.is_excluded(camera, card) and exclusions.is_excluded(card, camera)
    Exclusion.objects.create(source_category="Coffee", target_category="Photo", symmetric=False)
    curation.bump()
    assert exclusions.is_excluded(mug, camera) and not exclusions.is_excluded(camera, mug)
    pairs = exclusions.excluded_pairs([beans, camera], [card, mug, shop["poster"].pk])
    assert pairs == {(beans, card), (camera, card)}
    assert exclusions.excluded_targets([beans], [card, mug]) == {card}


def test_bump_always_starts_a_new_generation(shop: dict[str, Any]) -> None:
    before = cs_cache.version()
    curation.bump()
    middle = cs_cache.version()
    curation.bump()
    assert len({before, middle, cs_cache.version()}) == 3


def test_pins_keep_the_merchants_order_over_build_ranks(shop: dict[str, Any]) -> None:
    rebuild(strategy=CoCount())
    camera = shop["camera"].pk
    assert shown(shop["camera"])[:2] == [shop["card"].pk, shop["bag"].pk]
    curation.pin(camera, shop["bag"].pk)  # first pin: rank 0 among pins, rank 1 in the build
    curation.pin(camera, shop["card"].pk)  # second pin: rank 1 among pins, rank 0 in the build
    assert shown(shop["camera"])[:2] == [shop["bag"].pk, shop["card"].pk]


def test_rejecting_a_fallback_slot_hides_it(shop: dict[str, Any]) -> None:
    lens = shop["lens"]
    bestseller = shown(lens)[0]  # no build yet: bestsellers only
    curation.reject(lens.pk, bestseller)
    assert bestseller not in shown(lens)
