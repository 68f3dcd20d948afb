# The README's two commands: `make run` (the sample shop, embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The test suite talks to real services; these are the defaults on a development machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/crosssell
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run venv test test-wheel test-django61 test-oscar lint typecheck migrations-check check services bench-import bench-engine bench-rebuild bench-serving bench-tracking bench-broker bench-served evaluate clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

## Run the sample shop on http://127.0.0.1:8000 (SQLite, Celery eager: no server needed).
run: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL $(PY) manage.py migrate --noinput
	env -u DATABASE_URL -u REDIS_URL $(PY) manage.py shop_demo --if-empty
	env -u DATABASE_URL -u REDIS_URL $(PY) manage.py runserver 127.0.0.1:8000

## The whole test suite against PostgreSQL and Redis, after lint, types and migrations, in two lanes: the main suite and the Oscar shop;
## beside them the Django 6.1 run, the swapped-product run and the wheel (scripts/test-all.sh).
test: $(STAMP) services check
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) VENV=$(VENV) bash scripts/test-all.sh

## The package as users get it: build the sdist and wheel, install the wheel into a clean venv and
## run a minimal shop on it (noxfile.py, tests/installed/).
test-wheel: $(STAMP) services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/nox -s wheel

## The app and engine tests under Django 6.1 on Python 3.12 (constraints-django61.txt).
test-django61: $(STAMP) services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/nox -s django61

## crosssell in a django-oscar 4.2 shop, installed from the wheel (noxfile.py, tests/oscarshop/).
test-oscar: $(STAMP) services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/nox -s oscar

services:
	bash scripts/ensure-services.sh

check: lint typecheck migrations-check

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy crosssell shop

migrations-check: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL $(PY) manage.py makemigrations --check --dry-run
	env -u DATABASE_URL -u REDIS_URL DJANGO_SETTINGS_MODULE=tests.settings_swapped $(PY) manage.py makemigrations --check --dry-run

## Benchmarks and long runs (outside `make test`; see BENCHMARKS.md and TESTING.md).
DATA ?= ../shared/data
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/crosssell_bench

bench-engine: $(STAMP)
	$(PY) benchmarks/engine.py --products 100000 --orders 1000000

bench-import: $(STAMP) services
	$(PY) benchmarks/import_data.py --data $(DATA)/instacart

bench-rebuild: $(STAMP) services
	$(PY) benchmarks/rebuild.py --products 100000 --orders 1000000 --database-url $(BENCH_DATABASE_URL)

bench-serving: $(STAMP) services
	command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(PY) benchmarks/serving.py --database-url $(BENCH_DATABASE_URL)

bench-tracking: $(STAMP) services
	command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(PY) benchmarks/tracking.py --database-url $(BENCH_DATABASE_URL)

bench-broker: $(STAMP) services
	$(PY) benchmarks/broker_down.py --database-url $(BENCH_DATABASE_URL)

## Issue 16: what the widgets serve, scored by FBT-v1 and CART-v1 beside the engine (BENCHMARKS.md).
bench-served: $(STAMP) services
	$(PY) benchmarks/served.py --data $(DATA)/groceries --database-url $(BENCH_DATABASE_URL)
	$(PY) benchmarks/served.py --data $(DATA)/instacart --queries 20000 --carts 5000 \
	  --database-url $(BENCH_DATABASE_URL)

evaluate: $(STAMP)
	for d in instacart groceries; do \
	  $(PY) manage.py crosssell_evaluate --products $(DATA)/$$d/products.csv.gz \
	    --purchases $(DATA)/$$d/purchases.csv.gz --protocol fbt-v1; done
	$(PY) manage.py crosssell_evaluate --products $(DATA)/movielens-100k/products.csv.gz \
	  --purchases $(DATA)/movielens-100k/purchases.csv.gz --protocol personal-ms

clean:
	rm -rf $(VENV) .nox db.sqlite3 media .mypy_cache .ruff_cache .pytest_cache
