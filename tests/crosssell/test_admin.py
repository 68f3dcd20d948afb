"""The merchant's admin: lists, filters, actions, the product panel, exclusions, builds, the
overview, permissions and the admin history."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crosssell.admin.common import product_model_registered
from crosssell.admin.recommendations import RecommendationAdmin
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import (
    Build,
    Exclusion,
    Purchase,
    Recommendation,
    get_product_model,
    product_field,
)
from crosssell.services import build_history, curation, curation_rules, dashboard, exclusions
from crosssell.services.build import rebuild
from crosssell.services.serving import recommend
from crosssell.testing import camera_shop, make_product

# Transactional: decisions bump the cache generation when their transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)
FBT = Recommendation.Kind.BOUGHT_TOGETHER
Status = Recommendation.Status
CHANGELIST = "admin:crosssell_recommendation_changelist"
# A shop with its own product model (tests.settings_swapped) has no product admin here.
needs_product_admin = pytest.mark.skipif(
    not product_model_registered(admin.site),
    reason="the product model has no admin with search fields in this project",
)


@pytest.fixture
def shop() -> dict[str, Any]:
    p = camera_shop()
    rebuild(strategy=CoCount())
    return p


@pytest.fixture
def boss() -> Client:
    User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.login(username="boss", password="pw")
    return client


@pytest.fixture
def viewer() -> Client:
    """Staff with only view permissions (crosssell's models and the products)."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    product = get_product_model()._meta
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="crosssell", codename__startswith="view_")
        | Permission.objects.filter(
            content_type__app_label=product.app_label, codename=f"view_{product.model_name}"
        )
    )
    client = Client()
    client.login(username="viewer", password="pw")
    return client


def row(source: Any, target: Any) -> Recommendation:
    return Recommendation.objects.get(
        build__state=Build.State.LIVE, kind=FBT, source=source, target=target
    )


def targets_in(html: str, container: str = "cs-slots") -> list[int]:
    block = html.split(f'class="{container}"', 1)[1].split("</ol>", 1)[0]
    return [int(x) for x in re.findall(r'data-cs-target="(\d+)"', block)]


# --------------------------------------------------------------------------- the changelist


def test_changelist_shows_products_evidence_and_status(shop: dict[str, Any], boss: Client) -> None:
    response = boss.get(reverse(CHANGELIST), {"build": "live"})
    assert response.status_code == 200
    html = response.content.decode()
    r = row(shop["camera"], shop["card"])
    assert "SKU-CAMERA" in html and "camera" in html
    assert f"{100 * r.evidence['confidence']:.1f}%" in html  # confidence column
    assert f"{r.evidence['lift']:.2f}" in html
    for column in ("co-count", "kind", "confidence", "lift", "customers", "status", "build"):
        assert f">{column}<" in html.lower() or f">{column.capitalize()}<" in html
    assert 'class="cs-thumb cs-thumb-empty"' in html  # no image: a coloured initial


@pytest.mark.skipif(not product_field("image"), reason="the product model maps no image")
def test_changelist_shows_an_image_thumbnail_when_mapped(
    shop: dict[str, Any], boss: Client
) -> None:
    get_product_model()._default_manager.filter(pk=shop["card"].pk).update(
        **{str(product_field("image")): "https://img.example/card.jpg"}
    )
    html = boss.get(reverse(CHANGELIST), {"build": "live"}).content.decode()
    assert '<img class="cs-thumb" src="https://img.example/card.jpg"' in html


def listed(client: Client, **params: Any) -> set[int]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200, response.content[:500]
    return {
        int(pk)
        for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())
    }


