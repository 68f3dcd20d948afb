"""The engine stays free of Django and TensorFlow (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODULES = [
    "crosssell.engine",
    "crosssell.engine.registry",
    "crosssell.engine.blend",
    "crosssell.engine.rules",
    "crosssell.engine.evidence",
    "crosssell.engine.item_knn",
    "crosssell.engine.user_knn",
    "crosssell.engine.content",
    "crosssell.engine.hybrid",
    "crosssell.engine.synthetic",
    "crosssell.engine.evaluation",
]


def test_importing_the_engine_imports_neither_django_nor_tensorflow() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "from crosssell.engine.registry import build_strategy, available_strategies\n"
        + "[build_strategy(n) for n in available_strategies(include_lazy=False)]\n"
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        + "('django', 'tensorflow', 'keras', 'matplotlib'))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"the engine imported: {out.stdout.strip()}"
