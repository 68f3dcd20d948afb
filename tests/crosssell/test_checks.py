"""Every crosssell system check id is triggered by a test, the ids come out in numeric order,
and the README's "System checks" table lists each one.

To add a check: give it an id in your range, add a row to ``CASES`` (the id and the settings
that trigger it), and a row to the README table. ``test_every_check_id_has_a_case`` fails until
both are there. Rows run under both settings modules (the sample shop and the swapped shop), so
trigger the check with settings that exist in both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

import crosssell

ROOT = Path(crosssell.__file__).resolve().parent
README = ROOT.parent / "README.md"
ID = re.compile(r"crosssell\.([EW])(\d{3})")


def fields(**changes: Any) -> dict[str, Any]:
    """The product field mapping in force, with ``changes``."""
    from crosssell.conf import settings as cs_settings

    return {**cs_settings.PRODUCT_FIELDS, **changes}


def drf(**changes: Any) -> dict[str, Any]:
    """``REST_FRAMEWORK`` with DRF's own throttles and ``changes`` (``None`` removes a key)."""
    from django.conf import settings

    value = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
        **changes,
    }
    return {k: v for k, v in value.items() if v is not None}


#: (check id, settings that trigger it). The mapping is built lazily: it reads the settings.
CASES: list[tuple[str, Any]] = [
    ("crosssell.E001", lambda: {"CROSSSELL_MIN_CUSTOMERS": -1}),
    ("crosssell.E002", lambda: {"CROSSSELL_DEFAULT_LIMIT": 60, "CROSSSELL_MAX_LIMIT": 50}),
    ("crosssell.E003", lambda: {"CROSSSELL_STRATEGIES": []}),
    ("crosssell.E004", lambda: {"CROSSSELL_TRACKING_BATCH": 0}),
    ("crosssell.E005", lambda: {"CROSSSELL_TRACKING_BATCH_SECONDS": -1}),
    ("crosssell.W006", lambda: {"CROSSSELL_MIN_CUSTOMER": 5}),
    ("crosssell.E010", lambda: {"CROSSSELL_PRODUCT_MODEL": "nowhere.Product"}),
    ("crosssell.E011", lambda: {"CROSSSELL_PRODUCT_FIELDS": fields(colour="colour")}),
    ("crosssell.E012", lambda: {"CROSSSELL_PRODUCT_FIELDS": fields(key=None)}),
    ("crosssell.E013", lambda: {"CROSSSELL_PRODUCT_FIELDS": fields(name="no_such_field")}),
    # every product model has the reverse relation of Purchase.product (multi-valued)
    (
        "crosssell.E030",
        lambda: {"CROSSSELL_PRODUCT_FIELDS": fields(key="crosssell_purchases__order_ref")},
    ),
    (
        "crosssell.W030",
        lambda: {"CROSSSELL_PRODUCT_FIELDS": fields(category="crosssell_purchases")},
    ),
    ("crosssell.E031", lambda: {"CROSSSELL_CATALOG": "crosssell.services.nowhere.Catalog"}),
    ("crosssell.E031", lambda: {"CROSSSELL_CATALOG": "builtins.dict"}),
    ("crosssell.E032", lambda: {"CROSSSELL_FORMAT_MONEY": "crosssell.services.nowhere.money"}),
    ("crosssell.E032", lambda: {"CROSSSELL_FORMAT_MONEY": "builtins.len"}),  # raises TypeError
    ("crosssell.E032", lambda: {"CROSSSELL_FORMAT_MONEY": "builtins.repr"}),  # fine: a str
    # crosssell.W040-W042: the client address behind proxies (checks.check_client_address)
    ("crosssell.W040", lambda: {"REST_FRAMEWORK": drf(NUM_PROXIES=None)}),
    (
        "crosssell.W041",
        lambda: {"CROSSSELL_NUM_PROXIES": 1, "REST_FRAMEWORK": drf(NUM_PROXIES=2)},
    ),
    ("crosssell.W042", lambda: {"CROSSSELL_NUM_PROXIES": -1}),
]

