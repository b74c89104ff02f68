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
