"""The crosssell admin pages and the API in the Oscar project; Oscar's hand-made
recommendations as pins."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from oscar.core.loading import get_model

from crosssell.models import Recommendation

pytestmark = pytest.mark.django_db
ProductRecommendation = get_model("catalogue", "ProductRecommendation")


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "secret-pass-1")
    client.force_login(user)
    return client


def test_crosssell_admin_pages_open(admin_client, shop, rebuilt) -> None:
    from django.contrib import admin

    urls = [reverse("admin:index"), reverse("admin:app_list", args=["crosssell"])]
    for model in admin.site._registry:
        if model._meta.app_label == "crosssell":
            urls.append(reverse(f"admin:crosssell_{model._meta.model_name}_changelist"))
    urls.append(reverse("admin:crosssell_recommendation_add"))
    urls.append(reverse("admin:crosssell_overview"))
    urls.append(reverse("admin:crosssell_build_change", args=[rebuilt.pk]))
    camera = shop["Camera"]
    urls.append(reverse("admin:catalogue_product_change", args=[camera.pk]))
    urls.append(reverse("admin:catalogue_product_changelist"))
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get(reverse("admin:catalogue_product_change", args=[camera.pk]))
    assert b"cs-panel" in page.content  # crosssell's recommendations panel on Oscar's product


def test_the_api_answers_with_oscars_products(client, shop, rebuilt) -> None:
    camera = shop["Camera"]
    url = reverse("crosssell-api:frequently-bought-together", args=[camera.pk])
    response = client.get(url)
    assert response.status_code == 200
    body = response.json()
    results = body["results"] if isinstance(body, dict) and "results" in body else body
    ids = [r["id"] for r in results]
    assert len(ids) >= 4 and camera.pk not in ids
    tripod = next(r for r in results if r["id"] == shop["Tripod"].pk)
    assert "1249.99" in str(tripod["price"])
    cart = client.post(
        reverse("crosssell-api:cart"),
        {"product_ids": [camera.pk, shop["Memory Card"].pk]},
        content_type="application/json",
    )
    assert cart.status_code == 200, cart.content
    cart_ids = [r["id"] for r in cart.json()["results"]]
    assert cart_ids and not {camera.pk, shop["Memory Card"].pk} & set(cart_ids)


def test_oscars_recommendations_come_first_as_pins_shown_as_oscars(
    admin_client, shop, rebuilt, fbt, django_capture_on_commit_callbacks
) -> None:
    camera = shop["Camera"]
    with django_capture_on_commit_callbacks(execute=True):
        ProductRecommendation.objects.create(
            primary=camera, recommendation=shop["Photo Guide"], ranking=5
        )
        ProductRecommendation.objects.create(
            primary=camera, recommendation=shop["Lens Cloth"], ranking=9
        )
    html = admin_client.get(camera.get_absolute_url()).content.decode()
    shown = fbt(html)
    # Oscar shows the highest ranking first; so does the widget, before the computed companions.
    assert shown[:2] == [shop["Lens Cloth"].pk, shop["Photo Guide"].pk]
    assert 'data-pinned="true"' in html
    pins = Recommendation.objects.filter(source=camera, build__isnull=True, status="pinned")
    assert list(pins.order_by("rank").values_list("target_id", "strategy")) == [
        (shop["Lens Cloth"].pk, "oscar"), (shop["Photo Guide"].pk, "oscar"),
    ]  # fmt: skip
    page = admin_client.get(reverse("admin:catalogue_product_change", args=[camera.pk]))
    assert b"(from Oscar)" in page.content
    assert f'data-cs-oscar-pin="{shop["Lens Cloth"].pk}"'.encode() in page.content
    # Removed in Oscar: no longer pinned.
    with django_capture_on_commit_callbacks(execute=True):
        ProductRecommendation.objects.filter(recommendation=shop["Photo Guide"]).delete()
    assert list(pins.values_list("target_id", flat=True)) == [shop["Lens Cloth"].pk]


def test_a_pair_rejected_in_crosssell_stays_out_after_a_sync(
    admin_client, shop, rebuilt, fbt, django_capture_on_commit_callbacks
) -> None:
    from crosssell.contrib.oscar import pins
    from crosssell.services import curation

    camera, guide, cloth = shop["Camera"], shop["Photo Guide"], shop["Lens Cloth"]
    with django_capture_on_commit_callbacks(execute=True):
        ProductRecommendation.objects.create(primary=camera, recommendation=guide, ranking=5)
        ProductRecommendation.objects.create(primary=camera, recommendation=cloth, ranking=9)
    assert [r.target_id for r in pins.oscar_pins(camera.pk)] == [cloth.pk, guide.pk]
    # The merchant rejects Oscar's pair in crosssell's admin: their decision wins.
    with django_capture_on_commit_callbacks(execute=True):
        curation.reject(camera.pk, guide.pk)
        pins.sync()
        pins.sync([camera.pk])
    assert [(r.target_id, r.rank) for r in pins.oscar_pins(camera.pk)] == [(cloth.pk, 0)]
    decided = Recommendation.objects.get(build=None, source=camera, target=guide)
    assert decided.status == Recommendation.Status.REJECTED
    shown = fbt(admin_client.get(camera.get_absolute_url()).content.decode())
    assert shown[0] == cloth.pk and guide.pk not in shown
    page = admin_client.get(reverse("admin:catalogue_product_change", args=[camera.pk]))
    assert f'data-cs-oscar-pin="{cloth.pk}"'.encode() in page.content
    assert f'data-cs-oscar-pin="{guide.pk}"'.encode() not in page.content
    # Oscar drops the pair and lists it again: the rejection is still the merchant's.
    with django_capture_on_commit_callbacks(execute=True):
        ProductRecommendation.objects.filter(recommendation=guide).delete()
        ProductRecommendation.objects.create(primary=camera, recommendation=guide, ranking=5)
    decided.refresh_from_db()
    assert decided.status == Recommendation.Status.REJECTED
    assert [r.target_id for r in pins.oscar_pins(camera.pk)] == [cloth.pk]
    assert guide.pk not in fbt(admin_client.get(camera.get_absolute_url()).content.decode())
