"""``manage.py crosssell_evaluate`` on interchange files the engine generates (no database)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from crosssell.engine.synthetic import make_shop, write_interchange


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    shop = make_shop(n_products=300, n_orders=4000, random_state=5)
    return write_interchange(shop, tmp_path_factory.mktemp("shop"))


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("crosssell_evaluate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_json_holds_only_the_report(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    products, purchases = files
    out, _ = _run(
        "--products",
        str(products),
        "--purchases",
        str(purchases),
        "--protocol",
        "fbt-v1",
        "--strategies",
        "blend,cocount",
        "--json",
    )
    report = json.loads(out)
    assert report["protocol"] == "fbt-v1" and report["dataset"] == products.parent.name
    rows = report["results"]
    keys = {
        "strategy",
        "slice",
        "peer",
        "default",
        "hr@10",
        "recall@10",
        "ndcg@10",
        "precision@10",
        "map",
        "fit_seconds",
    }
    assert all(set(r) == keys for r in rows)
    assert {(r["strategy"], r["slice"]) for r in rows} >= {
        ("blend", "all"),
        ("blend", "cold"),
        ("cocount", "all"),
        ("peer-cocount", "all"),
    }
    assert [r["strategy"] for r in rows if r["default"]] == ["blend", "blend"]
    # progress went to stderr, never into the JSON
    assert "fbt-v1 all" in capsys.readouterr().err


def test_markdown_table_and_chart(files: tuple[Path, Path], tmp_path: Path) -> None:
    products, purchases = files
    chart = tmp_path / "ndcg.png"
    out, _ = _run(
        "--products",
        str(products),
        "--purchases",
        str(purchases),
        "--protocol",
        "fbt-v1",
        "--strategies",
        "popularity",
        "--no-cold",
        "--no-peers",
        "--chart",
        str(chart),
    )
    assert "| strategy | slice | hr@10 | recall@10 | ndcg@10 |" in out
    assert "| popularity | all |" in out and "cold" not in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_personal_protocol_on_generated_customers(files: tuple[Path, Path]) -> None:
    _, purchases = files
    out, _ = _run("--purchases", str(purchases), "--protocol", "personal-ms", "--json")
    rows = {r["strategy"]: r for r in json.loads(out)["results"]}
    assert rows["ease"]["default"] and rows["peer-popularity"]["peer"]
    assert rows["ease"]["precision@10"] is not None


def test_bad_input_is_a_clear_error(tmp_path: Path, files: tuple[Path, Path]) -> None:
    with pytest.raises(CommandError, match="no such file"):
        _run("--purchases", str(tmp_path / "missing.csv.gz"), "--protocol", "fbt-v1")
    with pytest.raises(CommandError, match="unknown strategy"):
        _run("--purchases", str(files[1]), "--protocol", "fbt-v1", "--strategies", "nope")
    with pytest.raises(CommandError, match="needs --products"):
        _run("--purchases", str(files[1]), "--protocol", "fbt-v1", "--cold")
