"""The experiments' admin: the report table and chart on the change page, the verdict, the
"end" and "start again" actions, permissions, and a page whose queries do not grow with the
traffic. Events are written with ``tracking.write`` (what the flush task writes)."""

from __future__ import annotations

import math
import re
import uuid
from html import unescape
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from scipy.stats import binomtest, norm

from crosssell.admin.experiments import verdict_text
from crosssell.models import Event, Experiment, Variant
from crosssell.services import tracking
from crosssell.services.experiment_review import sample_size, verdict
from crosssell.services.experiments import report

# Transactional: ending an experiment tells the widgets when its transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "admin:crosssell_experiment_changelist"


# --------------------------------------------------------------------------- data


def experiment(
    *arms: tuple[str, bool], name: str = "bundle test", placement: str = "product"
) -> tuple[Experiment, list[Variant]]:
    """An experiment with variants ``(name, holdout)``; the first is the control."""
    exp = Experiment.objects.create(name=name, placement=placement)
    return exp, [
        Variant.objects.create(experiment=exp, name=n, holdout=holdout, strategy="cocount")
        for n, holdout in arms
    ]


def traffic(
    variant: Variant,
    visitors: int,
    *,
    clicks: int = 0,
    carts: int = 0,
    buyers: int = 0,
    attributed: int = 0,
    price: str = "25.00",
) -> list[dict[str, Any]]:
    """Events of ``visitors`` visitors of ``variant``, one impression each; the first ``clicks``
    click, the first ``carts`` add to cart, the first ``buyers`` buy one item at ``price``,
    of whom the first ``attributed`` bought it from the widget."""
    events: list[dict[str, Any]] = []
    for n in range(visitors):
        visitor = f"v{variant.pk}-{n}"
        impression = str(uuid.uuid4())
        events.append(
            {"type": "impression", "id": impression, "placement": "product", "visitor": visitor,
             "variant": variant.pk, "sources": [1], "products": [] if variant.holdout else [2, 3],
             "strategies": [] if variant.holdout else ["cocount", "cocount"]}
        )  # fmt: skip
        touch = {"impression": impression, "variant": variant.pk, "visitor": visitor, "product": 2}
        if n < clicks:
            events.append({"type": Event.Type.CLICK, "id": str(uuid.uuid4()), **touch})
        if n < carts:
            events.append({"type": Event.Type.ADD_TO_CART, "id": str(uuid.uuid4()), **touch})
        if n < buyers:
            events.append(
                {**touch, "type": Event.Type.PURCHASE, "id": str(uuid.uuid4()),
                 "impression": impression if n < attributed else None,
                 "order": f"o{variant.pk}-{n}", "quantity": 1, "revenue": price}
            )  # fmt: skip
    return events


def known_dataset() -> tuple[Experiment, list[Variant]]:
    """Control A, treatment B and a holdout H with numbers chosen to be read off the page."""
    exp, (a, b, h) = experiment(("A", False), ("B", False), ("H", True))
    tracking.write(
        traffic(a, 200, clicks=30, carts=10, buyers=8, attributed=6, price="125.50")
        + traffic(b, 250, clicks=50, carts=20, buyers=15, attributed=15, price="39.90")
        + traffic(h, 100, buyers=3, price="20.00")
    )
    return exp, [a, b, h]


def two_arms(control: tuple[int, int], treatment: tuple[int, int]) -> Experiment:
    """A/B with (visitors, buyers) per arm."""
    exp, (a, b) = experiment(("A", False), ("B", False))
    tracking.write(
        traffic(a, control[0], clicks=control[1], buyers=control[1], attributed=control[1])
        + traffic(b, treatment[0], clicks=treatment[1], buyers=treatment[1])
    )
    return exp


def wilson_text(successes: int, n: int) -> str:
    """The interval computed by scipy (not by the code under test), as the page prints it."""
    ci = binomtest(successes, n).proportion_ci(0.95, method="wilson")
    return f"95% CI {100 * ci.low:.1f}% to {100 * ci.high:.1f}%"


# --------------------------------------------------------------------------- clients


def client_for(username: str, *codenames: str, superuser: bool = False) -> Client:
    if superuser:
        User.objects.create_superuser(username, f"{username}@example.com", "pw")
    else:
        user = User.objects.create_user(username, password="pw", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="crosssell", codename__in=codenames)
        )
    client = Client()
    assert client.login(username=username, password="pw")
    return client


@pytest.fixture
def boss() -> Client:
    return client_for("boss", superuser=True)


