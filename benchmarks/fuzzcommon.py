"""What the two long fuzz runs share: their options and the Django setup."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_arguments(doc: str | None, examples: int, examples_help: str) -> argparse.Namespace:
    """``--examples``, ``--seed``, ``--json`` and ``--quiet``, checked."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--examples", type=int, default=examples, help=examples_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    return args


def setup_django() -> None:
    """The sample shop's settings (unless ``DJANGO_SETTINGS_MODULE`` says otherwise)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
