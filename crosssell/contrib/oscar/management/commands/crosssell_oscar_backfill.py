"""``manage.py crosssell_oscar_backfill``: load Oscar's past orders as purchases (with their
dates, in bulk) and Oscar's hand-made recommendations as pins; then rebuild."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import get_current_timezone, is_naive, make_aware

from crosssell.contrib.oscar import orders, pins


class Command(BaseCommand):
    help = "Load Oscar's existing orders and product recommendations into crosssell."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="Only orders placed on or after this date/time.")
        parser.add_argument("--batch", type=int, default=2000, help="Orders per round trip.")
        parser.add_argument(
            "--no-rebuild", action="store_true", help="Do not rebuild the lists afterwards."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            raw = options["since"]
            since = parse_datetime(raw)
            if since is None and (day := parse_date(raw)) is not None:
                since = parse_datetime(f"{day.isoformat()}T00:00:00")
            if since is None:
                raise CommandError(f"--since: {raw!r} is not a date or date-time.")
            if is_naive(since):
                since = make_aware(since, get_current_timezone())
        if options["batch"] < 1:
            raise CommandError("--batch: at least 1.")
        result = orders.backfill(since=since, batch=options["batch"])
        self.stdout.write(
            f"{result.orders} orders read, {result.lines} lines, {result.created} new purchases."
        )
        pinned = pins.sync()
        self.stdout.write(f"{pinned} recommendations pinned from Oscar.")
        if not options["no_rebuild"]:
            call_command("crosssell_rebuild", verbosity=options["verbosity"])