#: Settings that trigger many checks at once, to see the order they come out in. Extend it
#: with settings of your own checks (keys other rows do not set).
ORDERED: dict[str, Any] = {
    "CROSSSELL_MIN_CUSTOMERS": -1,
    "CROSSSELL_DEFAULT_LIMIT": 60,
    "CROSSSELL_MAX_LIMIT": 50,
    "CROSSSELL_STRATEGIES": [],
    "CROSSSELL_TRACKING_BATCH": 0,
    "CROSSSELL_TRACKING_BATCH_SECONDS": -1,
    "CROSSSELL_CATALOG": "crosssell.services.nowhere.Catalog",
    "CROSSSELL_FORMAT_MONEY": "builtins.len",
    "CROSSSELL_MIN_CUSTOMER": 5,  # W006
    "CROSSSELL_NUM_PROXIES": -1,  # W042
}


def crosssell_messages() -> list[checks.CheckMessage]:
    """What crosssell's own registered checks report, in registration order."""
    found: list[checks.CheckMessage] = []
    for check in checks.registry.registry.get_checks(include_deployment_checks=True):
        if getattr(check, "__module__", "").startswith("crosssell"):
            found.extend(check(app_configs=None))
    return found


def ids_under(overrides: dict[str, Any]) -> list[str]:
    with override_settings(**overrides):
        return [m.id or "" for m in crosssell_messages()]


def test_the_settings_in_force_pass_every_check() -> None:
    assert [m for m in crosssell_messages() if m.level >= checks.WARNING] == []


@pytest.mark.parametrize(
    ("check_id", "overrides"), CASES, ids=[f"{c}-{n}" for n, (c, _) in enumerate(CASES)]
)
def test_each_check_is_triggered(check_id: str, overrides: Any) -> None:
    ids = ids_under(overrides())
    if overrides().get("CROSSSELL_FORMAT_MONEY") == "builtins.repr":
        assert check_id not in ids  # a callable returning a str is fine
    else:
        assert check_id in ids


def test_e030_names_the_field_and_says_what_to_do() -> None:
    with override_settings(CROSSSELL_PRODUCT_FIELDS=fields(parent="crosssell_purchases__product")):
        (error,) = [m for m in crosssell_messages() if m.id == "crosssell.E030"]
    assert "'parent'" in error.msg and "crosssell_purchases__product" in error.msg
    assert "foreign key" in (error.hint or "")


def _key(check_id: str) -> tuple[int, str]:
    match = ID.fullmatch(check_id)
    assert match, check_id
    return int(match.group(2)), match.group(1)


def crosssell_ids(**kwargs: Any) -> list[str]:
    """The crosssell ids of everything Django's ``run_checks(**kwargs)`` reports, in order."""
    return [m.id for m in checks.run_checks(**kwargs) if (m.id or "").startswith("crosssell.")]


