"""Experiment variants naming a strategy: a build of their own, served beside the live one."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import override_settings

from crosssell import tasks
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Experiment, Purchase, Recommendation, Variant
from crosssell.services import cache as cs_cache
from crosssell.services import curation
from crosssell.services.build import publish, rebuild
from crosssell.services.serving import ranked_slots, recommend
from crosssell.services.variants import build_active_variants, build_variant
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER
LIVE, READY = Build.State.LIVE, Build.State.READY


class Exploding(CoCount):
    """A variant's strategy that breaks while ranking (reached by its dotted path)."""

    name = "exploding"

    def similar_items(self, items: Any, k: int) -> Any:
        raise RuntimeError("the variant's engine broke")


@pytest.fixture
def shop() -> dict[str, Any]:
    """The mug goes with beans (40 customers) and a kettle (35), but the camera sells most (95
    orders): the blend puts the beans first for the mug, popularity the camera. (Enough orders
    that co-purchases outweigh the blend's popularity prior.)"""
    p = {
        n: make_product(n, category=c)
        for n, c in [
            ("camera", "Photo"),
            ("card", "Photo"),
            ("bag", "Photo"),
            ("beans", "Coffee"),
            ("mug", "Coffee"),
            ("kettle", "Coffee"),
            ("filter", "Coffee"),
        ]
    }
    orders = [
        ("camera", "card", 50),
        ("camera", "bag", 45),
        ("beans", "mug", 40),
        ("kettle", "mug", 35),
        ("filter", "beans", 30),
    ]
    Purchase.objects.bulk_create(
        [
            Purchase(order_ref=f"{a}-{b}-{i}", customer_ref=f"{a}-{b}-{i}", product=p[name])
            for a, b, n in orders
            for i in range(n)
            for name in (a, b)
        ]
    )
    return p


def make_experiment(
    name: str = "fbt", placement: str = "product", **strategies: str
) -> tuple[Experiment, dict[str, Variant]]:
    exp = Experiment.objects.create(name=name, placement=placement)
    variants = {"control": Variant.objects.create(experiment=exp, name="control")}
    for vname, strategy in strategies.items():
        variants[vname] = Variant.objects.create(experiment=exp, name=vname, strategy=strategy)
    variants["holdout"] = Variant.objects.create(experiment=exp, name="holdout", holdout=True)
    return exp, variants


def ids(items: list[Any]) -> list[int]:
    return [item.product.pk for item in items]


def test_a_variant_gets_a_ready_build_of_its_strategy_and_the_live_one_stays(
    shop: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    live = rebuild()
    mug = shop["mug"].pk
    live_items = recommend([mug], 4)
    assert ids(live_items)[0] == shop["beans"].pk  # the blend: bought together
    _, variants = make_experiment(popular="popularity")
    variant = variants["popular"]
    before = cs_cache.version()
    with django_capture_on_commit_callbacks(execute=True):
        build = build_variant(variant)
    assert cs_cache.version() != before  # cached experiments see the variant's new build

    assert build.state == READY and build.published_at is None
    assert build.trigger == Build.VARIANT_TRIGGER
    assert build.parameters["strategy"] == "popularity"
    assert build.variant_id == variant.pk
    assert build.counts["recommendations"] > 0
    variant.refresh_from_db()
    assert variant.build_id == build.pk
    assert Build.objects.get(state=LIVE).pk == live.pk
    assert set(
        Recommendation.objects.filter(build=build, kind=FBT).values_list("strategy", flat=True)
    ) == {"popularity"}

    served = recommend([mug], 4, build_id=build.pk)
    # Popularity: the best sellers, camera first, whatever the mug goes with.
    assert ids(served)[0] == shop["camera"].pk
    assert {i.slot.strategy for i in served} == {"popularity"}
    assert ids(served) != ids(live_items)
    # Its rows in rank order, as the build wrote them (every product is sellable here).
    rows = list(
        Recommendation.objects.filter(build=build, kind=FBT, source_id=mug)
        .order_by("rank")
        .values_list("target_id", flat=True)[:4]
    )
    assert ids(served) == rows
    # The live list, recomputed in the new cache generation, is what it was.
    assert [(i.product.pk, i.slot) for i in recommend([mug], 4)] == [
        (i.product.pk, i.slot) for i in live_items
    ]
    assert ranked_slots([mug], FBT) != ranked_slots([mug], FBT, build.pk)


def test_lists_of_two_builds_never_share_a_cache_entry(shop: dict[str, Any]) -> None:
    rebuild()
    _, variants = make_experiment(popular="popularity")
    build = build_variant(variants["popular"])
    cart = [shop["mug"].pk, shop["card"].pk]
    # Each build's list first asked for in the same cache generation, in both orders.
    live_first = ids(recommend(cart, 3))
    variant_second = ids(recommend(cart, 3, build_id=build.pk))
    cs_cache.bump()
    variant_first = ids(recommend(cart, 3, build_id=build.pk))
    live_second = ids(recommend(cart, 3))
    assert live_first == live_second
    assert variant_first == variant_second
    assert live_first != variant_first
    mug = shop["mug"].pk
    assert ranked_slots([mug], FBT)[0].product_id == shop["beans"].pk
    assert ranked_slots([mug], FBT, build.pk)[0].product_id == shop["camera"].pk


def test_the_merchants_pins_and_rejections_apply_to_a_variants_build(shop: dict[str, Any]) -> None:
    rebuild()
    mug, camera, kettle = shop["mug"], shop["camera"], shop["kettle"]
    # Decided before the variant's build: copied onto it when it is written.
    Recommendation.objects.create(source=mug, target=camera, kind=FBT, status="rejected")
    _, variants = make_experiment(popular="popularity")
    build = build_variant(variants["popular"])
    row = Recommendation.objects.get(build=build, kind=FBT, source=mug, target=camera)
    assert row.status == Recommendation.Status.REJECTED
    # Decided after it: effective at once, as on the live build.
    curation.pin(mug.pk, kettle.pk)
    served = recommend([mug.pk], 4, build_id=build.pk)
    assert camera.pk not in ids(served)
    assert ids(served)[0] == kettle.pk and served[0].slot.pinned
    assert all(s.product_id != camera.pk for s in ranked_slots([mug.pk], FBT, build.pk))


def test_every_strategy_variant_of_the_active_experiments_is_built(shop: dict[str, Any]) -> None:
    live = rebuild(strategy=CoCount())
    _, product_variants = make_experiment("fbt", "product", popular="popularity")
    _, cart_variants = make_experiment("cart", "cart", rules="rules")
    ended, ended_variants = make_experiment("old", "", cats="category_popularity")
    ended.is_active = False
    ended.save()
    stages: list[str] = []
    builds = build_active_variants(progress=lambda stage, fraction, rows: stages.append(stage))

    served = {v.name: v.build_id for v in Variant.objects.all() if v.build_id is not None}
    assert served == {"popular": builds[0].pk, "rules": builds[1].pk}
    assert [b.parameters["strategy"] for b in builds] == ["popularity", "rules"]
    assert all(b.state == READY for b in Build.objects.filter(pk__in=[b.pk for b in builds]))
    assert Build.objects.get(state=LIVE).pk == live.pk
    assert "fbt/popular: write" in stages and "cart/rules: write" in stages
    for variants in (product_variants, cart_variants, ended_variants):
        for name in ("control", "holdout"):
            variants[name].refresh_from_db()
            assert variants[name].build_id is None
    with pytest.raises(ValueError, match="needs no build"):
        build_variant(product_variants["holdout"])


@override_settings(CROSSSELL_KEEP_BUILDS=1)
def test_prune_keeps_the_builds_variants_serve(shop: dict[str, Any]) -> None:
    first_live = rebuild(strategy=CoCount())
    _, variants = make_experiment(popular="popularity")
    variant = variants["popular"]
    superseded = build_variant(variant)
    served = build_variant(variant)
    assert Build.objects.filter(pk=superseded.pk).exists()  # just replaced: not yet pruned
    lives = [rebuild(strategy=CoCount()) for _ in range(3)]

    remaining = set(Build.objects.values_list("pk", flat=True))
    # The served variant build, the live build and one previous build for rollback: a
    # variant's build takes no rollback place, and the replaced one is gone.
    assert remaining == {served.pk, lives[-1].pk, lives[-2].pk}
    assert first_live.pk not in remaining and superseded.pk not in remaining
    variant.refresh_from_db()
    assert variant.build_id == served.pk
    assert recommend([shop["mug"].pk], 1, build_id=served.pk)[0].product.pk == shop["camera"].pk

    # A build no variant serves any more (its variant deleted) goes at the next prune.
    variant.delete()
    rebuild(strategy=CoCount())
    assert not Build.objects.filter(pk=served.pk).exists()


@override_settings(CROSSSELL_KEEP_BUILDS=1)
def test_prune_keeps_a_served_build_with_a_newer_failed_one_or_once_live(
    shop: dict[str, Any],
) -> None:
    rebuild(strategy=CoCount())
    _, variants = make_experiment(popular="popularity")
    variant = variants["popular"]
    served = build_variant(variant)
    Variant.objects.filter(pk=variant.pk).update(strategy=f"{__name__}.Exploding")
    variant.refresh_from_db()
    with pytest.raises(RuntimeError):
        build_variant(variant)  # the variant's newest build is now a failed one
    for _ in range(3):
        rebuild(strategy=CoCount())
    assert Build.objects.filter(pk=served.pk).exists()
    # The merchant promotes the winner, then later builds go live: it was live once, so it is
    # a rollback candidate now, and still served.
    publish(served)
    for _ in range(3):
        rebuild(strategy=CoCount())
    assert Build.objects.get(pk=served.pk).state == READY
    variant.refresh_from_db()
    assert variant.build_id == served.pk


def test_a_failed_variant_build_keeps_the_previous_one(shop: dict[str, Any]) -> None:
    live = rebuild(strategy=CoCount())
    _, variants = make_experiment(popular="popularity")
    variant = variants["popular"]
    good = build_variant(variant)
    Variant.objects.filter(pk=variant.pk).update(strategy=f"{__name__}.Exploding")
    variant.refresh_from_db()
    with pytest.raises(RuntimeError, match="the variant's engine broke"):
        build_variant(variant)
    variant.refresh_from_db()
    assert variant.build_id == good.pk
    failed = Build.objects.get(trigger=Build.VARIANT_TRIGGER, state=Build.State.FAILED)
    assert "the variant's engine broke" in failed.error
    assert Build.objects.get(state=LIVE).pk == live.pk


@pytest.mark.parametrize(
    ("strategy", "error"),
    [
        ("nonsense", "Unknown strategy 'nonsense'"),
        ("crosssell.engine.nothing_here.Thing", "cannot import"),
        ("crosssell.engine.popularity.Nope", "has no class"),
        ("ease", "ranks items for customers"),
    ],
)
def test_clean_rejects_a_strategy_a_build_cannot_run(strategy: str, error: str) -> None:
    exp = Experiment.objects.create(name="x", placement="product")
    variant = Variant(experiment=exp, name="v", strategy=strategy)
    with pytest.raises(ValidationError) as caught:
        variant.full_clean()
    assert error in " ".join(caught.value.message_dict["strategy"])


def test_clean_accepts_names_paths_and_no_strategy() -> None:
    exp = Experiment.objects.create(name="x", placement="product")
    for strategy in ("popularity", "blend", "crosssell.engine.popularity.Popularity", ""):
        Variant(experiment=exp, name="v", strategy=strategy).full_clean()
    Variant(experiment=exp, name="h", holdout=True).full_clean()
    padded = Variant(experiment=exp, name="p", strategy=" cocount ")
    padded.full_clean()
    assert padded.strategy == "cocount"


def test_command_builds_the_variants(shop: dict[str, Any]) -> None:
    live = rebuild(strategy=CoCount())
    out, err = StringIO(), StringIO()
    call_command("crosssell_rebuild", "--variants", stdout=out, stderr=err)
    assert "nothing to do" in out.getvalue()
    assert Build.objects.count() == 1

    _, variants = make_experiment(popular="popularity")
    out, err = StringIO(), StringIO()
    call_command("crosssell_rebuild", "--variants", stdout=out, stderr=err)
    variant = Variant.objects.get(pk=variants["popular"].pk)
    assert variant.build is not None and variant.build.state == READY
    assert f"Build #{variant.build_id} (popularity) is ready for variant fbt: popular" in (
        out.getvalue()
    )
    assert "fbt/popular: write" in err.getvalue()  # the progress bar names the variant
    assert Build.objects.get(state=LIVE).pk == live.pk
    with pytest.raises(CommandError, match="does not apply"):
        call_command("crosssell_rebuild", "--variants", "--strategy", "cocount", verbosity=0)


def test_the_nightly_rebuild_task_brings_the_variants_builds_along(shop: dict[str, Any]) -> None:
    # No experiment: the rebuild alone.
    first = tasks.rebuild.delay("schedule", "cocount").get()
    assert list(Build.objects.values_list("pk", flat=True)) == [first]

    _, variants = make_experiment(popular="popularity")
    second = tasks.rebuild.delay("schedule", "cocount").get()
    assert Build.objects.get(state=LIVE).pk == second
    variant = Variant.objects.get(pk=variants["popular"].pk)
    assert variant.build is not None and variant.build.state == READY
    assert variant.build.pk > second  # computed after the live build, on the same orders
    assert tasks.rebuild_variants.delay().get() == [variant.build.pk + 1]


def test_a_variant_build_is_no_step_of_the_live_history(shop: dict[str, Any]) -> None:
    from crosssell.services import build_history

    live = rebuild(strategy=CoCount())
    variant_build = Build.objects.create(state=Build.State.READY, trigger="variant")
    later = Build.objects.create(state=Build.State.READY, trigger="manual")
    assert build_history.previous_build(later) == live
    assert variant_build not in build_history.metrics_history()
