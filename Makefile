# Two commands for a newcomer: `make demo` and `make test`.
# Each creates or refreshes .venv when the requirements files change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: test demo venv clean

$(RUNTIME_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

demo: $(RUNTIME_STAMP)
	$(PY) -m training.demo

clean:
	rm -rf $(VENV) runs
