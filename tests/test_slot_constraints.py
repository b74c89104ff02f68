"""Intent-constrained slot decoding: the allowed-tag mask and decoding with it."""

import types

import numpy as np
import pytest

from bert_nlu import ensemble, slot_constraints
from bert_nlu.data.labels import LabelMaps

LABELS = LabelMaps(intents=("Play", "Play#Rate", "Rate", "Weather"),
                   slot_tags=("O", "B-artist", "B-city", "B-rating", "I-artist", "I-city"))


def _example(intent, tags):
  return types.SimpleNamespace(intent=intent, slot_tags=tuple(tags))


TRAIN = [_example("Play", ["O", "B-artist", "I-artist"]),
         _example("Rate", ["B-rating", "O"]),
         _example("Play#Rate", ["O", "O"])]  # no slot of its own: its parts' types


def test_each_intent_allows_o_and_the_types_training_shows_with_it():
  allowed = slot_constraints.allowed_tags(TRAIN, LABELS)
  by_intent = {intent: {tag for tag, ok in zip(LABELS.slot_tags, row) if ok}
               for intent, row in zip(LABELS.intents, allowed)}
  assert by_intent["Play"] == {"O", "B-artist", "I-artist"}
  assert by_intent["Rate"] == {"O", "B-rating"}
  assert by_intent["Play#Rate"] == {"O", "B-artist", "I-artist", "B-rating"}  # union of parts
  assert by_intent["Weather"] == set(LABELS.slot_tags)  # no training example: nothing known


def test_multilabel_models_are_refused():
  with pytest.raises(ValueError, match="single-label"):
    slot_constraints.allowed_tags(TRAIN, LabelMaps(intents=("Play", "Rate"),
                                                   slot_tags=("O",), multilabel=True))


def _member(intent_probabilities, slot_scores, crf):
  """One member's batch outputs: 1 utterance of 2 words (one piece each)."""
  scores = np.asarray([slot_scores], np.float32)  # [1, 2, tags]
  exp = np.exp(scores - scores.max(-1, keepdims=True))
  outputs = {"intent_probabilities": np.asarray([intent_probabilities], np.float32),
             "slot_probabilities": exp / exp.sum(-1, keepdims=True)}
  if crf:
    outputs["slot_logits"] = scores
    outputs["slot_transitions"] = np.zeros([1, 6, 6], np.float32)
  return outputs


@pytest.mark.parametrize("crf", [True, False])
def test_a_tag_the_predicted_intent_never_takes_is_replaced_by_its_best_allowed_tag(crf):
  allowed = slot_constraints.allowed_tags(TRAIN, LABELS)
  # Intent Rate (id 2); word 0 scores B-city highest, then B-rating; word 1 scores O highest.
  member = _member([0.1, 0.1, 0.7, 0.1], [[0, 1, 5, 4, 0, 0], [3, 0, 0, 0, 0, 2]], crf)
  mask = np.ones([1, 2], np.int32)
  free = ensemble.combine_outputs([member], mask)
  constrained = ensemble.combine_outputs([member], mask, allowed_tags=allowed)
  assert [LABELS.slot_tags[i] for i in free["slot_ids"][0]] == ["B-city", "O"]
  assert [LABELS.slot_tags[i] for i in constrained["slot_ids"][0]] == ["B-rating", "O"]
  assert constrained["intent_id"][0] == free["intent_id"][0] == 2


@pytest.mark.parametrize("crf", [True, False])
def test_a_mask_that_allows_everything_decodes_as_without_one(crf):
  rng = np.random.default_rng(0)
  member = _member(rng.dirichlet(np.ones(4)), rng.normal(size=[2, 6]), crf)
  mask = np.ones([1, 2], np.int32)
  free = ensemble.combine_outputs([member], mask)
  everything = ensemble.combine_outputs([member], mask, allowed_tags=np.ones([4, 6], bool))
  np.testing.assert_array_equal(free["slot_ids"], everything["slot_ids"])


def test_an_ensemble_refuses_a_mask_of_other_label_maps():
  member = types.SimpleNamespace(label_maps=LABELS, max_seq_length=8)
  with pytest.raises(ValueError, match="allowed_tags has shape"):
    ensemble.EnsemblePredictor([member], np.ones([3, 6], bool))


