# The two commands of the quick start: `make run` and `make test`. Both build the virtualenv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

HOST ?= 127.0.0.1
PORT ?= 8000
# The scale-out run of the suite: this machine's PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/messenger
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run worker test test-embedded test-scaleout test-browser screenshots bench venv migrate clean

venv: $(STAMP)

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed (set PYTHON=... to use another)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

migrate: venv
	$(PY) manage.py migrate --noinput

# The server and, beside it, the task worker that posts developer apps' webhooks; both stop together.
# uvicorn rather than Daphne: on the websocket path it adds 30-70% of the latency Daphne adds to a
# bare relay's, within the benchmark's 3x of the relay where Daphne is not (docs/performance.md);
# both stay supported. Like Daphne, it drops websocket messages over 1 MiB; messenger itself answers
# frames over 64 KiB with frame_too_large.
# (tests/live_server.py: UVICORN_FLAGS, the same for the test servers)
UVICORN_FLAGS := --lifespan off --ws-max-size 1048576
run: migrate
	$(PY) manage.py seed_demo --host $(HOST)
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py db_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/uvicorn $(UVICORN_FLAGS) --host $(HOST) --port $(PORT) messenger.asgi:application

# The task worker alone (a scaled-out deployment runs it as its own service).
worker: migrate
	$(PY) manage.py db_worker

test: test-embedded test-scaleout

test-embedded: venv
	@test -x /usr/bin/chromium || echo "NOTE: no Chromium at /usr/bin/chromium, so the browser tests (tests/browser) are skipped; install it with 'apt-get install chromium' (.ci/run does)."
	$(PY) -m pytest

# The end-to-end browser tests alone (headless Chromium against a live server, as `make run` serves it).
test-browser: venv
	$(PY) -m pytest -m browser

# Retake docs/screenshots/*.png from the browser tests.
screenshots: venv
	MESSENGER_SCREENSHOTS=docs/screenshots $(PY) -m pytest -m browser -q

test-scaleout: venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m "not browser"

# The benchmark (docs/performance.md): prints a table, writes bench/results/bench-<time>.json.
# BENCH_QUICK=1 make bench runs a smaller version in a few minutes.
bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var