def test_filters_and_search(shop: dict[str, Any], boss: Client) -> None:
    live = Build.objects.get(state=Build.State.LIVE)
    everything = set(Recommendation.objects.values_list("pk", flat=True))
    RecommendationAdmin.list_per_page = 500
    try:
        assert listed(boss) == everything
        curation.pin(shop["camera"].pk, shop["lens"].pk)
        curated = set(
            Recommendation.objects.filter(build__isnull=True).values_list("pk", flat=True)
        )
        assert listed(boss, build="curated") == curated
        assert listed(boss, build="live") == set(
            Recommendation.objects.filter(build=live).values_list("pk", flat=True)
        )
        assert listed(boss, build=str(live.pk)) == listed(boss, build="live")
        assert listed(boss, status="pinned") == set(
            Recommendation.objects.filter(status="pinned").values_list("pk", flat=True)
        )
        assert listed(boss, kind=FBT) == set(
            Recommendation.objects.filter(kind=FBT).values_list("pk", flat=True)
        )
        assert listed(boss, strategy="cocount") == set(
            Recommendation.objects.filter(strategy="cocount").values_list("pk", flat=True)
        )
        coffee = listed(boss, category="Coffee")
        assert coffee and coffee == set(
            Recommendation.objects.filter(
                **{f"source__{product_field('category')}": "Coffee"}
            ).values_list("pk", flat=True)
        )
        by_sku = listed(boss, q="SKU-BEANS")
        assert by_sku == set(
            Recommendation.objects.filter(source=shop["beans"]).values_list("pk", flat=True)
        ) | set(Recommendation.objects.filter(target=shop["beans"]).values_list("pk", flat=True))
        assert listed(boss, q="tripod") == set(
            Recommendation.objects.filter(source=shop["tripod"]).values_list("pk", flat=True)
        ) | set(Recommendation.objects.filter(target=shop["tripod"]).values_list("pk", flat=True))
    finally:
        RecommendationAdmin.list_per_page = 50


def first_shown(product: Any) -> int:
    return int(recommend([product.pk], 4)[0].product.pk)


def test_changelist_queries_do_not_grow_with_the_page_size(boss: Client) -> None:
    products = [make_product(f"p{i}", category=f"C{i % 3}") for i in range(12)]
    for i in range(40):
        a, b, c = products[i % 12], products[(i + 1) % 12], products[(i + 5) % 12]
        Purchase.objects.bulk_create(
            [Purchase(order_ref=f"o{i}", customer_ref=f"u{i}", product_id=p.pk) for p in (a, b, c)]
        )
    rebuild(strategy=CoCount())
    assert Recommendation.objects.count() >= 50

    def queries(per_page: int) -> int:
        RecommendationAdmin.list_per_page = per_page
        try:
            with CaptureQueriesContext(connection) as ctx:
                response = boss.get(reverse(CHANGELIST))
            assert response.status_code == 200
            assert (
                len(re.findall(r'name="_selected_action"', response.content.decode())) == per_page
            )
            return len(ctx.captured_queries)
        finally:
            RecommendationAdmin.list_per_page = 50

    assert queries(10) == queries(50)


# --------------------------------------------------------------------------- bulk actions


def post_action(client: Client, action: str, rows: list[Recommendation]) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [r.pk for r in rows], "index": 0},
        follow=True,
    )


def test_bulk_pin_reject_reset_with_history(shop: dict[str, Any], boss: Client) -> None:
    bag, card = row(shop["camera"], shop["bag"]), row(shop["camera"], shop["card"])
    response = post_action(boss, "pin_selected", [bag])
    assert "Pinned: 1" in response.content.decode()
    assert first_shown(shop["camera"]) == shop["bag"].pk
    post_action(boss, "reject_selected", [card])
    assert shop["card"].pk not in [i.product.pk for i in recommend([shop["camera"].pk], 4)]
    assert row(shop["camera"], shop["card"]).status == Status.REJECTED
    post_action(boss, "reset_selected", [bag, card])
    assert not Recommendation.objects.filter(build__isnull=True).exists()
    assert {row(shop["camera"], t).status for t in (shop["bag"], shop["card"])} == {Status.AUTO}
    messages = list(LogEntry.objects.order_by("pk").values_list("object_id", "change_message"))
    assert messages[:2] == [(str(bag.pk), "Pinned"), (str(card.pk), "Rejected")]
    assert sorted(messages[2:]) == sorted(
        [(str(bag.pk), "Reset to automatic"), (str(card.pk), "Reset to automatic")]
    )


def test_pin_rule_page_previews_then_pins(shop: dict[str, Any], boss: Client) -> None:
    url = reverse("admin:crosssell_recommendation_pin_rule")
    assert boss.get(url).status_code == 200
    expected = curation_rules.pin_by_rule(1.0, 3, dry_run=True)
    assert expected.pinned > 0
    preview = boss.post(url, {"min_lift": 1.0, "min_customers": 3, "kind": FBT, "preview": 1})
    assert f"<b>{expected.matched}</b> pair" in preview.content.decode()
    assert not Recommendation.objects.filter(status=Status.PINNED).exists()
    done = boss.post(url, {"min_lift": 1.0, "min_customers": 3, "kind": FBT, "apply": 1})
    assert done.status_code == 302
    assert Recommendation.objects.filter(build__isnull=True, status="pinned").count() == (
        expected.pinned
    )
    assert LogEntry.objects.filter(change_message__startswith="Pinned by rule").count() == (
        expected.pinned
    )


