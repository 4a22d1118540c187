# Developer entry points. `make demo` and `make test` work on a fresh clone: they set up the host.
PY := .venv/bin/python
LINT := .venv-lint/bin

.PHONY: host test test-fast lint demo bench clean

host:
	bash scripts/setup_host.sh

test: host
	bash scripts/install_browser.sh
	bash scripts/install_manager.sh
	$(PY) -m pytest

# Unit tests only (no server, no browser).
test-fast: host
	$(PY) -m pytest -m "not server and not browser and not slow"

$(LINT)/comfy:
	python3 -m venv .venv-lint
	$(LINT)/pip install -q comfy-cli==1.23.0 ruff==0.17.5

lint: $(LINT)/comfy
	$(LINT)/ruff check __init__.py dps nodes
	$(LINT)/ruff check tests scripts bench testkit
	cd "$(CURDIR)" && $(LINT)/comfy --skip-prompt --no-enable-telemetry node validate

# Options: make demo MODE=dps SAMPLES=8 (default: the workflows' mode, auto, and 4 samples per run; on a
# CPU the time grows with the samples, and 4 keeps the default run near 10 minutes on 2 cores).
demo: host
	$(PY) scripts/demo.py $(if $(MODE),--mode $(MODE)) $(if $(SAMPLES),--samples $(SAMPLES))

bench: host
	$(PY) bench/run_all.py
	$(PY) bench/bench_modes.py
	$(PY) bench/daps_cost.py

clean:
	rm -rf .venv .venv-lint .host demo-output
