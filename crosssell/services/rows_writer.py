"""Writing one build's ranked rows: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere.

The rows come from :func:`crosssell.engine.ranking.compute_rows` as item indices; the writer
maps them to products and stores exactly the same values either way (the score as a double,
the evidence's floats rounded to 6 digits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from django.db import connections, router
from django.db.models import Field
from django.utils import timezone

from crosssell.engine.ranking import Rows
from crosssell.models import Build, Recommendation
from crosssell.services.extract import Extracted

#: ``progress(stage, fraction, rows)``: a build's progress callback (stage name, share done of
#: that stage, rows so far), as :func:`crosssell.services.build.rebuild` takes it.
ProgressFn = Callable[[str, float, int], None]
#: Rows saved by one ``bulk_create`` (databases other than PostgreSQL).
WRITE_BATCH = 5_000


def write_rows(build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn) -> int:
    """Bulk-insert one kind's rows for ``build``; returns how many were written.

    PostgreSQL gets them by ``COPY`` (formatted in blocks while the server ingests the previous
    one), any other database by ``bulk_create``.
    """
    db = router.db_for_write(Recommendation)
    if connections[db].vendor == "postgresql":
        return _copy_rows(db, build, ex, rows, kind, report)
    return _bulk_create_rows(db, build, ex, rows, kind, report)


def _bulk_create_rows(
    db: str, build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn
) -> int:
    pids = ex.product_ids
    total = len(rows)
    ev_names = list(rows.evidence)
    written = 0
    for start in range(0, total, WRITE_BATCH):
        stop = min(start + WRITE_BATCH, total)
        objs = [
            Recommendation(
                build=build,
                kind=kind,
                source_id=int(pids[rows.src[i]]),
                target_id=int(pids[rows.dst[i]]),
                rank=int(rows.rank[i]),
                score=float(rows.score[i]),
                strategy=rows.strategy[i],
                evidence={name: _jsonable(rows.evidence[name][i]) for name in ev_names},
            )
            for i in range(start, stop)
        ]
        Recommendation.objects.using(db).bulk_create(objs)
        written += len(objs)
        report("write", written / max(total, 1), written)
    return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return round(float(value), 6)
    return value


#: Rows formatted and sent in one ``COPY`` statement.
COPY_BATCH = 100_000


def _copy_rows(
    db: str, build: Build, ex: Extracted, rows: Rows, kind: str, report: ProgressFn
) -> int:
    """``write_rows`` on PostgreSQL: text ``COPY``, one ``%`` format per row.

    The values are exactly those ``bulk_create`` would store: the score as a double, the
    evidence's floats rounded to 6 digits, every column with a default given explicitly.
    """
    from psycopg.copy import QueuedLibpqWriter

    meta = Recommendation._meta
    qn = connections[db].ops.quote_name
    names = ["build", "source", "target", "kind", "score", "rank", "strategy", "evidence"]
    names += ["status", "created_at", "updated_at"]
    columns = ", ".join(qn(cast("Field[Any, Any]", meta.get_field(f)).column) for f in names)
    sql = f"COPY {qn(meta.db_table)} ({columns}) FROM STDIN"
    now = _copy_text(str(timezone.now()))
    evidence_fmt, evidence_cols = _evidence_format(rows.evidence)
    template = "\t".join(
        [
            str(build.pk),
            "%d",
            "%d",
            _copy_text(kind).replace("%", "%%"),
            "%r",
            "%d",
            "%s",
            evidence_fmt,
            _copy_text(Recommendation.Status.AUTO).replace("%", "%%"),
            now,
            now,
        ]
    )
    template += "\n"
    pids = ex.product_ids
    total = len(rows)
    strategy = rows.strategy
    if any(_copy_text(s) != s for s in set(strategy)):
        strategy = [_copy_text(s) for s in strategy]

    def block(start: int) -> str:
        part = slice(start, min(start + COPY_BATCH, total))
        values = zip(
            pids[rows.src[part]].tolist(),
            pids[rows.dst[part]].tolist(),
            rows.score[part].astype(np.float64).tolist(),
            rows.rank[part].tolist(),
            strategy[part],
            *(column(part) for column in evidence_cols),
            strict=True,
        )
        return "".join(map(template.__mod__, values))

    starts = list(range(0, total, COPY_BATCH))
    written = 0
    with connections[db].cursor() as cursor:
        raw = cursor.cursor
        text = block(0) if starts else ""
        for pos, start in enumerate(starts):
            # One COPY per block: between two, ``report`` may use this connection (the build's
            # progress), which it must not while a COPY is open.
            with raw.copy(sql, writer=QueuedLibpqWriter(raw)) as copy:
                copy.write(text)
                # formatted while the server ingests the block just sent
                text = block(starts[pos + 1]) if pos + 1 < len(starts) else ""
            written = min(start + COPY_BATCH, total)
            report("write", written / max(total, 1), written)
    return written


def _evidence_format(
    evidence: dict[str, npt.NDArray[Any]],
) -> tuple[str, list[Callable[[slice], list[Any]]]]:
    """A ``%`` template of the evidence's JSON and, per placeholder, its values for a slice."""
    import json

    parts: list[str] = []
    cols: list[Callable[[slice], list[Any]]] = []
    for name, values in evidence.items():
        key = _copy_text(json.dumps(name)).replace("%", "%%")
        arr = np.asarray(values)
        if arr.dtype.kind in "iu":
            parts.append(f"{key}: %d")
        elif arr.dtype.kind == "f":
            parts.append(f"{key}: %r")
        else:
            parts.append(f"{key}: %s")
        cols.append(_evidence_column(arr))
    return "{" + ", ".join(parts) + "}", cols


def _evidence_column(arr: npt.NDArray[Any]) -> Callable[[slice], list[Any]]:
    """The values of one evidence column for a slice, as ``_jsonable`` would store them."""
    import json

    def ints(part: slice) -> list[Any]:
        return list(arr[part].tolist())

    def floats(part: slice) -> list[Any]:
        return [round(v, 6) for v in arr[part].tolist()]

    def other(part: slice) -> list[Any]:
        return [_copy_text(json.dumps(_jsonable(v))) for v in arr[part]]

    if arr.dtype.kind in "iu":
        return ints
    return floats if arr.dtype.kind == "f" else other


def _copy_text(value: str) -> str:
    """``value`` escaped for a text-format ``COPY`` field."""
    if not any(c in value for c in "\\\t\n\r"):
        return value
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


__all__ = ["COPY_BATCH", "WRITE_BATCH", "ProgressFn", "write_rows"]
