# Two commands do all setup on a fresh machine:
#   make run    install, fetch+convert the MiniLM weights, short real SNIPS fine-tune + metrics
#   make test   install, run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BERT_NLU_CACHE ?= $(HOME)/.cache/bert_nlu
export BERT_NLU_CACHE
PY := $(VENV)/bin/python

.PHONY: install weights run test bench-accuracy clean-runs

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

weights: install
	$(PY) -m bert_nlu.convert --minilm

run: weights
	$(PY) run_bert_nlu.py --flagfile=configs/snips_quick.cfg --output_dir=runs/snips_quick \
	    --overwrite_output_dir

# Two pytest workers, one test file each at a time (module fixtures are built once per file): most
# of a tiny-model test is single-threaded graph building, so two share the 2 cores well (20 min
# instead of 26-29 on this machine).
test: install
	$(PY) -m pytest -m "not slow" -q -n 2 --dist loadfile

bench-accuracy: weights
	$(PY) bench/nlu_accuracy.py

clean-runs:
	rm -rf runs/
