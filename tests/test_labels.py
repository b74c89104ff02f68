"""Label vocabularies: atomic and multi-label ("a#b" as a set) intents, JSON round trip."""

import pytest

from bert_nlu.data.labels import (LabelMaps, UNKNOWN_ID, canonical_intent_label, intent_set,
                                  join_intent_set)


def test_a_joined_label_is_a_set_and_back():
  assert intent_set("b#a#b") == frozenset({"a", "b"})
  assert join_intent_set({"b", "a"}) == "a#b"
  assert canonical_intent_label("atis_flight#atis_airfare") == "atis_airfare#atis_flight"
  assert canonical_intent_label("x") == "x"
  with pytest.raises(ValueError, match="empty part"):
    intent_set("a##b")


def test_multilabel_maps_hold_atomic_intents_and_map_sets_to_ids():
  maps = LabelMaps.from_labels(["b#a", "c", "a"], [["O", "B-x"]], multilabel=True)
  assert maps.intents == ("a", "b", "c")
  assert maps.intent_set_ids("b#a") == (0, 1)
  assert maps.intent_set_ids("c#zz") == (UNKNOWN_ID, 2)
  assert maps.intent_label_of_ids([2, 0]) == "a#c"
  atomic = LabelMaps.from_labels(["b#a", "c", "a"], [["O", "B-x"]])
  assert atomic.intents == ("a", "b#a", "c")


def test_json_round_trip_keeps_multilabel_and_old_maps_stay_equal():
  maps = LabelMaps.from_labels(["a#b"], [["O"]], multilabel=True)
  assert LabelMaps.from_json_dict(maps.to_json_dict()) == maps
  atomic = LabelMaps.from_labels(["a#b"], [["O"]])
  assert "multilabel" not in atomic.to_json_dict()  # manifests of older runs still match
  assert not LabelMaps.from_json_dict({"intents": ["x"], "slot_tags": ["O"]}).multilabel