@pytest.fixture
def viewer() -> Client:
    """Staff who may look at experiments and variants, not change them."""
    return client_for("viewer", "view_experiment", "view_variant")


def change_url(exp: Experiment) -> str:
    return reverse("admin:crosssell_experiment_change", args=[exp.pk])


def row_html(html: str, variant: Variant) -> str:
    return html.split(f'data-variant="{variant.pk}"', 1)[1].split("</tr>", 1)[0]


def cell(row: str, name: str) -> str:
    found = re.search(rf'data-cs="{name}">(.*?)</td>', row, re.S)
    assert found, f"no {name} cell in {row[:300]}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


# --------------------------------------------------------------------------- the report


def test_view_permission_shows_the_table_of_a_known_dataset(viewer: Client) -> None:
    exp, (a, b, h) = known_dataset()
    response = viewer.get(change_url(exp))
    assert response.status_code == 200
    html = response.content.decode()

    ra, rb, rh = row_html(html, a), row_html(html, b), row_html(html, h)
    assert ">200<" in ra and ">250<" in rb and ">100<" in rh  # visitors (and impressions)
    # Click-through (visitors who clicked, per visitor: one impression each here) with its
    # Wilson interval; add-to-cart rate.
    assert cell(ra, "ctr") == f"15.0% {wilson_text(30, 200)}"
    assert cell(rb, "ctr") == f"20.0% {wilson_text(50, 250)}"
    assert cell(ra, "atc") == "5.0%" and cell(rb, "atc") == "8.0%"
    assert cell(rh, "ctr") == "-" and cell(rh, "atc") == "-"  # a holdout sees no widget
    # Conversion per visitor with its interval.
    assert cell(ra, "conversion") == f"4.0% {wilson_text(8, 200)}"
    assert cell(rb, "conversion") == f"6.0% {wilson_text(15, 250)}"
    assert cell(rh, "conversion") == f"3.0% {wilson_text(3, 100)}"
    # Money with two decimals: revenue, attributed revenue, average order value.
    assert cell(ra, "revenue") == "1,004.00" and cell(ra, "attributed") == "753.00"
    assert cell(ra, "aov") == "125.50"
    assert cell(rb, "revenue") == "598.50" and cell(rb, "attributed") == "598.50"
    assert cell(rh, "revenue") == "60.00" and cell(rh, "attributed") == "0.00"
    # Lift against the control in points, its unpooled 95% interval and the pooled z-test.
    assert cell(ra, "lift") == "control" and cell(ra, "p") == "-"
    p1, p2 = 8 / 200, 15 / 250
    se = math.sqrt(p1 * (1 - p1) / 200 + p2 * (1 - p2) / 250)
    low, high = 100 * (p2 - p1 - 1.96 * se), 100 * (p2 - p1 + 1.96 * se)
    assert cell(rb, "lift") == f"+2.0 pts 95% CI {low:+.1f} to {high:+.1f}"
    pooled = 23 / 450
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 250))
    assert cell(rb, "p") == f"p = {2 * norm.sf(z):.3g}"
    assert cell(rh, "lift").startswith("-1.0 pts 95% CI -")
    # Three variants, two comparisons: nothing is significant here.
    assert "No significant difference yet." in html
    assert "End experiment" not in html  # view only: no button to run it


def test_the_chart_has_one_bar_per_variant_with_its_interval(viewer: Client) -> None:
    exp, _ = known_dataset()
    html = viewer.get(change_url(exp)).content.decode()
    svg = html.split('<svg class="cs-ibars"', 1)[1].split("</svg>", 1)[0]
    bars = re.findall(r'<g class="cs-ibar[^"]*" data-label="([^"]+)">(.*?)</g>', svg, re.S)
    assert [label for label, _ in bars] == ["A", "B", "H"]
    heights = {}
    for label, body in bars:
        assert body.count("<rect") == 1 and 'class="cs-ibar-ci"' in body  # a bar, a whisker
        heights[label] = float(re.search(r'height="([\d.]+)"', body).group(1))  # type: ignore[union-attr]
    assert heights["B"] > heights["A"] > heights["H"] > 0  # 6% > 4% > 3%, one scale
    assert f"A: 4.0% (95% CI {wilson_text(8, 200)[7:]})" in svg  # the bar's title
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from a CDN


