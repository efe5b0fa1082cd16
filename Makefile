# The two commands: `make demo` and `make test`. Each sets itself up on a fresh machine. `make docs` builds the site.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU wheel on CI/dev boxes; GPU users keep the torch they have (TORCH= to skip the pin).
TORCH ?= torch==2.13.0

.PHONY: demo test install docs clean

$(BIN)/scalinglab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if [ -n "$(TORCH)" ]; then $(BIN)/pip install -q "$(TORCH)"; fi
	$(BIN)/pip install -q -e '.[test,ray,hf,track,docs]'
	@touch $@

install: $(BIN)/scalinglab

demo: install
	$(BIN)/scalinglab demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The documentation site, into site/ (warnings are errors). The CLI reference is generated from the program.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
