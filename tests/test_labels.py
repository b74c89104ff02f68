"""Label vocabularies: atomic and multi-label ("a#b" as a set) intents, JSON round trip, slot
tags factored into BIO positions and slot types."""

import pytest

from bert_nlu.data.labels import (BIO_POSITIONS, LabelMaps, UNKNOWN_ID, bio_vocabulary,
                                  canonical_intent_label, intent_set, join_intent_set)


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


def test_bio_vocabulary_factors_tags_and_maps_every_combination_back_to_a_tag():
  # "city" only ever begins (no I-city), "time" only ever continues (no B-time).
  tags = ("O", "B-artist", "B-city", "I-artist", "I-time")
  bio = bio_vocabulary(tags)
  assert BIO_POSITIONS == ("O", "B", "I")
  assert bio.types == ("artist", "city", "time")
  assert bio.tag_positions == (0, 1, 1, 2, 2)
  assert bio.tag_types == (UNKNOWN_ID, 0, 1, 0, 2)
  by_name = {(p, t): tags[bio.combination_tags[i][j]]
             for i, p in enumerate(BIO_POSITIONS) for j, t in enumerate(bio.types)}
  assert by_name == {
      ("O", "artist"): "O", ("O", "city"): "O", ("O", "time"): "O",
      ("B", "artist"): "B-artist", ("B", "city"): "B-city", ("B", "time"): "I-time",
      ("I", "artist"): "I-artist", ("I", "city"): "B-city", ("I", "time"): "I-time"}
  # Every tag is its own (position, type) combination: the factoring loses nothing.
  for tag_id in range(1, len(tags)):
    assert bio.combination_tags[bio.tag_positions[tag_id]][bio.tag_types[tag_id]] == tag_id
  assert LabelMaps(("a",), tags).slot_types == bio.types


def test_bio_vocabulary_of_o_only_and_of_bad_tags():
  assert bio_vocabulary(["O"]).types == ()
  assert bio_vocabulary(["O"]).combination_tags == ((), (), ())
  for bad in (["B-x", "O"], ["O", "X-y"], ["O", "B-"], ["O", "artist"]):
    with pytest.raises(ValueError):
      bio_vocabulary(bad)


def test_extended_maps_keep_every_old_id_and_append_the_new_labels():
  old = LabelMaps(intents=("GetWeather", "BookRestaurant"), slot_tags=("O", "B-city", "I-city"))
  new = LabelMaps.from_labels(["PlayMusic", "GetWeather"], [["O", "B-artist", "B-city"]])
  union = old.extended_by(new)
  assert union.intents == ("GetWeather", "BookRestaurant", "PlayMusic")
  assert union.slot_tags == ("O", "B-city", "I-city", "B-artist")
  assert all(union.intent_id(i) == old.intent_id(i) for i in old.intents)
  assert all(union.slot_tag_id(t) == old.slot_tag_id(t) for t in old.slot_tags)
  assert old.extended_by(old) == old
  with pytest.raises(ValueError, match="multilabel"):
    old.extended_by(LabelMaps(("a",), ("O",), multilabel=True))
