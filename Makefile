# Two set-up commands on a fresh machine:  `make run` (main job)  and  `make test` (test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: install run test clean

install: $(STAMP)

# constraints.txt pins the versions this project was tested with (regenerate: pip freeze --exclude-editable)
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat: the project root goes on sys.path, so Hydra finds the gpyopt sweeper in hydra_plugins/
	$(BIN)/pip install --quiet -c constraints.txt -e ".[tune,test]" --config-settings editable_mode=compat
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/mtl train

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .cache mlruns/mlflow.db mlruns/artifacts mlruns/hydra
