"""The shop tunes itself: a build picks its hyperparameters on its own orders and serves them.

On generated orders whose best setting is known (``tests.engine.tuning_shop``: no content prior
on the product page, little shrink and the largest lift in the cart, unlike the defaults), a
tuned build serves better lists, on the product page and in the cart, than a build with
``CROSSSELL_TUNE`` off, measured on orders neither build read, through the rows and the
function the widgets read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

from crosssell.engine.blend import Blend
from crosssell.engine.cart import DEFAULT_LIFT, DEFAULT_SHRINK
from crosssell.engine.evaluation.metrics import ndcg
from crosssell.engine.tuning import CART_GRID, tune
from crosssell.models import Build, Purchase, Recommendation, get_product_model, product_field
from crosssell.services import tuning
from crosssell.services.build import rebuild
from crosssell.services.serving import ranked_slots
from tests.engine.tuning_shop import held_out_queries, pairs_shop, split_shop

pytestmark = pytest.mark.django_db
FBT = Recommendation.Kind.BOUGHT_TOGETHER
K = 10
N_PAIRS = 400


def load_shop(baskets: sp.csr_matrix, categories: list[str]) -> npt.NDArray[np.int64]:
    """The generated products and orders in the database; returns each item's product id."""
    Product = get_product_model()

    def values(i: int, category: str) -> dict[str, Any]:
        roles: dict[str, Any] = {"key": f"G{i:05d}", "name": f"item {i}", "category": category}
        roles["price"] = Decimal("5.00")
        out = {}
        for role, value in roles.items():
            lookup = product_field(role)
            if lookup and "__" not in lookup:  # as crosssell.testing.make_product does
                out[lookup] = value
        return out

    made = Product._default_manager.bulk_create(
        [Product(**values(i, category)) for i, category in enumerate(categories)]
    )
    pids = np.array([p.pk for p in made], dtype=np.int64)
    rows = []
    for o in range(baskets.shape[0]):
        for i in baskets.indices[baskets.indptr[o] : baskets.indptr[o + 1]].tolist():
            rows.append(Purchase(order_ref=f"o{o}", customer_ref=f"c{o}", product_id=int(pids[i])))
    Purchase.objects.bulk_create(rows, batch_size=5_000)
    return pids


def served_lists(build: Build) -> dict[int, list[int]]:
    """Each product's stored list of ``build`` (bought together), in rank order."""
    lists: dict[int, list[int]] = {}
    for source, target in (
        Recommendation.objects.filter(build=build, kind=FBT)
        .order_by("source_id", "rank")
        .values_list("source_id", "target_id")
    ):
        lists.setdefault(source, []).append(target)
    return lists


def mean_ndcg(shown: list[list[int]], relevant: list[set[int]]) -> float:
    hits = np.array(
        [[j in rel for j in (row + [-1] * K)[:K]] for row, rel in zip(shown, relevant, strict=True)]
    )
    return float(ndcg(hits, np.array([len(r) for r in relevant])).mean())


@pytest.fixture
def generated() -> dict[str, Any]:
    data, test = split_shop(4_000, 1_000, n_pairs=N_PAIRS)
    assert data.content is not None
    pids = load_shop(data.baskets, data.content.categories)
    return {"pids": pids, "test": test, "sold": data.baskets.getnnz(axis=0) > 0}


def test_a_tuned_build_serves_better_lists_than_the_defaults(generated: dict[str, Any]) -> None:
    with override_settings(CROSSSELL_TUNE=False):
        default = rebuild(trigger="test")
    tuned = rebuild(trigger="test")
    assert "tuning" not in default.metrics
    report = tuned.metrics["tuning"]
    assert report["product"]["strategy"] == "cocount_content"
    assert report["product"]["chosen"]["prior"] == 0.0
    assert report["product"]["defaults"]["prior"] == 30.0
    assert report["product"]["ndcg@10"] > report["product"]["default_ndcg@10"]
    chosen = report["cart"]["chosen"]
    assert chosen["lift"] == max(CART_GRID["lift"]) or chosen["shrink"] <= 5.0
    assert report["cart"]["defaults"] == {"shrink": DEFAULT_SHRINK, "lift": DEFAULT_LIFT}
    # the cart vectors were computed with the chosen values, the default build's with its own
    assert {k: tuned.parameters["cart"][k] for k in chosen} == chosen
    assert default.parameters["cart"]["shrink"] == DEFAULT_SHRINK
    assert default.parameters["cart"]["lift"] == DEFAULT_LIFT
    # the offline metrics are the tuned strategy's, on the same held-out orders
    assert tuned.metrics["ndcg@10"] > default.metrics["ndcg@10"]

    # orders neither build read: the product page, through the stored lists
    pids, test, sold = generated["pids"], generated["test"], generated["sold"]
    queries, carts = held_out_queries(test)
    queries = [(o, q) for o, q in queries if sold[q]]
    relevant = [
        {int(pids[j]) for j in test.indices[test.indptr[o] : test.indptr[o + 1]] if j != q}
        for o, q in queries
    ]
    page: dict[str, float] = {}
    for name, build in (("default", default), ("tuned", tuned)):
        lists = served_lists(build)
        page[name] = mean_ndcg([lists.get(int(pids[q]), []) for _, q in queries], relevant)
    assert page["tuned"] > page["default"] + 0.05, page

    # ... and the cart, through the function the cart widget calls
    carts = [(c, r) for c, r in carts if sold[c].all()][:150]
    wanted = [{int(pids[j]) for j in rest} for _, rest in carts]
    cart: dict[str, float] = {}
    for name, build in (("default", default), ("tuned", tuned)):
        shown = [
            [s.product_id for s in ranked_slots(pids[c].tolist(), FBT, build_id=build.pk)][:K]
            for c, _ in carts
        ]
        cart[name] = mean_ndcg(shown, wanted)
    assert cart["tuned"] > cart["default"] + 0.05, cart