# --------------------------------------------------------------------------- the product page


def product_url(product: Any) -> str:
    opts = product._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[product.pk])


@needs_product_admin
def test_product_panel_shows_the_widget_in_serving_order(
    shop: dict[str, Any], boss: Client
) -> None:
    curation.pin(shop["beans"].pk, shop["poster"].pk)  # a pin by hand, no build row
    html = boss.get(product_url(shop["beans"])).content.decode()
    expected = [i.product.pk for i in recommend([shop["beans"].pk], 4, category="Coffee")]
    assert targets_in(html) == expected
    assert expected[0] == shop["poster"].pk
    slots = html.split('class="cs-slots"', 1)[1].split("</ol>", 1)[0]
    assert ">pinned<" in slots and ">cocount<" in slots  # provenance
    # An unsold product shows only fallbacks, and says which.
    lonely = boss.get(product_url(shop["lens"])).content.decode()
    panel = lonely.split('class="cs-slots"', 1)[1].split("</ol>", 1)[0]
    assert panel.count('class="cs-slot is-fallback"') == len(targets_in(lonely)) == 4
    assert "popularity" in panel and "cocount" not in panel
    assert "admin-autocomplete" in html  # adding by hand: the target autocompletes


@needs_product_admin
def test_product_panel_buttons_pin_reject_and_reset(shop: dict[str, Any], boss: Client) -> None:
    url = reverse("admin:crosssell_recommendation_curate")
    page = product_url(shop["camera"])
    html = boss.get(page).content.decode()
    assert f"{url}?op=reject&amp;source={shop['camera'].pk}&amp;target={shop['card'].pk}" in html
    camera = shop["camera"].pk
    response = boss.post(
        f"{url}?op=reject&source={camera}&target={shop['card'].pk}&kind={FBT}&next={page}"
    )
    assert response.status_code == 302 and response["Location"] == page
    html = boss.get(page).content.decode()
    assert shop["card"].pk not in targets_in(html)
    boss.post(url, {"op": "pin", "source": camera, "target": shop["filter"].pk, "kind": FBT})
    html = boss.get(page).content.decode()
    assert targets_in(html)[0] == shop["filter"].pk
    boss.post(url, {"op": "reset", "source": camera, "target": shop["card"].pk, "kind": FBT})
    assert shop["card"].pk in targets_in(boss.get(page).content.decode())
    assert LogEntry.objects.count() == 3
    bad = boss.post(url, {"op": "pin", "source": camera, "target": camera, "kind": FBT})
    assert (
        bad.status_code == 302
        and not Recommendation.objects.filter(target_id=camera, build=None).exists()
    )


def product_form_data(product: Any) -> dict[str, Any]:
    """The product's own change form as the browser would post it unchanged."""
    model_admin = admin.site._registry[type(product)]
    request = RequestFactory().get("/")
    request.user = User.objects.get(username="boss")
    form = model_admin.get_form(request, product, change=True)(instance=product)
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    return data


def inline_data(html: str) -> dict[str, str]:
    """The management form of the curated-rows inline, from the page."""
    prefix = re.search(r'name="([^"]+)-TOTAL_FORMS"', html)
    assert prefix is not None
    p = prefix.group(1)
    initial = re.search(rf'name="{re.escape(p)}-INITIAL_FORMS"[^>]*value="(\d+)"', html)
    initial = initial or re.search(rf'value="(\d+)"[^>]*name="{re.escape(p)}-INITIAL_FORMS"', html)
    assert initial is not None
    return {"prefix": p, "initial": initial.group(1)}


