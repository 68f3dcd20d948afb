#!/usr/bin/env bash
# `make test` after the checks: the main suite, the swapped-product run, the installed wheel, the
# django-oscar shop, and (beside them, on the second core) the app and engine tests under Django
# 6.1. Each run has its own database and Redis database number, so they never see each other's
# rows or cache; the script fails if any run fails, after all of them have finished.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
DB=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crosssell}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
REDIS_BASE=${REDIS%/*}
mkdir -p .nox
# The shop's cache gives up on a Redis read after 0.5 s (a page must not hang on a Redis that is
# down); with three suites on two cores a healthy Redis can be that slow, so the runs wait longer.
# The outage tests set their own short timeouts.
export REDIS_SOCKET_TIMEOUT=${REDIS_SOCKET_TIMEOUT:-5}
log=.nox/django61.log

# Django 6.1 on Python 3.12 (noxfile.py), in the background; its output is shown at the end.
DATABASE_URL=$DB REDIS_URL=$REDIS_BASE/1 "$VENV/bin/nox" -s django61 >"$log" 2>&1 &
django61=$!

status=0
run() { "$@" || status=1; }
run env DATABASE_URL="$DB" REDIS_URL="$REDIS" "$VENV/bin/python" -m pytest
run env DATABASE_URL="$DB" REDIS_URL="$REDIS" DJANGO_SETTINGS_MODULE=tests.settings_swapped \
  "$VENV/bin/python" -m pytest -m "not e2e and not deep and not celery_worker and not slow" \
  tests/crosssell -p no:cacheprovider
run env DATABASE_URL="$DB" REDIS_URL="$REDIS_BASE/2" "$VENV/bin/nox" -s wheel
run env DATABASE_URL="$DB" REDIS_URL="$REDIS_BASE/3" "$VENV/bin/nox" -s oscar

wait "$django61" || status=1
echo "----- nox -s django61 (ran beside the runs above; full log: $log)"
tail -n 25 "$log"
exit $status
