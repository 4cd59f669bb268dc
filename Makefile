# Two entry points, each creating the virtual environment when it is missing:
#   make demo   train IMP and LRR on MNIST-1D (generated offline), then compare accuracy and sign flips
#   make test   the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNS ?= runs/demo

.PHONY: demo test browser lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[train,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/signscope train --preset mnist1d --method imp --seed 0 --out $(RUNS)/imp --force
	$(BIN)/signscope train --preset mnist1d --method lrr --seed 0 --out $(RUNS)/lrr --force
	$(BIN)/signscope acc $(RUNS)/imp $(RUNS)/lrr
	$(BIN)/signscope flips $(RUNS)/lrr $(RUNS)/imp

# Debian packages the tests drive: headless Chromium renders report.html, tmux runs the TUI
# in a real pseudo-terminal.
browser:
	@{ command -v chromium && command -v tmux; } >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium tmux >/dev/null) \
	  || echo "warning: could not install chromium/tmux; the browser and terminal tests will be skipped"; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info