@needs_product_admin
def test_add_by_hand_through_the_product_inline(shop: dict[str, Any], boss: Client) -> None:
    product = shop["mug"]
    page = product_url(product)
    info = inline_data(boss.get(page).content.decode())
    p = info["prefix"]
    data = {
        **product_form_data(product),
        f"{p}-TOTAL_FORMS": "1", f"{p}-INITIAL_FORMS": info["initial"],
        f"{p}-MIN_NUM_FORMS": "0", f"{p}-MAX_NUM_FORMS": "1000",
        f"{p}-0-target": str(shop["lens"].pk), f"{p}-0-kind": FBT, f"{p}-0-status": "pinned",
        f"{p}-0-rank": "0", f"{p}-0-id": "", f"{p}-0-source": str(product.pk),
    }  # fmt: skip
    response = boss.post(page, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    curated = Recommendation.objects.get(build__isnull=True, source=product)
    assert (curated.target_id, curated.status) == (shop["lens"].pk, Status.PINNED)
    assert first_shown(product) == shop["lens"].pk
    # Deleting the inline row resets the pair.
    data.update({f"{p}-INITIAL_FORMS": "1", f"{p}-0-id": str(curated.pk), f"{p}-0-DELETE": "on"})
    assert boss.post(page, data).status_code == 302
    assert not Recommendation.objects.filter(build__isnull=True).exists()


def test_add_by_hand_through_the_add_form(shop: dict[str, Any], boss: Client) -> None:
    url = reverse("admin:crosssell_recommendation_add")
    form = boss.get(url).content.decode()
    assert ("admin-autocomplete" in form) == product_model_registered(admin.site)
    response = boss.post(
        url,
        {
            "source": shop["beans"].pk,
            "target": shop["poster"].pk,
            "kind": FBT,
            "status": "pinned",
            "rank": 0,
        },
    )
    assert response.status_code == 302
    row_ = Recommendation.objects.get(build__isnull=True, source=shop["beans"])
    assert row_.target_id == shop["poster"].pk
    assert first_shown(shop["beans"]) == shop["poster"].pk
    assert LogEntry.objects.filter(object_id=str(row_.pk)).exists()


def test_change_and_delete_a_decision_in_its_own_form(shop: dict[str, Any], boss: Client) -> None:
    curated = curation.pin(shop["camera"].pk, shop["bag"].pk)
    url = reverse("admin:crosssell_recommendation_change", args=[curated.pk])
    response = boss.post(url, {"status": "rejected", "rank": 0})
    assert response.status_code == 302
    assert row(shop["camera"], shop["bag"]).status == Status.REJECTED
    assert shop["bag"].pk not in [i.product.pk for i in recommend([shop["camera"].pk], 4)]
    delete = reverse("admin:crosssell_recommendation_delete", args=[curated.pk])
    assert boss.post(delete, {"post": "yes"}).status_code == 302
    assert row(shop["camera"], shop["bag"]).status == Status.AUTO  # deleting = reset
    assert shop["bag"].pk in [i.product.pk for i in recommend([shop["camera"].pk], 4)]
    # A build's own row is read only and cannot be deleted.
    build_row = row(shop["camera"], shop["card"])
    page = boss.get(reverse("admin:crosssell_recommendation_change", args=[build_row.pk]))
    assert page.status_code == 200 and 'name="status"' not in page.content.decode()
    gone = reverse("admin:crosssell_recommendation_delete", args=[build_row.pk])
    assert boss.post(gone, {"post": "yes"}).status_code == 403
    assert Recommendation.objects.filter(pk=build_row.pk).exists()


@needs_product_admin
def test_autocomplete_searches_products(shop: dict[str, Any], boss: Client) -> None:
    response = boss.get(
        reverse("admin:autocomplete"),
        {
            "term": "cam",
            "app_label": "crosssell",
            "model_name": "recommendation",
            "field_name": "target",
        },
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["camera"]


# --------------------------------------------------------------------------- exclusions


def test_exclusion_admin(shop: dict[str, Any], boss: Client) -> None:
    url = reverse("admin:crosssell_exclusion_add")
    assert boss.get(url).status_code == 200
    response = boss.post(
        url,
        {"source_product": shop["camera"].pk, "source_category": "", "target_product": "",
         "target_category": "Coffee", "symmetric": "on", "note": "no coffee with cameras"},
    )  # fmt: skip
    assert response.status_code == 302
    assert exclusions.is_excluded(shop["mug"].pk, shop["camera"].pk)
    html = boss.get(reverse("admin:crosssell_exclusion_changelist")).content.decode()
    assert "Coffee (category)" in html and "camera" in html
    bad = boss.post(url, {"source_category": "Photo", "symmetric": "on"})
    assert bad.status_code == 400 and Exclusion.objects.count() == 1  # both sides needed
    exclusion = Exclusion.objects.get()
    boss.post(reverse("admin:crosssell_exclusion_delete", args=[exclusion.pk]), {"post": "yes"})
    assert not exclusions.is_excluded(shop["mug"].pk, shop["camera"].pk)  # cache bumped


# --------------------------------------------------------------------------- builds


def test_builds_list_and_diff(shop: dict[str, Any], boss: Client) -> None:
    first = Build.objects.get(state=Build.State.LIVE)
    Build.objects.filter(pk=first.pk).update(metrics={"hit_rate@4": 0.31, "fit_seconds": 0.01})
    for i in range(6):
        Purchase.objects.create(order_ref=f"x{i}", customer_ref=f"x{i}", product=shop["beans"])
        Purchase.objects.create(order_ref=f"x{i}", customer_ref=f"x{i}", product=shop["card"])
    second = rebuild(strategy=CoCount())
    html = boss.get(reverse("admin:crosssell_build_changelist")).content.decode()
    assert f"#{second.pk}" in html and "hit_rate@4" in html and "0.31" in html
    assert f"{second.counts['lines']:,}" in html
    page = boss.get(reverse("admin:crosssell_build_change", args=[second.pk])).content.decode()
    diff = build_history.build_diff(second)
    assert f"build #{first.pk}" in page
    assert 'name="_save"' not in page  # a build is read only
    assert f"<b>{diff.added_count}</b><span>pairs added" in page
    assert f"<b>{diff.moved_count}</b><span>pairs moved" in page
    progress = boss.get(reverse("admin:crosssell_build_progress", args=[second.pk])).json()
    assert progress["state"] == "live" and progress["percent"] == 100


def test_running_build_shows_progress_that_polls(shop: dict[str, Any], boss: Client) -> None:
    running = Build.objects.create(
        state=Build.State.RUNNING, progress={"stage": "fit", "percent": 42.0, "rows": 1234}
    )
    page = boss.get(reverse("admin:crosssell_build_change", args=[running.pk])).content.decode()
    assert 'data-cs-progress="' in page and "progress.js" in page
    assert "width: 42%" in page and ">1234<" in page
    data = boss.get(reverse("admin:crosssell_build_progress", args=[running.pk])).json()
    assert (data["stage"], data["percent"], data["rows"]) == ("fit", 42.0, 1234)
    listing = boss.get(reverse("admin:crosssell_build_changelist")).content.decode()
    assert "fit 42%" in listing


def test_rollback_and_roll_forward_through_the_admin(shop: dict[str, Any], boss: Client) -> None:
    first = Build.objects.get(state=Build.State.LIVE)
    for i in range(6):
        Purchase.objects.create(order_ref=f"x{i}", customer_ref=f"x{i}", product=shop["beans"])
        Purchase.objects.create(order_ref=f"x{i}", customer_ref=f"x{i}", product=shop["card"])
    second = rebuild(strategy=CoCount())
    new = [i.product.pk for i in recommend([shop["card"].pk], 4)]
    response = boss.post(
        reverse("admin:crosssell_build_changelist"),
        {"action": "make_live", "_selected_action": [first.pk], "index": 0},
        follow=True,
    )
    assert "rolled back" in response.content.decode()
    assert Build.objects.get(state=Build.State.LIVE).pk == first.pk
    old = [i.product.pk for i in recommend([shop["card"].pk], 4)]
    assert old != new  # the widget serves the older build at once
    page = boss.get(reverse("admin:crosssell_build_change", args=[second.pk])).content.decode()
    assert reverse("admin:crosssell_build_publish", args=[second.pk]) in page  # "Make live"
    response = boss.post(reverse("admin:crosssell_build_publish", args=[second.pk]), follow=True)
    assert "rolled forward" in response.content.decode()
    assert Build.objects.get(state=Build.State.LIVE).pk == second.pk
    assert [i.product.pk for i in recommend([shop["card"].pk], 4)] == new
    assert list(LogEntry.objects.order_by("pk").values_list("object_id", flat=True)) == [
        str(first.pk),
        str(second.pk),
    ]
    # Two builds at once is refused; a live build cannot be deleted.
    response = boss.post(
        reverse("admin:crosssell_build_changelist"),
        {"action": "make_live", "_selected_action": [first.pk, second.pk], "index": 0},
        follow=True,
    )
    assert "exactly one" in response.content.decode()
    assert boss.post(reverse("admin:crosssell_build_delete", args=[second.pk])).status_code == 403


def test_rebuild_now_queues_a_rebuild(shop: dict[str, Any], boss: Client) -> None:
    before = Build.objects.count()
    response = boss.post(reverse("admin:crosssell_build_rebuild"), follow=True)
    assert response.status_code == 200
    latest = Build.objects.order_by("-created_at", "-pk").first()
    assert Build.objects.count() == before + 1  # eager in tests: the rebuild ran
    assert latest is not None and latest.trigger == "admin" and latest.state == Build.State.LIVE
    assert LogEntry.objects.filter(change_message__startswith="Rebuild requested").count() == 1
    assert boss.get(reverse("admin:crosssell_build_rebuild")).status_code == 405


# --------------------------------------------------------------------------- the overview


def test_overview_page(shop: dict[str, Any], boss: Client) -> None:
    Build.objects.filter(state=Build.State.LIVE).update(metrics={"ndcg@4": 0.2})
    rebuild(strategy=CoCount())
    Build.objects.filter(state=Build.State.LIVE).update(metrics={"ndcg@4": 0.3})
    app = boss.get(reverse("admin:app_list", args=["crosssell"])).content.decode()
    url = reverse("admin:crosssell_overview")
    assert url in app
    html = boss.get(url).content.decode()
    cov = dashboard.coverage()
    assert f"{cov.some_real_share:.0%}" in html and f"{cov.only_fallback_share:.0%}" in html
    assert "<svg" in html and "ndcg@4" in html and "polyline" in html
    ready = dashboard.readiness()
    assert f"<dd>{ready.orders:,}" in html and f"<dd>{ready.lines:,}" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from a CDN: offline


def test_overview_without_any_build(boss: Client) -> None:
    html = boss.get(reverse("admin:crosssell_overview")).content.decode()
    assert "no live build" in html and "No orders yet" in html


# --------------------------------------------------------------------------- permissions


def test_view_only_staff_can_look_but_not_change(shop: dict[str, Any], viewer: Client) -> None:
    bag = row(shop["camera"], shop["bag"])
    response = viewer.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert "pin_selected" not in html and "reject_selected" not in html
    refused = viewer.post(
        reverse(CHANGELIST), {"action": "pin_selected", "_selected_action": [bag.pk], "index": 0}
    )
    assert refused.status_code in (200, 302, 403)
    assert row(shop["camera"], shop["bag"]).status == Status.AUTO
    curate = reverse("admin:crosssell_recommendation_curate")
    data = {"op": "pin", "source": shop["camera"].pk, "target": shop["bag"].pk, "kind": FBT}
    assert viewer.post(curate, data).status_code == 403
    rule = reverse("admin:crosssell_recommendation_pin_rule")
    assert viewer.get(rule).status_code == 200
    assert (
        viewer.post(rule, {"min_lift": 1, "min_customers": 1, "kind": FBT, "apply": 1}).status_code
        == 403
    )
    first = Build.objects.get(state=Build.State.LIVE)
    assert viewer.post(reverse("admin:crosssell_build_rebuild")).status_code == 403
    assert viewer.post(reverse("admin:crosssell_build_publish", args=[first.pk])).status_code == 403
    builds = viewer.get(reverse("admin:crosssell_build_changelist")).content.decode()
    assert "Rebuild now" not in builds and "make_live" not in builds
    assert viewer.get(reverse("admin:crosssell_overview")).status_code == 200
    assert viewer.get(reverse("admin:crosssell_exclusion_add")).status_code == 403
    assert not Recommendation.objects.filter(build__isnull=True).exists()
    assert not LogEntry.objects.exists()


@needs_product_admin
def test_view_only_staff_sees_the_product_panel_without_buttons(
    shop: dict[str, Any], viewer: Client
) -> None:
    user = User.objects.get(username="viewer")
    page = viewer.get(product_url(shop["camera"])).content.decode()
    assert 'class="cs-slots"' in page and "cs-btn-pin" not in page
    assert user.has_perm("crosssell.view_recommendation")


def test_staff_without_any_permission_is_refused(shop: dict[str, Any]) -> None:
    User.objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.login(username="nobody", password="pw")
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse("admin:crosssell_overview")).status_code == 403
    first = Build.objects.get(state=Build.State.LIVE)
    assert client.get(reverse("admin:crosssell_build_progress", args=[first.pk])).status_code == 403
