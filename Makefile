# The README's two commands: `make app` (set up, then start the demo) and `make test` (set up, then run the suite).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: app test

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $@

app: $(VENV)/.installed
	$(PY) app.py

# The suite needs the test tools (requirements-test.txt) and tests the optional Ray backend (requirements-ray.txt),
# neither of which `make app` installs.
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-ray.txt
	$(PY) -m pip install -r requirements-test.txt -r requirements-ray.txt
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest
