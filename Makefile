# Chrono: `make demo` and `make test` work on a fresh Debian machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo
# make demo starts from an empty $(DEMO) folder each time (it is generated, and git-ignored)
PYTEST_ARGS ?=

.PHONY: install demo test lint bench clean

$(BIN)/chrono: pyproject.toml
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/chrono

install: $(BIN)/chrono  ## system packages, virtualenv, Chrono and its test tools

demo: install  ## both pipelines on generated samples: an evidence production and sensor readings
	rm -rf $(DEMO)
	$(BIN)/chrono sample evidence $(DEMO) --size small
	$(BIN)/chrono run $(DEMO)/production $(DEMO)/artifacts --password-file $(DEMO)/passwords.txt
	$(BIN)/chrono export events --db sqlite:///$(DEMO)/artifacts/chrono.db --out $(DEMO)/events.jsonl
	@echo "events: $$(wc -l < $(DEMO)/events.jsonl) in $(DEMO)/events.jsonl; report: $(DEMO)/artifacts/report.html"
	$(BIN)/chrono sensors simulate --db $(DEMO)/sensor_data.db
	cd $(DEMO) && CHRONO_DATA=chrono-data $(abspath $(BIN))/chrono sensors run --once --quiet
	@echo "sensor buckets: $(DEMO)/chrono-data/; notifications: $(DEMO)/chrono-data/notifications.jsonl"

test: install  ## run the whole test suite (unit, acceptance on ../shared/corpus, end-to-end)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint:  ## ruff and mypy
	$(BIN)/ruff check src tests bench run.py
	$(BIN)/mypy

bench: install  ## quick versions of every benchmark
	$(BIN)/python bench/ocr.py --quick
	$(BIN)/python bench/pdf_text.py --quick
	$(BIN)/python bench/sensors.py --quick
	$(BIN)/python bench/resolve.py --quick
	$(BIN)/python bench/upload.py --quick

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