def test_a_clear_winner_is_named_with_its_lift_interval_and_p_value(viewer: Client) -> None:
    exp = two_arms(control=(1000, 40), treatment=(1000, 90))
    html = viewer.get(change_url(exp)).content.decode()
    se = math.sqrt(0.04 * 0.96 / 1000 + 0.09 * 0.91 / 1000)
    low, high = 100 * (0.05 - 1.96 * se), 100 * (0.05 + 1.96 * se)
    line = f"B converts better than A: +5.0 points (95% CI {low:+.1f} to {high:+.1f}), p < 0.001"
    assert line in unescape(html)
    assert 'data-cs-verdict="winner"' in html and "No significant difference" not in html
    b = Variant.objects.get(experiment=exp, name="B")
    assert "winner" in row_html(html, b)
    assert 'class="cs-ibar is-highlighted" data-label="B"' in html
    listed = viewer.get(reverse(CHANGELIST)).content.decode()
    assert '<span class="cs-badge cs-state-live">B</span>' in listed


def test_an_a_a_dataset_has_no_significant_difference_and_a_sample_size_hint(
    viewer: Client,
) -> None:
    exp = two_arms(control=(1000, 50), treatment=(1000, 52))
    html = viewer.get(change_url(exp)).content.decode()
    assert 'data-cs-verdict="none"' in html and "No significant difference yet." in html
    assert "converts better than" not in html
    assert "Best so far: B against A, +0.20 points" in html
    # The observed 0.2 points is below a 10% relative lift (0.5 points): plan for the latter.
    needed = sample_size(0.05, 0.055, 0.05)
    assert f"each variant needs about {needed:,} visitors; the smallest has 1,000" in html
    assert "a 10% relative lift" in html
    listed = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "no significant difference yet" in listed


def test_a_winning_control_is_stated_against_the_strongest_other_variant() -> None:
    # The holdout (no widget) converts best: the widgets cost sales. Three arms, so the winner
    # must beat both at 2.5%.
    exp, (h, b, c) = experiment(("H", True), ("B", False), ("C", False))
    tracking.write(
        traffic(h, 1500, buyers=150) + traffic(b, 1500, buyers=60) + traffic(c, 1500, buyers=90)
    )
    found = verdict_text(verdict(report(exp)))
    assert found.tone == "good"
    assert (
        found.headline == "H converts better than C: +4.0 points (95% CI +2.1 to +5.9), p < 0.001"
    )
    assert "Bonferroni-corrected for 2 comparisons (p < 0.025 each)" in found.detail


def test_sample_size_matches_the_textbook_figures() -> None:
    # Two-sided 5%, 80% power (e.g. Evan Miller's calculator: 8,158 and 3,841 per variant).
    assert sample_size(0.05, 0.06, 0.05) == 8158
    assert sample_size(0.10, 0.12, 0.05) == 3841
    assert sample_size(0.05, 0.06, 0.025) > 8158  # a Bonferroni-corrected level needs more


def test_no_traffic_yet(viewer: Client) -> None:
    exp, _ = experiment(("A", False), ("B", False))
    html = viewer.get(change_url(exp)).content.decode()
    assert "No visitor has been in the experiment yet." in html
    assert html.count('<g class="cs-ibar') == 2


def test_the_page_queries_do_not_grow_with_the_traffic(
    boss: Client, django_assert_max_num_queries: Any
) -> None:
    exp, (a, b, h) = known_dataset()
    url = change_url(exp)
    boss.get(url)  # warm up (session, content types)
    with CaptureQueriesContext(connection) as small:
        assert boss.get(url).status_code == 200
    tracking.write(
        traffic(a, 1500, clicks=300, carts=90, buyers=60, attributed=30)
        + traffic(b, 1500, clicks=200, carts=50, buyers=40)
        + traffic(h, 700, buyers=20)
    )
    with CaptureQueriesContext(connection) as large:
        html = boss.get(url).content.decode()
    assert ">1,700<" in row_html(html, a)  # the new traffic is counted
    assert len(large) == len(small)
    with django_assert_max_num_queries(10):
        boss.get(url)
    # The list's winner column: the listed experiments' reports together, whatever their
    # number and their traffic.
    with CaptureQueriesContext(connection) as listed:
        assert '<td class="field-winner_col">' in boss.get(reverse(CHANGELIST)).content.decode()
    tracking.write(traffic(a, 300, buyers=10))
    for n in range(4):
        more = Experiment.objects.create(name=f"more {n}", placement="cart", is_active=False)
        Variant.objects.create(experiment=more, name="control")
        Variant.objects.create(experiment=more, name="treatment")
    with CaptureQueriesContext(connection) as five:
        html = boss.get(reverse(CHANGELIST)).content.decode()
    assert html.count('<td class="field-winner_col">') == 5
    assert len(five) == len(listed)


