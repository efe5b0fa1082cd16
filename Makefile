# The two commands: `make demo` and `make test`. Each sets itself up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU wheel on CI/dev boxes; GPU users keep the torch they have (TORCH= to skip the pin).
TORCH ?= torch==2.13.0

.PHONY: demo test install clean

$(BIN)/scalinglab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if [ -n "$(TORCH)" ]; then $(BIN)/pip install -q "$(TORCH)"; fi
	$(BIN)/pip install -q -e '.[test,ray,hf]'
	@touch $@

install: $(BIN)/scalinglab

demo: install
	$(BIN)/scalinglab demo

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