def test_ids_come_out_in_numeric_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across every part (settings, client address, Celery) as Django runs them."""
    import crosssell.tasks

    monkeypatch.setattr(crosssell.tasks, "is_fallback_app", lambda app: True)  # W050
    mapping = fields(key="crosssell_purchases__order_ref", category="crosssell_purchases")
    overrides = {**ORDERED, "CROSSSELL_PRODUCT_FIELDS": mapping}
    with override_settings(**overrides, REST_FRAMEWORK=drf(NUM_PROXIES=None)):  # W040
        ids = crosssell_ids()
        deploy = crosssell_ids(include_deployment_checks=True)
        security = crosssell_ids(tags=[checks.Tags.security])
        other = crosssell_ids(tags=[checks.Tags.models, checks.Tags.compatibility])
    assert {
        "crosssell.E001",
        "crosssell.W006",
        "crosssell.E030",
        "crosssell.W030",
        "crosssell.E032",
        "crosssell.W040",
        "crosssell.W042",
        "crosssell.W050",
    } <= set(ids)
    numbers = [_key(i)[0] for i in ids]
    assert numbers == sorted(numbers), ids
    assert deploy == ids  # crosssell has no deployment-only check
    assert security == ids  # the client-address part is a security check; the rest come along
    assert other == []  # no other tag runs crosssell's check
    registered = [
        c
        for c in checks.registry.registry.get_checks(include_deployment_checks=True)
        if getattr(c, "__module__", "").startswith("crosssell")
    ]
    assert len(registered) == 1, registered  # one entry point: no set order between parts


def _ids_in_code() -> set[str]:
    found: set[str] = set()
    for path in ROOT.rglob("*.py"):
        found |= {f"crosssell.{m.group(1)}{m.group(2)}" for m in ID.finditer(path.read_text())}
    return found


#: Ids whose trigger is not a Django setting, with the test that triggers each one. The Celery
#: checks read the Celery app, not ``settings``: tests/crosssell/test_celery_setup.py builds apps.
ELSEWHERE: dict[str, str] = {
    "crosssell.W050": "test_celery_setup.py::test_celery_warnings[crosssells-app-without-broker]",
    "crosssell.W051": "test_celery_setup.py::test_celery_warnings[no-broker]",
    "crosssell.W052": "test_celery_setup.py::test_celery_warnings[redis-without-connect-timeout]",
}


def test_every_check_id_has_a_case() -> None:
    assert _ids_in_code() - {c for c, _ in CASES} - set(ELSEWHERE) == set()


def test_the_tests_named_for_other_ids_exist() -> None:
    for where in ELSEWHERE.values():
        module, _, name = where.partition("::")
        text = (Path(__file__).parent / module).read_text()
        function, _, case = name.partition("[")
        assert f"def {function}(" in text, where
        assert not case or f'"{case.rstrip("]")}"' in text, where


def test_readme_lists_every_check_id() -> None:
    text = README.read_text()
    section = text[text.index("## System checks") :]
    listed = set(re.findall(r"^\|\s*`?(crosssell\.[EW]\d{3})", section, flags=re.M))
    assert _ids_in_code() - listed == set()


def test_w040_w041_stay_quiet_when_nothing_is_spoofable(settings: Any) -> None:
    """W040 is about DRF's own get_ident; crosssell's throttle never trusts the header unasked."""
    own = ["crosssell.api.throttling.CrosssellRateThrottle"]
    for rest in (
        drf(NUM_PROXIES=0),
        drf(NUM_PROXIES=2),
        drf(NUM_PROXIES=None, DEFAULT_THROTTLE_CLASSES=own),
        drf(NUM_PROXIES=None, DEFAULT_THROTTLE_CLASSES=[]),
    ):
        assert "crosssell.W040" not in ids_under({"REST_FRAMEWORK": rest})
    same = {"CROSSSELL_NUM_PROXIES": 1, "REST_FRAMEWORK": drf(NUM_PROXIES=1)}
    assert "crosssell.W041" not in ids_under(same)
    bad = {"CROSSSELL_NUM_PROXIES": "1", "REST_FRAMEWORK": drf(NUM_PROXIES=1)}
    assert [i for i in ids_under(bad) if i.startswith("crosssell.W04")] == ["crosssell.W042"]


def test_w006_names_the_setting_that_was_meant(settings: Any) -> None:
    settings.CROSSSELL_MIN_CUSTOMER = 5
    found = [m for m in checks.run_checks() if m.id == "crosssell.W006"]
    assert [m.msg for m in found] == [
        "CROSSSELL_MIN_CUSTOMER is not a crosssell setting, so it has no effect."
    ]
    assert found[0].hint == "Did you mean CROSSSELL_MIN_CUSTOMERS?"
