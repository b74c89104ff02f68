"""Word -> word-piece alignment, first-piece labels, truncation, label maps; sentence pairs."""

import os

import pytest

from bert_nlu.compat import make_tokenizer
from bert_nlu.data.examples import NluExample, SentencePairExample
from bert_nlu.data.features import (align_words, convert_example, convert_pair_example,
                                    lay_out_pair, pair_to_predict_feature, truncate_seq_pair,
                                    word_level_tags, words_to_predict_feature)
from bert_nlu.data.glue import GlueLabels
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


# ---------------------------------------------------------------------------------------------
# Sentence pairs (GLUE).


def _reference_truncation(len_a, len_b, max_length):
  """Closed form of the longest-first rule: a side no longer than its share (text_a's share is
  the larger half, as ties cost text_b a piece first) is kept whole and the other takes the
  rest; otherwise both end at their shares."""
  if len_a + len_b <= max_length:
    return len_a, len_b
  share_a, share_b = (max_length + 1) // 2, max_length // 2
  if len_b <= share_b:
    return max_length - len_b, len_b
  if len_a <= share_a:
    return len_a, max_length - len_a
  return share_a, share_b


@pytest.mark.parametrize("len_a,len_b,max_length", [
    (10, 2, 6), (2, 10, 6), (5, 5, 6), (5, 5, 7), (4, 9, 9), (0, 8, 3), (7, 0, 3), (3, 3, 10),
    (6, 6, 0), (9, 4, 8), (5, 4, 8), (4, 5, 8), (5, 4, 7), (1, 1, 1)])
def test_truncate_seq_pair_shortens_the_longer_side_first(len_a, len_b, max_length):
  tokens_a = [f"a{i}" for i in range(len_a)]
  tokens_b = [f"b{i}" for i in range(len_b)]
  kept_a, kept_b = truncate_seq_pair(tokens_a, tokens_b, max_length)
  assert kept_a == tokens_a[:len(kept_a)] and kept_b == tokens_b[:len(kept_b)]  # tails go
  assert (len(kept_a), len(kept_b)) == _reference_truncation(len_a, len_b, max_length)


def test_truncate_seq_pair_examples_by_hand():
  # 10 + 2 into 6: a loses 6 pieces and b none.
  assert truncate_seq_pair(list("abcdefghij"), ["x", "y"], 6) == (list("abcd"), ["x", "y"])
  # 5 + 5 into 7: b loses on the tie (5,4), then a (4,4), then b (4,3).
  assert truncate_seq_pair(list("abcde"), list("vwxyz"), 7) == (list("abcd"), list("vwx"))


def test_pair_layout_uses_segment_ids_and_counts_removed_pieces(tokenizer):
  tokens, segment_ids, removed = lay_out_pair(["play", "rome"], ["in", "rome", "play"], 16)
  assert tokens == ["[CLS]", "play", "rome", "[SEP]", "in", "rome", "play", "[SEP]"]
  assert segment_ids == [0, 0, 0, 0, 1, 1, 1, 1]
  assert removed == 0
  # 2 + 3 pieces into 7 - 3 = 4: b (the longer) loses one.
  tokens, segment_ids, removed = lay_out_pair(["play", "rome"], ["in", "rome", "play"], 7)
  assert tokens == ["[CLS]", "play", "rome", "[SEP]", "in", "rome", "[SEP]"]
  assert segment_ids == [0, 0, 0, 0, 1, 1, 1] and removed == 1
  # A single sentence keeps its head and segment 0.
  tokens, segment_ids, removed = lay_out_pair(["play", "in", "rome"], None, 4)
  assert tokens == ["[CLS]", "play", "in", "[SEP]"] and segment_ids == [0] * 4 and removed == 1
  with pytest.raises(ValueError, match="max_seq_length must be >= 3"):
    lay_out_pair([], [], 2)


def test_convert_pair_example_labels_and_truncation(tokenizer):
  labels = GlueLabels.for_task("RTE")
  example = SentencePairExample("dev-0", "play hakkasan", "in rome", label="not_entailment")
  feature = convert_pair_example(example, 4, tokenizer, labels, 16)
  ids = tokenizer.convert_tokens_to_ids(
      ["[CLS]", "play", "hak", "##kas", "##an", "[SEP]", "in", "rome", "[SEP]"])
  assert feature.input_ids == tuple(ids)
  assert feature.segment_ids == (0,) * 6 + (1,) * 3
  assert (feature.example_index, feature.label_id, feature.score) == (4, 1, 0.0)
  assert not feature.truncated and feature.length == 9
  short = convert_pair_example(example, 4, tokenizer, labels, 7)  # 4 + 2 pieces into 4
  assert short.truncated and (short.num_pieces, short.num_pieces_kept) == (6, 4)
  assert short.input_ids == tuple(tokenizer.convert_tokens_to_ids(
      ["[CLS]", "play", "hak", "[SEP]", "in", "rome", "[SEP]"]))
  regression = convert_pair_example(
      SentencePairExample("t-1", "play", "rome", score=3.8), 0, tokenizer,
      GlueLabels.for_task("STS-B"), 16)
  assert (regression.label_id, regression.score) == (0, 3.8)


def test_pair_to_predict_feature_matches_training_features(tokenizer):
  example = SentencePairExample("dev-0", "play hakkasan in rome", "rome", label="1")
  feature = convert_pair_example(example, 0, tokenizer, GlueLabels.for_task("MRPC"), 6)
  input_ids, segment_ids, removed = pair_to_predict_feature(example.text_a, example.text_b,
                                                            tokenizer, 6)
  assert (tuple(input_ids), tuple(segment_ids)) == (feature.input_ids, feature.segment_ids)
  assert removed == feature.num_pieces - feature.num_pieces_kept == 4