# --------------------------------------------------------------------------- permissions


def test_without_permission_the_page_is_refused(client: Client) -> None:
    exp, _ = known_dataset()
    nobody = client_for("nobody")  # staff, no permission
    assert nobody.get(change_url(exp)).status_code == 403
    assert nobody.get(reverse(CHANGELIST)).status_code == 403
    anonymous = client.get(change_url(exp))
    assert anonymous.status_code == 302 and reverse("admin:login") in anonymous["Location"]
    end = reverse("admin:crosssell_experiment_end", args=[exp.pk])
    assert nobody.post(end).status_code == 403
    assert Experiment.objects.get(pk=exp.pk).is_active


def test_ending_needs_the_change_permission(viewer: Client) -> None:
    exp, _ = known_dataset()
    listed = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "end_experiment" not in listed and "start_again" not in listed
    viewer.post(
        reverse(CHANGELIST), {"action": "end_experiment", "_selected_action": [exp.pk], "index": 0}
    )
    end = reverse("admin:crosssell_experiment_end", args=[exp.pk])
    assert viewer.post(end).status_code == 403
    exp.refresh_from_db()
    assert exp.is_active and exp.ended_at is None
    assert not LogEntry.objects.exists()


def test_end_and_start_again_with_the_change_permission() -> None:
    exp, _ = known_dataset()
    editor = client_for("editor", "view_experiment", "change_experiment", "view_variant")
    assert tracking.active_experiment("product") is not None  # cached for the widgets
    html = editor.get(change_url(exp)).content.decode()
    assert "End experiment" in html
    response = editor.post(
        reverse(CHANGELIST),
        {"action": "end_experiment", "_selected_action": [exp.pk], "index": 0},
        follow=True,
    )
    assert "Ended: bundle test" in response.content.decode()
    exp.refresh_from_db()
    assert not exp.is_active and exp.ended_at is not None
    assert tracking.active_experiment("product") is None  # the widgets stop at once
    assert LogEntry.objects.filter(change_message="Ended the experiment").count() == 1
    ended = editor.get(change_url(exp)).content.decode()
    assert "Start again" in ended and "6.0%" in ended  # the report stays readable

    # Another experiment takes the placement: starting this one again is refused.
    other, _ = experiment(("X", False), ("Y", False), name="newer")
    response = editor.post(reverse("admin:crosssell_experiment_start", args=[exp.pk]), follow=True)
    assert "“bundle test” not started: “newer” already runs" in response.content.decode()
    assert not Experiment.objects.get(pk=exp.pk).is_active

    # The change page's buttons: end the other one, start this one again.
    editor.post(reverse("admin:crosssell_experiment_end", args=[other.pk]))
    response = editor.post(reverse("admin:crosssell_experiment_start", args=[exp.pk]))
    assert response.status_code == 302 and response["Location"] == change_url(exp)
    exp.refresh_from_db()
    assert exp.is_active and exp.ended_at is None
    running = tracking.active_experiment("product")
    assert running is not None and running[0].pk == exp.pk
    assert editor.get(reverse("admin:crosssell_experiment_end", args=[exp.pk])).status_code == 405


def test_adding_an_experiment_with_variants(boss: Client) -> None:
    experiment(("A", False), ("B", False), name="running")
    form = {
        "name": "second", "placement": "product", "is_active": "on",
        "started_at_0": "2026-01-01", "started_at_1": "10:00:00",
        "variants-TOTAL_FORMS": "2", "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0", "variants-MAX_NUM_FORMS": "1000",
        "variants-0-name": "A", "variants-0-weight": "1",
        "variants-1-name": "B", "variants-1-strategy": "cocount", "variants-1-weight": "3",
    }  # fmt: skip
    refused = boss.post(reverse("admin:crosssell_experiment_add"), form)
    assert refused.status_code == 400  # the form again, with its errors
    assert "“running” already runs on this placement" in refused.content.decode()
    form.pop("is_active")
    added = boss.post(reverse("admin:crosssell_experiment_add"), form)
    assert added.status_code == 302
    exp = Experiment.objects.get(name="second")
    assert not exp.is_active
    assert [(v.name, v.strategy, v.weight) for v in exp.variants.order_by("pk")] == [
        ("A", "", 1),
        ("B", "cocount", 3),
    ]
