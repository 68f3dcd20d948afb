"""The neural strategy in the shop: retrain from the ORM, versioned artifacts, the blend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage

from crosssell.models import Build, Purchase, Recommendation
from crosssell.services import neural
from crosssell.services.build import rebuild
from crosssell.services.extract import extract
from crosssell.testing import make_product

FAST = {"max_steps": 120, "min_steps": 60, "embedding_dim": 16, "hidden_units": 32}


def make_shop() -> dict[str, list[Any]]:
    """Cameras go with memory cards, tents with stoves; one new camera has no sales."""
    cats = {
        "Photo > Cameras": [],
        "Photo > Cards": [],
        "Outdoor > Tents": [],
        "Outdoor > Stoves": [],
    }
    for cat in cats:
        for i in range(6):
            cats[cat].append(make_product(f"{cat.split(' > ')[1]} {i}", category=cat))
    rng = np.random.default_rng(3)
    rows = []
    for o in range(500):
        left, right = (
            ("Photo > Cameras", "Photo > Cards")
            if o % 2
            else ("Outdoor > Tents", "Outdoor > Stoves")
        )
        for p in (cats[left][rng.integers(6)], cats[right][rng.integers(6)]):
            rows.append(Purchase(order_ref=f"o{o}", customer_ref=f"c{o % 120}", product=p))
    Purchase.objects.bulk_create(rows)
    cats["new"] = [make_product("Camera 99 (new)", category="Photo > Cameras")]
    return cats


@pytest.mark.deep
@pytest.mark.django_db
def test_retrain_stores_a_versioned_artifact_and_round_trips() -> None:
    pytest.importorskip("tensorflow")
    make_shop()
    assert neural.current_version() is None
    meta = neural.retrain(**FAST)
    version = meta["version"]
    assert neural.current_version() == version
    for name in neural.ARTIFACT_FILES:
        assert default_storage.exists(f"crosssell/models/neural/{version}/{name}")
    assert meta["n_items"] == 25 and meta["tensorflow_version"]
    assert {"hr@10", "ndcg@10"} <= set(meta["metrics"])  # on held-out orders
    ex = extract()
    loaded = neural.load_current(ex.product_ids)
    again = neural.load_current(ex.product_ids)
    items = np.arange(ex.data.n_items)
    assert loaded is not None and again is not None
    np.testing.assert_array_equal(
        loaded.similar_items(items, 5).indices, again.similar_items(items, 5).indices
    )
    # A second training is a new version; the pointer moves only when it is complete.
    second = neural.retrain(**{**FAST, "max_steps": 10, "min_steps": 10})["version"]
    assert second != version and neural.current_version() == second


@pytest.mark.deep
@pytest.mark.django_db
def test_the_blend_serves_new_products_from_the_neural_model() -> None:
    pytest.importorskip("tensorflow")
    cats = make_shop()
    neural.retrain(**FAST)
    build = rebuild()
    new = cats["new"][0]
    rows = list(
        Recommendation.objects.filter(build=build, source=new)
        .order_by("rank")
        .values_list("target_id", "strategy")
    )
    assert rows[0][1] == "neural"
    cards = {p.pk for p in cats["Photo > Cards"]}
    # A new camera's companions are memory cards, learned from its content.
    assert sum(t in cards for t, _ in rows[:4]) >= 2
    # A well-sold product keeps its co-purchase list.
    sold = cats["Photo > Cameras"][0]
    strategies = set(
        Recommendation.objects.filter(build=build, source=sold).values_list("strategy", flat=True)
    )
    assert "neural" not in strategies


@pytest.mark.deep
@pytest.mark.django_db
def test_a_model_of_another_catalog_is_refused_and_the_build_goes_on() -> None:
    pytest.importorskip("tensorflow")
    make_shop()
    neural.retrain(**FAST)
    make_product("added after training")
    assert neural.load_current(extract().product_ids) is None
    build = rebuild()
    assert build.state == Build.State.LIVE
    assert not Recommendation.objects.filter(build=build, strategy="neural").exists()


@pytest.mark.deep
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_retrain_task_on_a_real_worker(celery_workers: Any) -> None:
    pytest.importorskip("tensorflow")
    from crosssell import tasks

    make_shop()
    celery_workers("w1")
    version = tasks.retrain_model.delay(rebuild_after=False, params=FAST).get(timeout=240)
    assert neural.current_version() == version


def test_crosssell_works_without_tensorflow() -> None:
    """With TensorFlow unimportable, the app, the engine and a rebuild's code import, and asking
    for the neural strategy says how to install it."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["tensorflow"] = None  # import tensorflow now raises ImportError
        sys.modules["keras"] = None
        import django, os
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
        django.setup()
        import crosssell.engine, crosssell.services.build, crosssell.tasks
        import crosssell.services.neural
        from crosssell.engine.registry import build_strategy
        try:
            build_strategy("neural")
        except ImportError as exc:
            print("HINT:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert 'pip install "django-crosssell[deep]"' in out.stdout
