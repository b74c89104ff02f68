"""Multi-label intents: the decision rule, the dev threshold search, and a tiny multilabel run
(also with the CRF) whose export predicts every intent above the threshold."""

import json
import os

import numpy as np
import pytest

from bert_nlu import hooks, intent_sets, testing, train
from bert_nlu.data import multi_intent
from bert_nlu.predict import NluPredictor


def test_every_intent_above_the_threshold_and_at_least_one():
  probabilities = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.1], [0.5, 0.49, 0.5]])
  chosen = intent_sets.decide_intent_sets(probabilities, 0.5)
  assert chosen.tolist() == [[True, True, False], [False, True, False], [True, False, True]]
  # Even a threshold above every probability predicts the top intent of each row.
  assert intent_sets.decide_intent_sets(probabilities, 0.99).sum(axis=1).tolist() == [1, 1, 1]


def test_threshold_search_on_a_tiny_dev():
  # Gold: {0,1}, {1}, {0}. At 0.5 row 0 misses intent 1 (0.4); any t in (0.3, 0.4] gets all
  # three right: row 1's second intent (0.3) stays out, row 2's 0.35 must stay out -> (0.35, 0.4].
  probabilities = np.array([[0.8, 0.4], [0.1, 0.7], [0.9, 0.35]])
  gold = np.array([[1, 1], [0, 1], [1, 0]])
  assert intent_sets.set_accuracy(intent_sets.decide_intent_sets(probabilities, 0.5), gold) == (
      pytest.approx(2 / 3))
  threshold = intent_sets.choose_threshold(probabilities, gold)
  assert threshold == pytest.approx(0.375)  # the midpoint of (0.35, 0.4)
  assert intent_sets.set_accuracy(intent_sets.decide_intent_sets(probabilities, threshold),
                                  gold) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_search_matches_a_brute_force_scan(seed):
  rng = np.random.RandomState(seed)
  probabilities = rng.rand(30, 4)
  gold = (rng.rand(30, 4) < 0.4).astype(int)
  representable = rng.rand(30) < 0.9
  threshold = intent_sets.choose_threshold(probabilities, gold, representable)
  best = max(intent_sets.set_accuracy(intent_sets.decide_intent_sets(probabilities, t), gold,
                                      representable) for t in np.linspace(0, 1, 2001))
  assert intent_sets.set_accuracy(intent_sets.decide_intent_sets(probabilities, threshold), gold,
                                  representable) == pytest.approx(best)


def test_multi_hot_skips_unknown_ids():
  assert intent_sets.multi_hot([[0, 2], [-1, 1]], 3).tolist() == [[1, 0, 1], [0, 1, 0]]


@pytest.fixture(scope="module")
def multi_corpus_dir(tiny_corpus_dir, tmp_path_factory):
  output = str(tmp_path_factory.mktemp("multi_corpus"))
  multi_intent.generate_corpus(tiny_corpus_dir, output, seed=0, max_intents=2,
                               heldout_fraction=0.0, size_ratio=2.0)
  return output


@pytest.fixture(scope="module")
def multilabel_run(tiny_bert_dir, multi_corpus_dir, tmp_path_factory):
  """A multilabel run with the CRF slot decoder (the intent head does not depend on it)."""
  output_dir = str(tmp_path_factory.mktemp("multilabel_run"))
  config = testing.tiny_training_config(
      tiny_bert_dir, multi_corpus_dir, output_dir, model_fields={"slot_crf": True},
      data_fields={"multi_intent_policy": "multilabel"}, max_seq_length=24,
      num_train_epochs=10, save_checkpoints_steps=100)
  return config, train.run(config)


def test_multilabel_run_learns_sets_and_records_the_dev_threshold(multilabel_run):
  config, results = multilabel_run
  dev, test = results["splits"]["dev"], results["splits"]["test"]
  # Sets of 1 or 2 of 3 intents: 6 possible sets, chance is ~17%.
  assert dev["intent_accuracy"] > 0.8
  assert 0 < results["intent_threshold"] < 1
  assert dev["intent_threshold"] == results["intent_threshold"]
  assert test["intent_threshold"] == results["intent_threshold"]  # dev's, not test's own
  assert dev["multi_intent"]["multi_intent_utterances"]["count"] > 0
  assert dev["multi_intent"]["intent_set_accuracy"] == pytest.approx(dev["intent_accuracy"])
  best = hooks.read_best(config.output_dir)
  assert 0 < best["eval_result"]["intent_threshold"] < 1
  rows = [json.loads(line) for line in open(os.path.join(config.output_dir,
                                                         "predictions_dev.jsonl"))]
  assert any("#" in row["pred_intent"] for row in rows)


def test_multilabel_export_predicts_every_intent_above_the_threshold(multilabel_run):
  config, _ = multilabel_run
  best = hooks.read_best(config.output_dir)
  predictor = NluPredictor(hooks.latest_export(config.output_dir))
  assert predictor.intent_threshold == pytest.approx(best["eval_result"]["intent_threshold"])
  results = predictor.predict(["play adele and weather in paris", "book nobu"])
  for result in results:
    intents = result["intents"]
    assert intents, "at least one intent"
    probabilities = [intent["probability"] for intent in intents]
    assert probabilities == sorted(probabilities, reverse=True)
    assert len(intents) == 1 or min(probabilities) >= predictor.intent_threshold
    assert result["intent"]["name"] == "#".join(sorted(i["name"] for i in intents))
  assert {i["name"] for i in results[0]["intents"]} == {"PlayMusic", "GetWeather"}
