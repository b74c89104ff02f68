"""Intent-constrained slot decoding: only slot types the training data shows with the intent.

Each intent of a corpus uses a subset of the slot types (SNIPS PlayMusic: artist, album, playlist,
...; never a restaurant's). A joint model can still tag a span with a type its own predicted
intent never takes. `allowed_tags` reads, from the TRAINING examples, which slot types occur with
each intent, as a [num_intents, num_tags] mask; decoding with it (`bert_nlu.ensemble.
combine_outputs`) first picks the intent, then keeps only that intent's tags: the emission scores
of every other tag are set to CONSTRAINED_SCORE before the Viterbi pass (CRF runs), or their
probabilities to 0 before the argmax (softmax runs). "O" is always allowed.

An atomic multi-intent label ("atis_flight#atis_airfare") allows the types seen with it and with
each of its intents alone; an intent with no training example allows every tag (nothing is known
against any). Multilabel models (a set of intents per utterance) are not constrained.

Used after training, on exported runs (`python -m bert_nlu.ensemble --constrain_slots_to_intent`,
`bench/nlu_ensemble.py --constrain_slots_to_intent`): a decoding choice judged on dev, no training.
"""

import collections
from typing import Dict, Iterable, List, Mapping

import numpy as np

from bert_nlu.data.labels import LabelMaps, intent_set

CONSTRAINED_SCORE = -1e4  # emission score of a disallowed tag: no path through it can win


def slot_type_of(tag: str) -> str:
  """"city" for "B-city" / "I-city"; "" for "O" and anything not in BIO form."""
  if len(tag) > 2 and tag[:2] in ("B-", "I-"):
    return tag[2:]
  return ""


def allowed_tags(train_examples: Iterable, label_maps: LabelMaps) -> np.ndarray:
  """[num_intents, num_tags] bool: tag t may be decoded for intent i.

  Args:
    train_examples: NluExample-like objects (intent, slot_tags) of the training split.
    label_maps: the model's label maps (single-label intents).

  Raises:
    ValueError: multilabel label maps.
  """
  if label_maps.multilabel:
    raise ValueError("intent-constrained slot decoding needs single-label intents, not "
                     "--multi_intent_policy=multilabel")
  types_by_label = collections.defaultdict(set)
  for example in train_examples:
    types_by_label[example.intent].update(
        slot_type_of(tag) for tag in example.slot_tags if slot_type_of(tag))
  tag_types = [slot_type_of(tag) for tag in label_maps.slot_tags]
  mask = np.ones([len(label_maps.intents), len(label_maps.slot_tags)], bool)
  for row, intent in enumerate(label_maps.intents):
    parts = intent_set(intent)
    known = [label for label in (intent, *parts) if label in types_by_label]
    if not known:
      continue  # no training example of this intent: allow everything
    types = set().union(*(types_by_label[label] for label in known))
    mask[row] = [not tag_type or tag_type in types for tag_type in tag_types]
  return mask


def to_json(allowed: np.ndarray, label_maps: LabelMaps) -> Dict[str, List[str]]:
  """{intent: [the tags it may decode]}: the mask as predict_config.json records it."""
  return {intent: [tag for tag, ok in zip(label_maps.slot_tags, row) if ok]
          for intent, row in zip(label_maps.intents, np.asarray(allowed, bool))}


def from_json(allowed_by_intent: Mapping[str, List[str]], label_maps: LabelMaps) -> np.ndarray:
  """The [num_intents, num_tags] mask `to_json` recorded.

  Raises:
    ValueError: the record names other intents than the label maps.
  """
  if set(allowed_by_intent) != set(label_maps.intents):
    raise ValueError("the recorded slot constraint names other intents than the label maps")
  return np.array([[tag in set(allowed_by_intent[intent]) for tag in label_maps.slot_tags]
                   for intent in label_maps.intents], bool)


def constrain_emissions(emissions: np.ndarray, allowed: np.ndarray) -> np.ndarray:
  """Emission scores [..., num_tags] with disallowed tags (allowed [..., num_tags] False) at
  CONSTRAINED_SCORE."""
  return np.where(allowed, emissions, CONSTRAINED_SCORE).astype(emissions.dtype)


def constrain_probabilities(probabilities: np.ndarray, allowed: np.ndarray) -> np.ndarray:
  """Tag probabilities [..., num_tags] with disallowed tags at 0 (not renormalised: the argmax
  is what decoding reads)."""
  return np.where(allowed, probabilities, 0.0).astype(probabilities.dtype)
