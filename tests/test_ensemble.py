"""Seed ensembles: K copies of one model equal it; members are averaged; whole-set evaluation."""

import dataclasses
import glob
import itertools
import os
import types

import numpy as np
import pytest

from bert_nlu import distill, ensemble, hooks, io_utils, testing, train
from bert_nlu.data import readers
from bert_nlu.data.labels import LabelMaps
from bert_nlu.predict import NluPredictor, load_predictor

TEXTS = ["play adele now", "weather in paris please", "book hakkasan for me",
         "play queen muse at the", "weather"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Three short tiny runs: softmax seeds 7 and 8, and a CRF run."""
  root = tmp_path_factory.mktemp("ensemble")
  corpus = testing.make_corpus(str(root / "corpus"))
  bert_dir = testing.make_tiny_bert(str(root / "bert"), testing.corpus_vocabulary())
  configs = {
      "softmax_7": testing.tiny_training_config(bert_dir, corpus, str(root / "s7"),
                                                num_train_epochs=6, save_checkpoints_steps=30),
      "softmax_8": testing.tiny_training_config(bert_dir, corpus, str(root / "s8"), seed=8,
                                                num_train_epochs=6, save_checkpoints_steps=30),
      "crf": testing.tiny_training_config(bert_dir, corpus, str(root / "crf"),
                                          model_fields={"slot_crf": True},
                                          num_train_epochs=6, save_checkpoints_steps=30),
  }
  for config in configs.values():
    train.run(config)
  return corpus, {name: config.output_dir for name, config in configs.items()}


def _same_predictions(first, second):
  assert [r["intent"]["name"] for r in first] == [r["intent"]["name"] for r in second]
  assert [[(s["slot"], s["word_start"], s["word_end"]) for s in r["slots"]] for r in first] == [
      [(s["slot"], s["word_start"], s["word_end"]) for s in r["slots"]] for r in second]
  np.testing.assert_allclose([r["intent"]["probability"] for r in first],
                             [r["intent"]["probability"] for r in second], rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax_7", "crf"])
def test_an_ensemble_of_copies_of_one_model_is_that_model(runs, name):
  _, run_dirs = runs
  single = NluPredictor(hooks.latest_export(run_dirs[name]))
  copies = ensemble.EnsemblePredictor([single] * 3)
  _same_predictions(copies.predict(TEXTS), single.predict(TEXTS))
  outputs, _, _ = single.run_batch([t.split() for t in TEXTS])
  combined, _, _ = copies.run_batch([t.split() for t in TEXTS])
  np.testing.assert_array_equal(combined["slot_ids"], outputs["slot_ids"])
  np.testing.assert_array_equal(combined["intent_id"], outputs["intent_id"])


def test_two_members_average_their_distributions(runs):
  _, run_dirs = runs
  members = [NluPredictor(hooks.latest_export(run_dirs[n])) for n in ("softmax_7", "softmax_8")]
  pair = load_predictor([hooks.latest_export(run_dirs[n]) for n in ("softmax_7", "softmax_8")])
  assert isinstance(pair, ensemble.EnsemblePredictor)
  words = [t.split() for t in TEXTS]
  first, mask, _ = members[0].run_batch(words)
  second, _, _ = members[1].run_batch(words)
  assert not np.allclose(first["intent_probabilities"], second["intent_probabilities"])
  combined, _, _ = pair.run_batch(words)
  mean_intent = (first["intent_probabilities"] + second["intent_probabilities"]) / 2
  mean_slots = (first["slot_probabilities"] + second["slot_probabilities"]) / 2
  np.testing.assert_allclose(combined["intent_probabilities"], mean_intent, rtol=1e-6)
  np.testing.assert_array_equal(combined["intent_id"], np.argmax(mean_intent, axis=-1))
  first_pieces = mask.astype(bool)
  np.testing.assert_array_equal(combined["slot_ids"][first_pieces],
                                np.argmax(mean_slots, axis=-1)[first_pieces])
  results = pair.predict(TEXTS)
  for row, result in enumerate(results):
    assert result["intent"]["probability"] == pytest.approx(
        float(mean_intent[row].max()), rel=1e-6)


def test_crf_members_decode_the_averaged_potentials_with_viterbi():
  rng = np.random.RandomState(0)
  num_tags, seq = 3, 5
  mask = np.array([[1, 1, 0, 1, 1]])
  members = []
  for _ in range(2):
    logits = rng.normal(size=(1, seq, num_tags)).astype(np.float32)
    transitions = rng.normal(size=(num_tags, num_tags)).astype(np.float32)
    members.append({
        "intent_probabilities": np.array([[0.3, 0.7]]),
        "slot_probabilities": np.exp(logits) / np.exp(logits).sum(-1, keepdims=True),
        "slot_logits": logits, "slot_transitions": transitions[None]})
  combined = ensemble.combine_outputs(members, mask)
  emissions = (members[0]["slot_logits"][0] + members[1]["slot_logits"][0]) / 2
  transitions = (members[0]["slot_transitions"][0] + members[1]["slot_transitions"][0]) / 2
  words = emissions[[0, 1, 3, 4]]

  def score(path):
    return sum(words[i, t] for i, t in enumerate(path)) + sum(
        transitions[a, b] for a, b in zip(path, path[1:]))

  best = max(itertools.product(range(num_tags), repeat=4), key=score)  # brute force
  assert list(combined["slot_ids"][0, [0, 1, 3, 4]]) == list(best)


def test_bio_type_members_average_position_and_type_apart_then_decode():
  labels = LabelMaps(("a",), ("O", "B-x", "B-y", "I-x"))  # no I-y: (I, y) decodes as B-y
  rng = np.random.RandomState(1)
  members = [{"intent_probabilities": np.array([[1.0]]),
              "slot_probabilities": rng.dirichlet(np.ones(4), size=(1, 6)),
              "slot_position_probabilities": rng.dirichlet(np.ones(3), size=(1, 6)),
              "slot_type_probabilities": rng.dirichlet(np.ones(2), size=(1, 6))}
             for _ in range(2)]
  mask = np.ones([1, 6], np.int32)
  combined = ensemble.combine_outputs(members, mask, labels.bio.combination_tags)
  position = (members[0]["slot_position_probabilities"][0]
              + members[1]["slot_position_probabilities"][0]).argmax(-1)
  slot_type = (members[0]["slot_type_probabilities"][0]
               + members[1]["slot_type_probabilities"][0]).argmax(-1)
  by_name = {("O", t): "O" for t in "xy"}
  by_name.update({("B", "x"): "B-x", ("B", "y"): "B-y", ("I", "x"): "I-x", ("I", "y"): "B-y"})
  expected = [by_name["OBI"[p], "xy"[t]] for p, t in zip(position, slot_type)]
  assert [labels.slot_tags[i] for i in combined["slot_ids"][0]] == expected
  np.testing.assert_allclose(combined["slot_probabilities"],
                             (members[0]["slot_probabilities"]
                              + members[1]["slot_probabilities"]) / 2)


def test_members_of_different_label_maps_are_refused():
  def member(intents):
    return types.SimpleNamespace(label_maps=LabelMaps(intents=intents, slot_tags=("O",)),
                                 max_seq_length=16, tokenizer=types.SimpleNamespace(vocab={}),
                                 takes_first_piece_mask=False, factored_slots=False)
  with pytest.raises(ValueError, match="label maps"):
    ensemble.EnsemblePredictor([member(("a", "b")), member(("a", "c"))])
  with pytest.raises(ValueError, match="at least one"):
    ensemble.EnsemblePredictor([])


def test_whole_set_evaluation_of_one_member_reproduces_the_trainer(runs):
  corpus, run_dirs = runs
  dev = readers.read_seq_corpus(corpus, splits=("dev",))["dev"]
  for name in ("softmax_7", "crf"):
    trained = io_utils.read_json(f"{run_dirs[name]}/eval_results.json")["splits"]["dev"]
    single = ensemble.EnsemblePredictor([NluPredictor(hooks.latest_export(run_dirs[name]))])
    evaluated = ensemble.evaluate(single, list(dev.examples), batch_size=7)  # several batches
    for key in ("intent_accuracy", "slot_f1", "whole_frame_accuracy", "token_f1_micro"):
      assert evaluated[key] == pytest.approx(trained[key], abs=1e-9), (name, key)


def test_distillation_trains_on_cached_teacher_targets_of_the_ensemble(runs, tmp_path):
  """A student distilled from two softmax runs: targets computed once, equal to the ensemble's."""
  corpus, run_dirs = runs
  teachers = (run_dirs["softmax_7"], run_dirs["softmax_8"])
  bert_dir = os.path.join(os.path.dirname(run_dirs["crf"]), "bert")
  cache_dir = str(tmp_path / "cache")
  config = testing.tiny_training_config(bert_dir, corpus, str(tmp_path / "student"),
                                        num_train_epochs=3, save_checkpoints_steps=30,
                                        distill_teachers=teachers, distill_temperature=2.0,
                                        distill_alpha=0.5)
  config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                cache_dir=cache_dir))
  results = train.run(config)
  assert results["training"]["steps_run_this_session"] == results["training"]["num_train_steps"]
  assert 0 <= results["splits"]["dev"]["intent_accuracy"] <= 1
  cached = glob.glob(os.path.join(cache_dir, "teacher.*.npz"))
  assert len(cached) == 1
  splits, label_maps = train.read_corpus(config, [])
  pair = ensemble.EnsemblePredictor([NluPredictor(hooks.latest_export(d)) for d in teachers])
  expected = distill.compute_teacher_targets(pair, list(splits["train"].examples), 2.0)
  with np.load(cached[0]) as stored:
    np.testing.assert_allclose(stored["intent"], expected["intent"], rtol=1e-5)
    np.testing.assert_allclose(stored["slots"], expected["slots"], rtol=1e-5, atol=1e-7)
  modified = os.path.getmtime(cached[0])
  distill.load_or_compute_teacher_targets(teachers, splits["train"].examples, label_maps,
                                          config.data.max_seq_length, 2.0, cache_dir)
  assert os.path.getmtime(cached[0]) == modified  # reused, not recomputed
