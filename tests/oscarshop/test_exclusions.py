"""The merchant's exclusions by category over every category of an Oscar product: an exclusion
applies when any of the product's categories matches, not only its first."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from oscar.core.loading import get_model

from crosssell.models import Build, Exclusion, Recommendation
from crosssell.services.catalog import get_catalog

pytestmark = pytest.mark.django_db
CLEARANCE = "Sale > Clearance"


@pytest.fixture
def clearance(shop, rebuilt, django_capture_on_commit_callbacks) -> str:
    """The tripod is also in "Sale > Clearance", a category created after its others: its
    first category stays "Electronics > Cameras", and no other product is in the new one."""
    category = get_model("catalogue", "Category")
    with django_capture_on_commit_callbacks(execute=True):
        sale = category.add_root(name="Sale", slug="sale")
        shop["Tripod"].categories.add(sale.add_child(name="Clearance", slug="clearance"))
    return CLEARANCE


@pytest.fixture
def never_with_clearance(shop, clearance, django_capture_on_commit_callbacks) -> Exclusion:
    """Never the clearance category with the camera."""
    with django_capture_on_commit_callbacks(execute=True):
        return Exclusion.objects.create(
            source_product=shop["Camera"], target_category=clearance, symmetric=False
        )


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "secret-pass-1")
    client.force_login(user)
    return client


def cart_ids(html: str) -> list[int]:
    parts = html.split('data-crosssell="cart-recommendations"', 1)
    if len(parts) < 2:
        return []
    return [int(i) for i in re.findall(r'data-product-id="(\d+)"', parts[1].split("</section>")[0])]


def test_the_tripods_first_category_is_another_one(shop, clearance) -> None:
    catalog = get_catalog()
    tripod = catalog.load([shop["Tripod"].pk])[shop["Tripod"].pk]
    assert catalog.category_of(tripod) == "Electronics > Cameras"
    assert catalog.categories_of(tripod)[-1] == CLEARANCE
    found = catalog.categories_for([shop["Tripod"].pk, shop["T-Shirt S"].pk, shop["Camera"].pk])
    assert found[shop["Tripod"].pk] == tuple(catalog.categories_of(tripod))
    assert found[shop["T-Shirt S"].pk] == ("Clothes",)  # a child's are its parent's
    assert found[shop["Camera"].pk] == ("Electronics > Cameras",)


def test_product_widget_and_basket_leave_out_a_product_excluded_by_its_second_category(
    client, shop, clearance, fbt, django_capture_on_commit_callbacks
) -> None:
    camera, tripod = shop["Camera"], shop["Tripod"]
    assert tripod.pk in fbt(client.get(camera.get_absolute_url()).content.decode())
    client.post(reverse("crosssell-oscar:basket-add"), {"product_id": [camera.pk]})
    assert tripod.pk in cart_ids(client.get(reverse("basket:summary")).content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        Exclusion.objects.create(source_product=camera, target_category=CLEARANCE, symmetric=False)
    shown = fbt(client.get(camera.get_absolute_url()).content.decode())
    assert tripod.pk not in shown
    assert shop["Memory Card"].pk in shown  # only the clearance category is excluded
    cart = cart_ids(client.get(reverse("basket:summary")).content.decode())
    assert cart and tripod.pk not in cart
    # the API answers the same
    url = reverse("crosssell-api:frequently-bought-together", args=[camera.pk])
    body = client.get(url).json()
    results = body["results"] if isinstance(body, dict) and "results" in body else body
    assert tripod.pk not in [r["id"] for r in results]


def test_the_admin_panel_marks_a_product_excluded_by_its_second_category(
    admin_client, shop, never_with_clearance
) -> None:
    from crosssell.services.dashboard import product_panel

    camera, tripod = shop["Camera"], shop["Tripod"]
    panel = product_panel(camera)
    assert tripod.pk in {r.target_id for r in panel.live_rows}  # the build published the pair
    assert panel.excluded == {tripod.pk}
    page = admin_client.get(reverse("admin:catalogue_product_change", args=[camera.pk]))
    html = page.content.decode()
    marked = re.findall(r'<tr class="[^"]*is-excluded[^"]*" data-cs-target="(\d+)"', html)
    assert marked and set(marked) == {str(tripod.pk)}


def test_a_rebuild_never_publishes_a_pair_excluded_by_a_second_category(
    shop, never_with_clearance
) -> None:
    from crosssell.services.build import rebuild

    rebuild(trigger="test")
    live = Recommendation.objects.filter(build__state=Build.State.LIVE, source=shop["Camera"])
    targets = set(live.values_list("target_id", flat=True))
    assert shop["Memory Card"].pk in targets
    assert shop["Tripod"].pk not in targets


def test_the_admin_category_filter_offers_oscars_paths_and_filters_by_any_of_them(
    admin_client, shop, clearance
) -> None:
    url = reverse("admin:crosssell_recommendation_changelist")
    response = admin_client.get(url)
    spec = next(s for s in response.context["cl"].filter_specs if s.title == "category")
    choices = [value for value, _ in spec.lookup_choices]
    assert {"Electronics > Cameras", "Electronics > Accessories", CLEARANCE} <= set(choices)
    response = admin_client.get(url, {"category": CLEARANCE, "build": "live"})
    assert response.status_code == 200
    rows = list(response.context["cl"].queryset)
    assert rows and {r.source_id for r in rows} == {shop["Tripod"].pk}
    # the tripod is listed under each of its categories
    cameras = admin_client.get(url, {"category": "Electronics > Cameras", "build": "live"})
    sources = {r.source_id for r in cameras.context["cl"].queryset}
    assert sources == {shop["Camera"].pk, shop["Tripod"].pk}