@override_settings(CROSSSELL_TUNE=False, CROSSSELL_OFFLINE_METRICS=False)
def test_tuning_off_leaves_the_defaults(generated: dict[str, Any]) -> None:
    build = rebuild(trigger="test")
    assert "tuning" not in build.metrics and "ndcg@10" not in build.metrics
    assert build.parameters["cart"]["shrink"] == DEFAULT_SHRINK
    assert build.parameters["cart"]["lift"] == DEFAULT_LIFT


def test_the_build_page_shows_the_tuning() -> None:
    result = tune(pairs_shop(n_orders=4_000, n_pairs=N_PAIRS), Blend())
    build = Build.objects.create(
        state=Build.State.READY, metrics={"tuning": result.as_dict(), "ndcg@10": 0.5}
    )
    untuned = Build.objects.create(state=Build.State.READY, metrics={"ndcg@10": 0.4})
    User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.login(username="boss", password="pw")
    page = client.get(reverse("admin:crosssell_build_change", args=[build.pk])).content.decode()
    assert "<h2>Tuning</h2>" in page
    summary = tuning.summary(build)
    assert summary is not None and [p.label for p in summary.parts] == [
        "Product page (cocount_content)",
        "Cart",
    ]
    product, cart = summary.parts
    assert [(r.name, r.chosen, r.default, r.changed) for r in product.parameters] == [
        ("prior", "0", "30", True),
        ("content_prior", "300", "300", False),
    ]
    assert result.product is not None and result.cart is not None
    assert [(r.name, r.chosen, r.default) for r in cart.parameters] == [
        (name, f"{value:g}", f"{result.cart.defaults[name]:g}")
        for name, value in result.cart.chosen.items()
    ]
    for figure in (
        f"{result.product.ndcg:.4f}",
        f"{result.product.default_ndcg:.4f}",
        f"{result.cart.ndcg:.4f}",
        f"{result.cart.default_ndcg:.4f}",
    ):
        assert figure in page
    # the time as stored (rounded to the millisecond), then shown to the hundredth
    for figure in (
        f"{round(result.seconds, 3):.2f}",
        f"{round(result.product.seconds, 3):.2f}",
    ):
        assert figure in page
    assert "<td>prior</td><td><b>0</b></td><td>30</td>" in page
    shrink = result.cart.chosen["shrink"]
    assert f"<td>shrink</td><td><b>{shrink:g}</b></td><td>{DEFAULT_SHRINK:g}</td>" in page
    # the offline-metrics line keeps to the figures (the tuning has its own card)
    assert 'cs-metric">ndcg@10' in page and 'cs-metric">tuning' not in page
    other = client.get(reverse("admin:crosssell_build_change", args=[untuned.pk]))
    assert "<h2>Tuning</h2>" not in other.content.decode()


def test_a_chords_shards_rebuild_the_tuned_strategy_from_the_build() -> None:
    """A chord tunes once (its first task) and each shard fits what was chosen, read back from
    the build's metrics: the values alone rebuild the tuned strategy."""
    chosen = {"prior": 0.0, "content_prior": 100.0}
    defaults = {"prior": 30.0, "content_prior": 300.0}
    build = Build(metrics={"tuning": {"product": {"chosen": chosen, "defaults": defaults}}})
    model = tuning.tuned_model(build, Blend(steps=["cocount_content", "popularity"]))
    assert isinstance(model, Blend)
    step = model.steps[0]
    assert getattr(step, "prior", None) == 0.0 and getattr(step, "content_prior", None) == 100.0
    assert model.steps[1:] == ["popularity"]
    untouched = Blend(steps=["cocount_content", "popularity"])
    same = Build(metrics={"tuning": {"product": {"chosen": defaults, "defaults": defaults}}})
    assert tuning.tuned_model(same, untouched) is untouched
    assert tuning.tuned_model(Build(metrics={}), untouched) is untouched