@pytest.mark.parametrize("crf", [True, False])
def test_the_graph_decodes_as_the_ensemble_does_with_the_same_mask(crf):
  """NluTask.build_predictions (training, evaluation, export) and ensemble.combine_outputs (one
  run after training) apply the same constraint: same tags on random scores."""
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  from bert_nlu.tasks.nlu import NluTask  # pylint: disable=g-import-not-at-top
  allowed = slot_constraints.allowed_tags(TRAIN, LABELS)
  rng = np.random.default_rng(1)
  batch, seq, num_tags = 8, 5, len(LABELS.slot_tags)
  intent_logits = rng.normal(size=[batch, len(LABELS.intents)]).astype(np.float32)
  slot_logits = rng.normal(scale=3.0, size=[batch, seq, num_tags]).astype(np.float32)
  transitions = rng.normal(size=[num_tags, num_tags]).astype(np.float32)
  first_piece_mask = (rng.random([batch, seq]) < 0.7).astype(np.int32)
  first_piece_mask[:, 0] = 1
  task = NluTask(LABELS, slot_crf=crf, allowed_slot_tags=allowed)
  with tf.Graph().as_default(), tf.Session() as session:
    logits = {"intent_logits": tf.constant(intent_logits), "slot_logits": tf.constant(slot_logits)}
    if crf:
      logits["slot_transitions"] = tf.constant(transitions)
    predictions = session.run(task.build_predictions(
        logits, {"first_piece_mask": tf.constant(first_piece_mask)}))
  exp = np.exp(intent_logits - intent_logits.max(-1, keepdims=True))
  slot_exp = np.exp(slot_logits - slot_logits.max(-1, keepdims=True))
  member = {"intent_probabilities": exp / exp.sum(-1, keepdims=True),
            "slot_probabilities": slot_exp / slot_exp.sum(-1, keepdims=True)}
  if crf:
    member["slot_logits"] = slot_logits
    member["slot_transitions"] = np.tile(transitions[None], [batch, 1, 1])
  expected = ensemble.combine_outputs([member], first_piece_mask, allowed_tags=allowed)
  words = first_piece_mask.astype(bool)
  np.testing.assert_array_equal(predictions["slot_ids"][words], expected["slot_ids"][words])
  intents = predictions["intent_id"]
  for row in range(batch):  # and no decoded word carries a tag its intent does not allow
    assert allowed[intents[row]][predictions["slot_ids"][row][words[row]]].all()
  # The scores the export hands to ensembles stay the unconstrained ones.
  if crf:
    np.testing.assert_array_equal(predictions["slot_logits"], slot_logits)


def test_the_task_refuses_a_mask_it_cannot_apply():
  from bert_nlu.tasks.nlu import NluTask  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="expected \\(4, 6\\)"):
    NluTask(LABELS, allowed_slot_tags=np.ones([4, 5], bool))
  with pytest.raises(ValueError, match="per-intent"):
    NluTask(LABELS, per_intent_slot_heads=True, allowed_slot_tags=np.ones([4, 6], bool))


def test_a_run_constrained_to_its_intents_decodes_only_allowed_types(tiny_bert_dir,
                                                                     tiny_corpus_dir, tmp_path):
  """End to end on the tiny corpus: training, evaluation and its predictions file."""
  import json  # pylint: disable=g-import-not-at-top
  from bert_nlu import testing, train  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import readers  # pylint: disable=g-import-not-at-top
  output_dir = str(tmp_path / "run")
  config = testing.tiny_training_config(
      tiny_bert_dir, tiny_corpus_dir, output_dir, num_train_epochs=2,
      model_fields={"slot_crf": True, "constrain_slots_to_intent": True})
  train.run(config)
  examples = readers.read_seq_corpus(tiny_corpus_dir, splits=("train",))["train"].examples
  types_by_intent = {}
  for example in examples:
    types_by_intent.setdefault(example.intent, set()).update(
        slot_constraints.slot_type_of(tag) for tag in example.slot_tags if tag != "O")
  with open(f"{output_dir}/predictions_test.jsonl") as f:
    rows = [json.loads(line) for line in f]
  # The export decodes so too, and records the mask, which an ensemble of such runs applies.
  from bert_nlu import ensemble as ensemble_lib, hooks  # pylint: disable=g-import-not-at-top
  from bert_nlu.metrics import tags_to_spans  # pylint: disable=g-import-not-at-top
  from bert_nlu.predict import NluPredictor  # pylint: disable=g-import-not-at-top
  member = NluPredictor(hooks.latest_export(output_dir))
  assert member.allowed_slot_tags is not None
  served = member.predict([row["text"] for row in rows])
  assert [r["intent"]["name"] for r in served] == [row["pred_intent"] for row in rows]
  for result, row in zip(served, rows):
    spans = tags_to_spans(row["text"].split(), row["pred_tags"])
    assert [(s["slot"], s["word_start"], s["word_end"]) for s in result["slots"]] == [
        (s["slot"], s["start"], s["end"]) for s in spans]
  pair = ensemble_lib.EnsemblePredictor([member, member])
  np.testing.assert_array_equal(pair.allowed_tags, member.allowed_slot_tags)
  assert pair.predict([row["text"] for row in rows]) == served
  assert any(tag != "O" for row in rows for tag in row["pred_tags"])  # slots were decoded
  for row in rows:
    for tag in row["pred_tags"]:
      if tag != "O":
        assert slot_constraints.slot_type_of(tag) in types_by_intent[row["pred_intent"]], row


def test_the_mask_round_trips_through_predict_config_json():
  allowed = slot_constraints.allowed_tags(TRAIN, LABELS)
  recorded = slot_constraints.to_json(allowed, LABELS)
  assert recorded["Rate"] == ["O", "B-rating"]
  np.testing.assert_array_equal(slot_constraints.from_json(recorded, LABELS), allowed)
  with pytest.raises(ValueError, match="other intents"):
    slot_constraints.from_json({"Play": ["O"]}, LABELS)
