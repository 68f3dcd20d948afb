"""Oscar's basket and checkout with crosssell: the bundle form (no JavaScript), the basket's
recommendations, and a clicked recommendation attributed at Oscar's checkout."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from crosssell.models import Event, Purchase
from crosssell.services import tracking

pytestmark = pytest.mark.django_db


def cart_ids(html: str) -> list[int]:
    parts = html.split('data-crosssell="cart-recommendations"', 1)
    if len(parts) < 2:
        return []
    return [int(i) for i in re.findall(r'data-product-id="(\d+)"', parts[1].split("</section>")[0])]


def test_the_bundle_form_adds_every_chosen_product_to_oscars_basket(client, shop, rebuilt) -> None:
    page = client.get(shop["Camera"].get_absolute_url()).content.decode()
    form = page.split('class="cs-fbt-form"', 1)[1].split("</form>")[0]
    action = re.search(r'action="([^"]+)"', page.split('class="cs-fbt-form"', 1)[1]).group(1)
    assert action == reverse("crosssell-oscar:basket-add")
    chosen = [int(i) for i in re.findall(r'name="product_id" value="(\d+)"', form)]
    assert len(chosen) >= 5  # the camera and its companions, all checked
    response = client.post(
        action, {"product_id": chosen, "next": shop["Camera"].get_absolute_url()}
    )
    assert response.status_code == 302
    assert response["Location"] == shop["Camera"].get_absolute_url()
    basket = client.get(reverse("basket:summary"))
    lines = basket.context["basket"].all_lines()
    assert sorted(line.product_id for line in lines) == sorted(chosen)
    # The basket's recommendations leave out what is in it.
    shown = cart_ids(basket.content.decode())
    assert shown and not set(shown) & set(chosen)


def test_a_parent_in_the_bundle_becomes_its_only_available_size(client, shop, rebuilt) -> None:
    response = client.post(
        reverse("crosssell-oscar:basket-add"),
        {"product_id": [shop["T-Shirt"].pk, shop["Sold Out Strap"].pk, shop["Lens Cloth"].pk]},
    )
    assert response.status_code == 302 and response["Location"] == reverse("basket:summary")
    basket = client.get(reverse("basket:summary"))
    ids = sorted(line.product_id for line in basket.context["basket"].all_lines())
    assert ids == sorted([shop["T-Shirt S"].pk, shop["Lens Cloth"].pk])
    # the basket's size S stands for the T-shirt: neither is recommended for it
    shown = cart_ids(basket.content.decode())
    assert shown and not {shop["T-Shirt"].pk, shop["T-Shirt S"].pk} & set(shown)
    messages = [str(m) for m in basket.context["messages"]]
    assert any("Sold Out Strap" in m for m in messages)


@pytest.mark.parametrize("data", [{}, {"product_id": "x"}, {"product_id": "1", "quantity": "0"}])
def test_the_bundle_view_refuses_bad_input(client, shop, data) -> None:
    response = client.post(reverse("crosssell-oscar:basket-add"), data)
    assert response.status_code == 400
    assert client.get(reverse("crosssell-oscar:basket-add")).status_code == 405


def test_oscars_checkout_records_the_order_and_attributes_the_click(
    client, shop, rebuilt, django_capture_on_commit_callbacks
) -> None:
    user = shop.users[0]
    client.force_login(user)
    page = client.get(shop["Camera"].get_absolute_url()).content.decode()
    link = re.search(
        rf'href="([^"]*cs=[^"]*csp={shop["Memory Card"].pk})"', page.replace("&amp;", "&")
    ).group(1)
    assert client.get(link).status_code == 200  # the click on a recommendation
    client.post(reverse("basket:add", args=[shop["Memory Card"].pk]), {"quantity": 1})
    client.post(reverse("basket:add", args=[shop["Camera Bag"].pk]), {"quantity": 1})
    # Oscar's checkout, step by step.
    response = client.post(
        reverse("checkout:shipping-address"),
        {"first_name": "Ada", "last_name": "Lovelace", "line1": "1 Analytical Row",
         "line4": "London", "postcode": "N1 9GU", "country": "GB", "phone_number": ""},
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302 and response["Location"] == reverse("checkout:thank-you")
    from oscar.core.loading import get_model

    order = get_model("order", "Order").objects.filter(user=user).latest("pk")
    assert set(
        Purchase.objects.filter(order_ref=order.number).values_list("product_id", flat=True)
    ) == {shop["Memory Card"].pk, shop["Camera Bag"].pk}
    tracking.flush()
    purchases = Event.objects.filter(type=Event.Type.PURCHASE, order_ref=order.number)
    by_product = {e.product_id: e for e in purchases}
    assert by_product[shop["Memory Card"].pk].impression_id is not None  # attributed
    assert by_product[shop["Camera Bag"].pk].impression_id is None
