"""The evidence of a recommendation (customers, lift, co-counts) is shown only to users with the
view permission on recommendations: in the admin's product panel and build page (the API's
side is in test_api.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from crosssell.admin.common import product_model_registered
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, get_product_model
from crosssell.permissions import can_see_evidence
from crosssell.services.build import rebuild
from crosssell.services.purchases import Line, record_order
from crosssell.testing import make_product

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not product_model_registered(admin.site),
        reason="the product model has no admin in this project",
    ),
]
#: What only the permitted see: the slot's evidence line and the live rows' evidence columns.
EVIDENCE_MARKS = ('class="cs-evidence"', "<th>Customers</th>", "<th>Lift</th>", "customers")


@pytest.fixture
def camera(django_capture_on_commit_callbacks: Any) -> Any:
    cache.clear()
    camera, card, bag = (make_product(n, category="Photo") for n in ("camera", "card", "bag"))
    for i in range(4):
        record_order(f"ev{i}", [Line(camera.pk), Line(card.pk), Line(bag.pk)], customer_ref=f"e{i}")
    with django_capture_on_commit_callbacks(execute=True):
        rebuild(strategy=CoCount())
    return camera


def staff(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.login(username=username, password="pw")
    return client


def product_page(client: Client, product: Any) -> str:
    opts = get_product_model()._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[product.pk])
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_a_product_editor_sees_the_panel_without_the_evidence(camera: Any) -> None:
    # The probe: a staff user with only change_product saw customers, lift and co-counts.
    model = get_product_model()._meta.model_name
    editor = staff("editor", f"change_{model}", f"view_{model}")
    page = product_page(editor, camera)
    assert 'class="cs-slots"' in page  # the panel is there: what the widget shows
    panel = page.split('class="cs-panel-body"', 1)[1]
    for mark in EVIDENCE_MARKS:
        assert mark not in panel, mark


def test_the_view_permission_shows_the_evidence(camera: Any) -> None:
    model = get_product_model()._meta.model_name
    merchant = staff("merchant", f"view_{model}", "view_recommendation")
    panel = product_page(merchant, camera).split('class="cs-panel-body"', 1)[1]
    for mark in EVIDENCE_MARKS:
        assert mark in panel, mark
    assert "4 customers" in panel


def test_the_build_page_shows_the_evidence_only_with_the_permission(camera: Any) -> None:
    with_build = Client()
    User.objects.create_superuser("boss", "b@example.com", "pw")
    with_build.login(username="boss", password="pw")
    # A second build, so that the page lists the pairs added since the first one.
    tripod = make_product("tripod", category="Photo")
    for i in range(4):
        record_order(f"ev-late{i}", [Line(camera.pk), Line(tripod.pk)], customer_ref=f"t{i}")
    second = rebuild(strategy=CoCount())
    Build.objects.filter(pk=second.pk).update(state=Build.State.READY)
    url = reverse("admin:crosssell_build_change", args=[second.pk])
    assert "<th>Customers</th>" in with_build.get(url).content.decode()
    viewer = staff("build-viewer", "view_build")
    page = viewer.get(url)
    assert page.status_code == 200
    assert "<th>Customers</th>" not in page.content.decode()


def test_can_see_evidence() -> None:
    assert not can_see_evidence(None)
    plain = User.objects.create_user("plain", is_staff=True)
    assert not can_see_evidence(plain)
    changer = User.objects.create_user("changer")
    changer.user_permissions.add(Permission.objects.get(codename="change_recommendation"))
    assert can_see_evidence(User.objects.get(pk=changer.pk))
    inactive = User.objects.create_superuser("gone", "g@example.com", "pw", is_active=False)
    assert not can_see_evidence(inactive)
