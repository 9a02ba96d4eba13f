PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/openlocker demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/planning_routes.py
	$(BIN)/python bench/capacity.py
	$(BIN)/python bench/boards.py
	$(BIN)/python bench/orders.py
	$(BIN)/python bench/directory.py
	PYTHONPATH=. $(BIN)/python bench/notify.py
	PYTHONPATH=. $(BIN)/python bench/pickup_page.py
	PYTHONPATH=. $(BIN)/python bench/kiosk_sync.py
	PYTHONPATH=. $(BIN)/python bench/kiosk.py
	PYTHONPATH=. $(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) var .pytest_cache
