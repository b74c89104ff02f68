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

test: install
	$(PY) -m pytest -m "not slow" -q

bench-accuracy: weights
	$(PY) bench/nlu_accuracy.py

clean-runs:
	rm -rf runs/
