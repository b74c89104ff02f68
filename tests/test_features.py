"""Word -> word-piece alignment, first-piece labels, truncation, label maps."""

import os

import pytest

from bert_nlu.compat import make_tokenizer
from bert_nlu.data.examples import NluExample
from bert_nlu.data.features import (align_words, convert_example, word_level_tags,
                                    words_to_predict_feature)
from bert_nlu.data.labels import UNKNOWN_ID, LabelMaps


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "play", "hak", "##kas", "##an", "in", "rome"]
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(vocab) + "\n")
  return make_tokenizer(str(path), do_lower_case=True)


LABELS = LabelMaps.from_labels(["Book", "Play"], [["O", "B-restaurant", "I-restaurant", "B-city"]])


def test_label_maps_put_outside_first_and_sort():
  assert LABELS.slot_tags == ("O", "B-city", "B-restaurant", "I-restaurant")
  assert LABELS.intents == ("Book", "Play")
  assert LABELS.intent_id("Unseen") == UNKNOWN_ID
  assert LABELS.slot_tag_id("B-unseen") == UNKNOWN_ID


def test_label_maps_round_trip(tmp_path):
  path = str(tmp_path / "label_maps.json")
  LABELS.save(path)
  assert LabelMaps.load(path) == LABELS


def test_first_piece_carries_the_tag_and_other_pieces_are_masked(tokenizer):
  example = NluExample("t-0", ("play", "hakkasan", "in", "rome"),
                       ("O", "B-restaurant", "O", "B-city"), "Book")
  feature = convert_example(example, 0, tokenizer, LABELS, max_seq_length=16)
  # [CLS] play hak ##kas ##an in rome [SEP]
  assert feature.input_ids == (2, 4, 5, 6, 7, 8, 9, 3)
  assert feature.first_piece_mask == (0, 1, 1, 0, 0, 1, 1, 0)
  b_restaurant, b_city = LABELS.slot_tag_id("B-restaurant"), LABELS.slot_tag_id("B-city")
  assert feature.slot_ids == (0, 0, b_restaurant, 0, 0, 0, b_city, 0)
  assert feature.intent_id == LABELS.intent_id("Book")
  assert not feature.truncated


def test_truncation_drops_whole_words_and_is_counted(tokenizer):
  example = NluExample("t-0", ("play", "hakkasan", "rome"), ("O", "B-restaurant", "B-city"),
                       "Play")
  # Budget 4 pieces: "play" (1) fits, "hakkasan" (3) fits exactly, "rome" does not.
  feature = convert_example(example, 0, tokenizer, LABELS, max_seq_length=6)
  assert feature.length == 6
  assert feature.num_words_kept == 2 and feature.truncated
  # A word that would straddle the limit is dropped whole, not cut into pieces.
  tokens, mask, kept = align_words([["play"], ["hak", "##kas", "##an"]], max_seq_length=5)
  assert tokens == ["[CLS]", "play", "[SEP]"] and mask == [0, 1, 0] and kept == 1


def test_unseen_labels_get_unknown_ids(tokenizer):
  example = NluExample("t-0", ("rome",), ("B-airport",), "Fly")
  feature = convert_example(example, 0, tokenizer, LABELS, max_seq_length=8)
  assert feature.intent_id == UNKNOWN_ID
  assert feature.slot_ids[1] == UNKNOWN_ID


def test_word_the_tokenizer_erases_becomes_unk(tokenizer):
  # A control character is removed by BERT's basic tokenizer; it must still occupy one position.
  ids, mask, kept = words_to_predict_feature(["play", "\x07", "rome"], tokenizer, 16)
  assert ids == [2, 4, 1, 9, 3] and mask == [0, 1, 1, 1, 0] and kept == 3


def test_word_level_tags_maps_back_and_fills_truncated_words():
  mask = [0, 1, 1, 0, 0, 1, 0, 0, 0]  # padded beyond the sequence
  piece_tags = [0, 0, 2, 3, 3, 1, 0, 0, 0]
  tags = word_level_tags(mask, piece_tags, LABELS.slot_tags, num_words=5)
  assert tags == ["O", "B-restaurant", "B-city", "O", "O"]
  with pytest.raises(ValueError):
    word_level_tags(mask, piece_tags, LABELS.slot_tags, num_words=2)


def test_max_seq_length_below_three_is_rejected():
  with pytest.raises(ValueError, match="max_seq_length"):
    align_words([["a"]], max_seq_length=2)
