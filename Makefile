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
	$(BIN)/pip install --quiet -c constraints.txt -e ".[tune,test]"
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/mtl train

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .cache mlruns/mlflow.db mlruns/artifacts mlruns/hydra
