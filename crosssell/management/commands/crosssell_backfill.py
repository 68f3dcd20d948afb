"""``manage.py crosssell_backfill``: record past orders from the shop's own order-line table."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crosssell.services.backfill import BackfillError, backfill_from_queryset


class Command(BaseCommand):
    """Backfill purchases from an order-line model, in bulk, keeping the orders' dates."""

    help = (
        "Record the lines of an order-line model (--model app.OrderLine) as crosssell purchases, "
        "reading each value through an ORM lookup from the line. Orders already recorded are "
        "skipped, so running it again adds nothing. Give --customer and --email so that each "
        "person counts once for the privacy threshold (without --email every guest order is "
        "a person of its own). Run crosssell_rebuild afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="The order-line model: app.Model.")
        parser.add_argument(
            "--order", required=True, help="Lookup of the order reference, e.g. order__number."
        )
        parser.add_argument("--product", default="product_id", help="Lookup of the product's pk.")
        parser.add_argument("--quantity", default="quantity", help="Lookup of the quantity.")
        parser.add_argument("--unit-price", default="unit_price", help="Lookup of the unit price.")
        parser.add_argument(
            "--purchased-at", help="Lookup of the order's date, e.g. order__created_at."
        )
        parser.add_argument("--customer", help="Lookup of the customer id, e.g. order__user_id.")
        parser.add_argument(
            "--email",
            help="Lookup of the order's email, e.g. order__email: a guest's orders under one "
            "email count as one customer (and as the account's that ordered with it); only a "
            "keyed hash is stored.",
        )
        parser.add_argument("--batch", type=int, default=5_000, help="Lines per transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = apps.get_model(options["model"])
        except (LookupError, ValueError) as exc:
            raise CommandError(f"--model {options['model']!r}: {exc}") from exc
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        if not options["purchased_at"]:
            self.stderr.write(
                "No --purchased-at: every backfilled order is dated now, which recency and "
                "attribution will read as today's sales."
            )
        try:
            report = backfill_from_queryset(
                model._default_manager.all(),
                order=options["order"],
                product=options["product"],
                quantity=options["quantity"] or None,
                unit_price=options["unit_price"] or None,
                purchased_at=options["purchased_at"] or None,
                customer=options["customer"] or None,
                email=options["email"] or None,
                batch_lines=options["batch"],
                progress=options["verbosity"] > 0,
            )
        except BackfillError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(report.summary()))
