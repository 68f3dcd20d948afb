"""``manage.py crosssell_import``: load the interchange files (products, purchases) in bulk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crosssell.services.importing import ImportConfigError, ImportFormatError, import_interchange


class Command(BaseCommand):
    """Import products.csv.gz and/or purchases.csv.gz; a bad line aborts with nothing written."""

    help = (
        "Load the interchange format (products.csv.gz: product_id,name,category,price; "
        "purchases.csv.gz: order_id,customer_id,product_id,quantity,unit_price,purchased_at) "
        "in one transaction. Re-importing the same purchases inserts nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--products", type=Path, help="products.csv.gz")
        parser.add_argument("--purchases", type=Path, help="purchases.csv.gz")
        parser.add_argument(
            "--match",
            choices=("key", "pk"),
            default="key",
            help="Match the purchases' product_id against the product's key field (default) or "
            "its primary key (pk: purchases only).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["products"] is None and options["purchases"] is None:
            raise CommandError("Give --products, --purchases or both.")
        try:
            report = import_interchange(
                options["products"],
                options["purchases"],
                progress=options["verbosity"] > 0,
                match=options["match"],
            )
        except (ImportFormatError, ImportConfigError) as exc:
            raise CommandError(f"Nothing imported. {exc}") from exc
        self.stdout.write(self.style.SUCCESS(report.summary()))
