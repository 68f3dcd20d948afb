#!/usr/bin/env bash
# `make test` after the checks, in two lanes (one per core): the main suite, then the django-oscar
# shop; beside them, the app and engine tests under Django 6.1, the swapped-product run and the
# installed wheel. Each run has its own database and Redis database number, so they never see each
# other's rows or cache; the script fails if any run fails, after all of them have finished.
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
# The browser tests fail, rather than skip, without Debian's chromium (ensure-services.sh installs it).
export CROSSSELL_REQUIRE_BROWSER=1
log=.nox/second-lane.log

# Two lanes on the two cores. The second, in the background: Django 6.1 on Python 3.12
# (noxfile.py), then the swapped-product run (its own test database, tests/settings_swapped.py, and Redis db), then the wheel; its
# output is shown at the end. The first: the main suite, then the django-oscar shop.
second_lane() {
  local failed=0
  echo "----- nox -s django61"
  DATABASE_URL=$DB REDIS_URL=$REDIS_BASE/1 "$VENV/bin/nox" -s django61 >.nox/django61.log 2>&1 \
    || failed=1
  tail -n 25 .nox/django61.log
  echo "----- the crosssell tests under tests.settings_swapped (swapshop.Item)"
  DATABASE_URL="$DB" REDIS_URL="$REDIS_BASE/4" DJANGO_SETTINGS_MODULE=tests.settings_swapped \
    "$VENV/bin/python" -m pytest -m "not e2e and not deep and not celery_worker and not slow" \
    tests/crosssell -p no:cacheprovider -q || failed=1
  echo "----- nox -s wheel"
  DATABASE_URL="$DB" REDIS_URL="$REDIS_BASE/2" "$VENV/bin/nox" -s wheel || failed=1
  return $failed
}
second_lane >"$log" 2>&1 &
lane=$!

status=0
run() { "$@" || status=1; }
run env DATABASE_URL="$DB" REDIS_URL="$REDIS" "$VENV/bin/python" -m pytest --durations=15
run env DATABASE_URL="$DB" REDIS_URL="$REDIS_BASE/3" "$VENV/bin/nox" -s oscar

wait "$lane" || status=1
echo "----- the second lane (ran beside the runs above; log: $log)"
cat "$log"
exit $status
