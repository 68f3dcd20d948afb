"""``crosssell.conf``: flat ``CROSSSELL_*`` settings with defaults, read lazily, cached, and
reloaded by ``override_settings`` (a ``setting_changed`` receiver drops the cached value).

These run under both settings modules (the sample shop and the swapped shop), so each test
states the Django settings it depends on instead of assuming the project's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.test import override_settings

from crosssell import conf
from crosssell.conf import DEFAULT_PRODUCT_FIELDS, DEFAULTS, PREFIX
from crosssell.conf import settings as cs_settings


@pytest.fixture
def unset() -> Iterator[Callable[..., None]]:
    """``unset("CROSSSELL_X", ...)``: the project stops setting these names, until the test ends.

    Deleting through pytest-django's ``settings`` fixture sends no ``setting_changed`` (neither
    on delete nor on restore), so a value crosssell had cached would outlive it both ways; this
    sends the signal, as ``override_settings`` does for a value it sets.
    """
    done: list[tuple[override_settings, tuple[str, ...]]] = []

    def changed(name: str, enter: bool) -> None:
        value = getattr(django_settings, name, None)
        setting_changed.send(sender=override_settings, setting=name, value=value, enter=enter)

    def unset(*names: str) -> None:
        override = override_settings()
        override.enable()
        done.append((override, names))
        for name in names:
            if hasattr(django_settings, name):
                delattr(django_settings, name)
            changed(name, enter=True)

    yield unset
    for override, names in reversed(done):
        override.disable()
        for name in names:
            changed(name, enter=False)


@pytest.fixture
def no_project_settings(unset: Callable[..., None]) -> None:
    """The project sets no ``CROSSSELL_*`` name at all (restored after the test)."""
    unset(*(PREFIX + name for name in DEFAULTS))


@pytest.mark.usefixtures("no_project_settings")
@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_default_is_served_when_the_project_sets_nothing(name: str) -> None:
    assert not hasattr(django_settings, PREFIX + name)
    assert getattr(cs_settings, name) == DEFAULTS[name]


@pytest.mark.usefixtures("no_project_settings")
def test_the_documented_defaults() -> None:
    # The values the README and the docstrings promise (a changed default is a release note).
    assert cs_settings.PRODUCT_MODEL == "crosssell.Product"
    assert cs_settings.MIN_CUSTOMERS == 3
    assert cs_settings.KINDS == ["bought_together", "also_bought"]
    assert (cs_settings.LIST_LENGTH, cs_settings.DEFAULT_LIMIT, cs_settings.MAX_LIMIT) == (
        12,
        4,
        50,
    )
    assert cs_settings.SHARD_SIZE == 50_000
    assert (cs_settings.LOCK_TTL, cs_settings.LOCK_WAIT) == (120, 3600)
    assert cs_settings.CACHE_ALIAS == "default"
    assert cs_settings.PRODUCT_FIELDS == DEFAULT_PRODUCT_FIELDS
    assert conf.get_product_model_string() == "crosssell.Product"


def test_a_project_setting_overrides_its_default(settings: Any) -> None:
    settings.CROSSSELL_MIN_CUSTOMERS = 7
    settings.CROSSSELL_KINDS = ["bought_together"]
    assert cs_settings.MIN_CUSTOMERS == 7
    assert cs_settings.KINDS == ["bought_together"]
    assert DEFAULTS["MIN_CUSTOMERS"] == 3  # the default itself is untouched


def test_a_falsy_project_value_is_not_replaced_by_the_default(settings: Any) -> None:
    settings.CROSSSELL_TRACKING = False
    settings.CROSSSELL_PRICE_BAND = None
    settings.CROSSSELL_ADD_TO_CART_URL = ""
    assert cs_settings.TRACKING is False
    assert cs_settings.PRICE_BAND is None
    assert cs_settings.ADD_TO_CART_URL == ""


def test_override_settings_reloads_on_enter_and_on_exit() -> None:
    before = cs_settings.LIST_LENGTH  # read once: now cached in the process
    with override_settings(CROSSSELL_LIST_LENGTH=before + 5):
        assert before + 5 == cs_settings.LIST_LENGTH
        with override_settings(CROSSSELL_LIST_LENGTH=before + 9):
            assert before + 9 == cs_settings.LIST_LENGTH
        assert before + 5 == cs_settings.LIST_LENGTH
    assert before == cs_settings.LIST_LENGTH


def test_override_settings_as_a_decorator() -> None:
    @override_settings(CROSSSELL_MAX_LIMIT=99)
    def inside() -> int:
        return int(cs_settings.MAX_LIMIT)

    before = cs_settings.MAX_LIMIT
    assert inside() == 99
    assert before == cs_settings.MAX_LIMIT


def test_the_pytest_django_settings_fixture_reloads_too(settings: Any) -> None:
    cs_settings.CACHE_TIMEOUT  # noqa: B018 (cached before the change)
    settings.CROSSSELL_CACHE_TIMEOUT = 17
    assert cs_settings.CACHE_TIMEOUT == 17


def test_a_value_is_read_once_then_served_from_the_cache() -> None:
    # Django's settings object changed behind the receiver's back (no setting_changed): the
    # cached value stays; this is why a project must change settings through override_settings.
    with override_settings(CROSSSELL_RANDOM_STATE=5):
        assert cs_settings.RANDOM_STATE == 5
        django_settings.CROSSSELL_RANDOM_STATE = 6  # sends nothing
        assert django_settings.CROSSSELL_RANDOM_STATE == 6
        assert cs_settings.RANDOM_STATE == 5
    assert (
        getattr(django_settings, "CROSSSELL_RANDOM_STATE", DEFAULTS["RANDOM_STATE"])
        == cs_settings.RANDOM_STATE
    )


def test_another_apps_setting_change_keeps_the_cached_values() -> None:
    cs_settings.MIN_CUSTOMERS  # noqa: B018
    assert "MIN_CUSTOMERS" in vars(cs_settings)
    with override_settings(SOME_OTHER_APP_SETTING=1, CROSSSELL_LIST_LENGTH=3):
        assert "MIN_CUSTOMERS" in vars(cs_settings)  # only CROSSSELL_LIST_LENGTH was dropped
        assert "LIST_LENGTH" not in vars(cs_settings)


@pytest.mark.parametrize("name", ["MIN_CUSTOMER", "min_customers", "NO_SUCH_SETTING", ""])
def test_an_unknown_name_raises_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=f"Invalid crosssell setting: {name!r}"):
        getattr(cs_settings, name)
    assert getattr(cs_settings, name, "fallback") == "fallback"  # hasattr/getattr work


def test_a_misspelt_project_setting_is_ignored_and_the_default_applies(
    settings: Any, unset: Callable[..., None]
) -> None:
    # conf reads only the names it knows: CROSSSELL_MIN_CUSTOMER (no S) sets nothing, with no
    # error at import time. (No system check reports an unknown CROSSSELL_ name either.)
    unset("CROSSSELL_MIN_CUSTOMERS")
    settings.CROSSSELL_MIN_CUSTOMER = 10
    assert DEFAULTS["MIN_CUSTOMERS"] == cs_settings.MIN_CUSTOMERS
    with pytest.raises(AttributeError):
        cs_settings.MIN_CUSTOMER  # noqa: B018


def test_product_fields_merge_a_partial_mapping_over_the_defaults(settings: Any) -> None:
    settings.CROSSSELL_PRODUCT_FIELDS = {"name": "title", "image": None}
    fields = cs_settings.PRODUCT_FIELDS
    assert fields == {**DEFAULT_PRODUCT_FIELDS, "name": "title", "image": None}
    assert fields is not DEFAULT_PRODUCT_FIELDS  # a merged copy: the defaults stay as they are
    assert DEFAULT_PRODUCT_FIELDS["name"] == "name"
    assert DEFAULT_PRODUCT_FIELDS["image"] == "image_url"


def test_product_model_string_reads_the_project_setting(
    settings: Any, unset: Callable[..., None]
) -> None:
    settings.CROSSSELL_PRODUCT_MODEL = "myshop.Article"
    assert conf.get_product_model_string() == "myshop.Article"
    assert cs_settings.PRODUCT_MODEL == "myshop.Article"
    unset("CROSSSELL_PRODUCT_MODEL")
    assert conf.get_product_model_string() == "crosssell.Product"
    assert cs_settings.PRODUCT_MODEL == "crosssell.Product"


def test_every_project_setting_of_the_shops_is_a_known_name() -> None:
    # The settings modules the tests run under (the sample shop, the swapped shop) spell every
    # CROSSSELL_ name right: a typo there would silently test the default instead.
    names = {n[len(PREFIX) :] for n in dir(django_settings) if n.startswith(PREFIX)}
    assert names, "the project sets some CROSSSELL_ names"
    assert names <= set(DEFAULTS)
