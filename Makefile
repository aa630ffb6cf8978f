# The two commands of the README: `make demo` and `make test`. Both set up what they need
# first (idempotently): a virtualenv with torch + the project, and the Debian servers.
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
# CPU build on these machines (a local wheel); on a GPU machine pick the CUDA build you want.
TORCH     ?= torch==2.13.0
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: demo test setup servers clean

demo: setup
	$(VENV)/bin/streamrec demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP) servers

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# redis-server for state, prometheus/promtool for the metrics and alert tests, node/npm for the tested
# Node client (tests/test_node_client.py installs its pinned packages with npm ci).
servers:
	@command -v redis-server >/dev/null && command -v promtool >/dev/null && command -v npm >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends redis-server prometheus \
	    $$(command -v npm >/dev/null || echo nodejs npm) >/dev/null; }

clean:
	rm -rf $(VENV) .streamrec .pytest_cache
