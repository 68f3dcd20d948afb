"""``manage.py crosssell_evaluate``: offline evaluation (FBT-v1, PERSONAL-MS, CART-v1)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Evaluate the engine's strategies and the PROTOCOL.md peers on an interchange data set "
        "(products.csv.gz + purchases.csv.gz). Prints one markdown table, or JSON with --json; "
        "progress goes to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--products", help="products.csv.gz (content; optional)")
        parser.add_argument("--purchases", required=True, help="purchases.csv.gz")
        parser.add_argument(
            "--protocol", required=True, choices=["fbt-v1", "personal-ms", "cart-v1"]
        )
        parser.add_argument(
            "--strategies",
            help="Comma-separated registry names or dotted paths (cart-v1: its strategy names).",
        )
        slices = parser.add_mutually_exclusive_group()
        slices.add_argument(
            "--cold", action="store_true", help="Only the cold slice (default: all, then cold)."
        )
        slices.add_argument("--no-cold", action="store_true", help="Only the 'all' slice.")
        parser.add_argument("--no-peers", action="store_true", help="Leave out the peers.")
        parser.add_argument("--json", action="store_true", help="Print JSON only.")
        parser.add_argument("--chart", help="Also save a bar chart of NDCG@10 to this PNG.")

    def handle(self, *args: Any, **options: Any) -> None:
        from crosssell.engine.evaluation.runner import (
            bar_chart,
            markdown_table,
            run_protocol,
            to_json,
        )

        strategies = [s.strip() for s in (options["strategies"] or "").split(",") if s.strip()]
        slices = ["cold"] if options["cold"] else ["all"] if options["no_cold"] else ["all", "cold"]
        if options["cold"] and options["protocol"] != "fbt-v1":
            raise CommandError("--cold applies to fbt-v1 only")
        if options["cold"] and not options["products"]:
            raise CommandError("the cold slice needs --products (only content can serve it)")
        try:
            report = run_protocol(
                options["products"],
                options["purchases"],
                options["protocol"],
                strategies=strategies or None,
                slices=slices,
                peers=not options["no_peers"],
                progress=sys.stderr if options["verbosity"] > 0 else None,
            )
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise CommandError(str(exc)) from exc
        if options["chart"]:
            path = bar_chart(report, options["chart"])
            print(f"chart written to {path}", file=sys.stderr)
        if options["json"]:
            self.stdout.write(to_json(report))
            return
        self.stdout.write(
            f"### {report['protocol']} on {report['dataset']}\n\n{markdown_table(report)}"
        )
        for note in report["notes"]:
            self.stdout.write(f"\nNote: {note}")
