# openalgo-proxy: `make run` starts the system on a simulated market; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv lint typecheck check bench bench-smoke soak clean browser ops-tools ops-check

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/openalgo-proxy run

test: $(STAMP)
	$(BIN)/python -m pytest -q

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

ops-check: $(STAMP) ops-tools
	$(BIN)/hadolint --failure-threshold info Dockerfile
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	haproxy -c -q -f deploy/haproxy.cfg
	OPENALGO_API_KEY=check GRAFANA_ADMIN_PASSWORD=check docker-compose -f deploy/compose.yaml --profile ha config -q

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
