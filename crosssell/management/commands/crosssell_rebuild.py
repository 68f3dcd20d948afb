"""``manage.py crosssell_rebuild``: recompute and publish every product's recommendations."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm


class Command(BaseCommand):
    help = "Recompute the recommendations from the order history and make them live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="Queue the rebuild for a Celery worker instead of running it here.",
        )
        parser.add_argument("--strategy", help="A strategy name or dotted path (default: blend).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["run_async"]:
            from crosssell.tasks import rebuild as rebuild_task

            result = rebuild_task.delay(trigger="command")
            self.stdout.write(f"Rebuild queued as task {result.id}.")
            return
        from crosssell.services.build import rebuild

        strategy = None
        if options["strategy"]:
            from crosssell.engine.registry import build_strategy

            strategy = build_strategy(options["strategy"])
        bar = tqdm(total=100, unit="%", disable=options["verbosity"] == 0, file=self.stderr)
        stage_seen = {"stage": ""}

        def progress(stage: str, fraction: float, rows: int) -> None:
            if stage != stage_seen["stage"]:
                stage_seen["stage"] = stage
                bar.set_description(stage)
                bar.n = 0
            bar.n = round(100 * fraction)
            bar.set_postfix(rows=rows)
            bar.refresh()

        try:
            build = rebuild(trigger="command", strategy=strategy, progress=progress)
        finally:
            bar.close()
        counts = build.counts
        seconds = build.duration.total_seconds() if build.duration else 0.0
        self.stdout.write(
            self.style.SUCCESS(
                f"Build #{build.pk} is live: {counts.get('recommendations', 0)} recommendations "
                f"for {counts.get('products', 0)} products from {counts.get('lines', 0)} order "
                f"lines ({seconds:.1f}s)."
            )
        )
