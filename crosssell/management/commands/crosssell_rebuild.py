"""``manage.py crosssell_rebuild``: recompute and publish every product's recommendations
(``--variants``: the own builds of the active experiments' variants instead)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from crosssell.models import Build, Variant


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
        parser.add_argument(
            "--variants",
            action="store_true",
            help=(
                "Compute the own build of every variant with a strategy of the active "
                "experiments (left ready, served to that variant only); the live build stays."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["variants"] and options["strategy"]:
            raise CommandError("--strategy does not apply to --variants: each names its own.")
        if options["variants"] and options["run_async"]:
            from crosssell.tasks import rebuild_variants

            result = rebuild_variants.delay()
            self.stdout.write(f"Variant builds queued as task {result.id}.")
            return
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

        if options["variants"]:
            from crosssell.services.variants import build_active_variants

            try:
                builds = build_active_variants(progress=progress)
            finally:
                bar.close()
            self._report_variants(builds)
            return
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

    def _report_variants(self, builds: list[Build]) -> None:
        if not builds:
            self.stdout.write("No active experiment has a variant with a strategy: nothing to do.")
            return
        served = {v.build_id: v for v in Variant.objects.filter(build__in=builds)}
        for build in builds:
            variant = served.get(build.pk)
            seconds = build.duration.total_seconds() if build.duration else 0.0
            self.stdout.write(
                self.style.SUCCESS(
                    f"Build #{build.pk} ({build.parameters.get('strategy', '')}) is ready for "
                    f"variant {variant if variant is not None else '(deleted)'}: "
                    f"{build.counts.get('recommendations', 0)} recommendations ({seconds:.1f}s)."
                )
            )
