"""Tests for bert_nlu.metrics. Every expected value is computed by hand in the comments."""

import json
import warnings

import numpy as np
import pytest

from bert_nlu import metrics

# A small evaluation set of four examples.
#
# ex0  "play ruth lorenzo"          gold PlayMusic      O B-artist I-artist
#                                   pred PlayMusic      O B-artist I-artist       all right
# ex1  "add song to chill"          gold AddToPlaylist  O O O B-playlist
#                                   pred PlayMusic      O O O B-playlist          tags right,
#                                                                                 intent wrong
# ex2  "play jazz by miles davis"   gold PlayMusic      O B-genre O B-artist I-artist
#                                   pred PlayMusic      O B-genre O B-artist O    one wrong tag:
#                                                                                 partial artist
# ex3  "rate it five"               gold RateBook       O O B-rating_value
#                                   pred RateBook       O O O                     one wrong tag:
#                                                                                 missed entity
GOLD_INTENTS = ["PlayMusic", "AddToPlaylist", "PlayMusic", "RateBook"]
PRED_INTENTS = ["PlayMusic", "PlayMusic", "PlayMusic", "RateBook"]
GOLD_TAGS = [
    ["O", "B-artist", "I-artist"],
    ["O", "O", "O", "B-playlist"],
    ["O", "B-genre", "O", "B-artist", "I-artist"],
    ["O", "O", "B-rating_value"],
]
PRED_TAGS = [
    ["O", "B-artist", "I-artist"],
    ["O", "O", "O", "B-playlist"],
    ["O", "B-genre", "O", "B-artist", "O"],
    ["O", "O", "O"],
]


def small_set_metrics():
  return metrics.nlu_metrics(GOLD_INTENTS, GOLD_TAGS, PRED_INTENTS, PRED_TAGS)


def assert_plain_json_types(value):
  """Fails on anything but dict/str/int/float (numpy scalars included)."""
  if isinstance(value, dict):
    for key, item in value.items():
      assert type(key) is str
      assert_plain_json_types(item)
  else:
    assert type(value) in (str, int, float), (value, type(value))


def test_counts_intent_slot_and_whole_frame_by_hand():
  result = small_set_metrics()
  assert result["num_examples"] == 4
  assert result["num_words"] == 15  # 3 + 4 + 5 + 3
  # Only ex1 has the wrong intent: 3 / 4.
  assert result["intent_accuracy"] == pytest.approx(0.75)
  # Gold entities: artist(ex0 1-2), playlist(ex1 3), genre(ex2 1), artist(ex2 3-4),
  #   rating_value(ex3 2)                                                    -> 5
  # Predicted: artist(ex0 1-2), playlist(ex1 3), genre(ex2 1), artist(ex2 3-3) -> 4
  # Exact matches: artist(ex0), playlist, genre -> 3. The partial artist(ex2 3-3) vs (3-4)
  # is both a false positive and a false negative.
  # P = 3/4 = 0.75; R = 3/5 = 0.6; F1 = 2 * 0.75 * 0.6 / (0.75 + 0.6) = 0.9 / 1.35 = 2/3.
  assert result["slot_precision"] == pytest.approx(0.75)
  assert result["slot_recall"] == pytest.approx(0.6)
  assert result["slot_f1"] == pytest.approx(2 / 3)
  # Whole frame: ex0 only (ex1 wrong intent, ex2 and ex3 one wrong tag each) -> 1/4.
  assert result["whole_frame_accuracy"] == pytest.approx(0.25)


def test_token_f1_excludes_outside_tag_by_hand():
  result = small_set_metrics()
  # Labels = non-O tags in gold or pred: B-artist, B-genre, B-playlist, B-rating_value, I-artist.
  #                 gold  pred  tp   P     R     F1
  # B-artist          2     2    2   1     1     1
  # B-genre           1     1    1   1     1     1
  # B-playlist        1     1    1   1     1     1
  # B-rating_value    1     0    0   0     0     0     (ex3 word 2 predicted O)
  # I-artist          2     1    1   1    1/2   2/3    (ex2 word 4 predicted O)
  # micro: tp = 5, pred = 5, gold = 7 -> P = 1, R = 5/7, F1 = (10/7) / (12/7) = 5/6
  # macro: (1 + 1 + 1 + 0 + 2/3) / 5 = (11/3) / 5 = 11/15
  # weighted by gold support: (2*1 + 1*1 + 1*1 + 1*0 + 2*(2/3)) / 7 = (16/3) / 7 = 16/21
  assert result["token_f1_micro"] == pytest.approx(5 / 6)
  assert result["token_f1_macro"] == pytest.approx(11 / 15)
  assert result["token_f1_weighted"] == pytest.approx(16 / 21)
  # Had "O" been scored, the 8 correctly-predicted O words would push micro F1 up to plain
  # accuracy, 13 / 15 = 0.8667; excluding O keeps it at 5/6 = 0.8333.
  assert result["token_f1_micro"] != pytest.approx(13 / 15)


def test_per_intent_by_hand():
  per_intent = small_set_metrics()["per_intent"]
  assert list(per_intent) == ["AddToPlaylist", "PlayMusic", "RateBook"]  # sorted gold intents
  # PlayMusic = ex0 + ex2. Both intents right -> 2/2.
  # Gold entities: artist(ex0), genre(ex2), artist(ex2 3-4) = 3; predicted: artist(ex0),
  # genre(ex2), artist(ex2 3-3) = 3; matches 2 -> P = R = F1 = 2/3. Whole frame: ex0 only -> 1/2.
  # Token F1 over PlayMusic's words only (labels B-artist, B-genre, I-artist; no B-playlist or
  # B-rating_value, which are not in these examples):
  #             gold  pred  tp  F1
  # B-artist      2     2    2  1
  # B-genre       1     1    1  1
  # I-artist      2     1    1  2/3
  # micro: tp 4, pred 4, gold 5 -> P = 1, R = 4/5, F1 = 8/9; macro (1 + 1 + 2/3) / 3 = 8/9;
  # weighted (2 + 1 + 2 * 2/3) / 5 = 13/15.
  assert per_intent["PlayMusic"] == pytest.approx({
      "count": 2, "intent_accuracy": 1.0, "slot_precision": 2 / 3, "slot_recall": 2 / 3,
      "slot_f1": 2 / 3, "token_f1_micro": 8 / 9, "token_f1_macro": 8 / 9,
      "token_f1_weighted": 13 / 15, "whole_frame_accuracy": 0.5})
  # AddToPlaylist = ex1. Intent wrong -> 0/1; playlist entity right -> P = R = F1 = 1;
  # whole frame 0/1 because of the intent; its one B-playlist word right -> token F1 1.
  assert per_intent["AddToPlaylist"] == pytest.approx({
      "count": 1, "intent_accuracy": 0.0, "slot_precision": 1.0, "slot_recall": 1.0,
      "slot_f1": 1.0, "token_f1_micro": 1.0, "token_f1_macro": 1.0, "token_f1_weighted": 1.0,
      "whole_frame_accuracy": 0.0})
  # RateBook = ex3. Intent right -> 1/1; 1 gold entity, 0 predicted -> P = 0 (0/0 with
  # zero_division 0), R = 0/1 = 0, F1 = 0; whole frame 0/1. Its one B-rating_value word is
  # predicted O: token F1 0 (micro, macro and weighted).
  assert per_intent["RateBook"] == pytest.approx({
      "count": 1, "intent_accuracy": 1.0, "slot_precision": 0.0, "slot_recall": 0.0,
      "slot_f1": 0.0, "token_f1_micro": 0.0, "token_f1_macro": 0.0, "token_f1_weighted": 0.0,
      "whole_frame_accuracy": 0.0})


def test_per_slot_by_hand():
  per_slot = small_set_metrics()["per_slot"]
  assert list(per_slot) == ["artist", "genre", "playlist", "rating_value"]  # no avg rows
  # artist: gold 2, pred 2, match 1 (ex0) -> P = R = F1 = 1/2.
  assert per_slot["artist"] == pytest.approx(
      {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
  assert per_slot["genre"] == pytest.approx(
      {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
  # rating_value: gold 1, pred 0 -> all 0.
  assert per_slot["rating_value"] == pytest.approx(
      {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})


def test_result_is_json_serialisable_with_python_types():
  result = small_set_metrics()
  assert_plain_json_types(result)
  assert json.loads(json.dumps(result)) == result


def test_tuples_are_accepted_like_lists():
  as_tuples = metrics.nlu_metrics(
      tuple(GOLD_INTENTS), tuple(tuple(t) for t in GOLD_TAGS),
      tuple(PRED_INTENTS), tuple(tuple(t) for t in PRED_TAGS))
  assert as_tuples == small_set_metrics()


def test_gold_labels_unseen_in_predictions_count_as_errors():
  # ex0: Weather / B-city predicted exactly.
  # ex1: gold intent "UnseenIntent" and tag "B-unseen_tag" -- the model can never output them;
  #      it predicts Weather / B-city instead.
  result = metrics.nlu_metrics(
      gold_intents=["Weather", "UnseenIntent"],
      gold_tags=[["B-city"], ["O", "B-unseen_tag"]],
      pred_intents=["Weather", "Weather"],
      pred_tags=[["B-city"], ["O", "B-city"]])
  # Intent: 1 / 2. Whole frame: ex0 only -> 1 / 2.
  assert result["intent_accuracy"] == pytest.approx(0.5)
  assert result["whole_frame_accuracy"] == pytest.approx(0.5)
  # Gold: city(ex0), unseen_tag(ex1) = 2; pred: city(ex0), city(ex1) = 2; match 1.
  # P = R = F1 = 1/2.
  assert result["slot_precision"] == pytest.approx(0.5)
  assert result["slot_recall"] == pytest.approx(0.5)
  assert result["slot_f1"] == pytest.approx(0.5)
  assert result["per_intent"]["UnseenIntent"]["intent_accuracy"] == 0.0
  assert result["per_intent"]["UnseenIntent"]["slot_f1"] == 0.0
  # unseen_tag: support 1, recall 0. city: gold 1, pred 2, match 1 -> P = 1/2, R = 1.
  assert result["per_slot"]["unseen_tag"] == pytest.approx(
      {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
  assert result["per_slot"]["city"]["precision"] == pytest.approx(0.5)
  assert result["per_slot"]["city"]["recall"] == pytest.approx(1.0)


def test_i_tag_without_b_starts_an_entity_leniently():
  # conlleval / seqeval default: "I-artist I-artist" after O is one artist entity spanning 0-1,
  # identical to "B-artist I-artist".
  result = metrics.nlu_metrics(
      ["PlayMusic"], [["I-artist", "I-artist", "O"]],
      ["PlayMusic"], [["B-artist", "I-artist", "O"]])
  assert result["slot_precision"] == 1.0
  assert result["slot_recall"] == 1.0
  assert result["slot_f1"] == 1.0
  # ...but not the same word tags: word 0 is I-artist vs B-artist, so not a whole frame.
  assert result["whole_frame_accuracy"] == 0.0


def test_i_tag_of_another_type_starts_a_new_entity():
  # Gold "B-artist I-album" = artist(0) + album(1). Predicting "B-artist I-artist" = artist(0-1)
  # matches neither: P = 0/1, R = 0/2, F1 = 0.
  result = metrics.nlu_metrics(
      ["PlayMusic"], [["B-artist", "I-album"]], ["PlayMusic"], [["B-artist", "I-artist"]])
  assert result["slot_precision"] == 0.0
  assert result["slot_recall"] == 0.0
  assert result["slot_f1"] == 0.0


def test_whole_set_is_not_the_average_of_batches():
  # Batch A: 1 example, its 1 gold entity predicted exactly           -> F1 = 1.
  # Batch B: 3 examples, 1 gold entity each, nothing predicted          -> F1 = 0.
  # Averaging the batches gives (1 + 0) / 2 = 0.5.
  # Whole set: gold 4, pred 1, match 1 -> P = 1, R = 1/4, F1 = 2 * 0.25 / 1.25 = 0.4.
  # Intents: A 1/1 right; B 1/3 right -> batch mean (1 + 1/3) / 2 = 2/3; whole set 2/4 = 0.5.
  batch_a = (["Weather"], [["B-city"]], ["Weather"], [["B-city"]])
  batch_b = (["Weather", "Weather", "Book"],
             [["B-city"], ["B-city"], ["B-city"]],
             ["Weather", "Book", "Weather"],
             [["O"], ["O"], ["O"]])
  result_a = metrics.nlu_metrics(*batch_a)
  result_b = metrics.nlu_metrics(*batch_b)
  assert result_a["slot_f1"] == 1.0
  assert result_b["slot_f1"] == 0.0
  batch_mean_f1 = (result_a["slot_f1"] + result_b["slot_f1"]) / 2
  batch_mean_intent = (result_a["intent_accuracy"] + result_b["intent_accuracy"]) / 2
  assert batch_mean_f1 == pytest.approx(0.5)
  assert batch_mean_intent == pytest.approx(2 / 3)

  whole = metrics.nlu_metrics(*(a + b for a, b in zip(batch_a, batch_b)))
  assert whole["slot_precision"] == pytest.approx(1.0)
  assert whole["slot_recall"] == pytest.approx(0.25)
  assert whole["slot_f1"] == pytest.approx(0.4)
  assert whole["intent_accuracy"] == pytest.approx(0.5)
  assert whole["slot_f1"] != pytest.approx(batch_mean_f1)
  assert whole["intent_accuracy"] != pytest.approx(batch_mean_intent)


def test_no_entities_anywhere_scores_one_without_warnings():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    result = metrics.nlu_metrics(
        ["Greet", "Greet"], [["O", "O"], ["O"]], ["Greet", "Bye"], [["O", "O"], ["O"]])
  # Nothing to find and nothing wrongly found: P = R = F1 = 1 by definition; no non-O tag at
  # all, so token F1s are 1 too.
  for key in ("slot_precision", "slot_recall", "slot_f1",
              "token_f1_micro", "token_f1_macro", "token_f1_weighted"):
    assert result[key] == 1.0, key
  assert result["per_slot"] == {}
  assert result["intent_accuracy"] == pytest.approx(0.5)
  assert result["whole_frame_accuracy"] == pytest.approx(0.5)
  assert result["per_intent"]["Greet"]["slot_f1"] == 1.0


def test_spurious_entities_with_no_gold_entities_score_zero():
  # Gold has no entity, prediction has 1: P = 0/1 = 0, R = 0/0 -> 0, F1 = 0.
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    result = metrics.nlu_metrics(["Greet"], [["O", "O"]], ["Greet"], [["O", "B-name"]])
  assert result["slot_precision"] == 0.0
  assert result["slot_recall"] == 0.0
  assert result["slot_f1"] == 0.0
  assert result["token_f1_micro"] == 0.0
  assert result["per_slot"]["name"]["support"] == 0


def test_length_mismatch_names_example_index_and_lengths():
  with pytest.raises(ValueError, match=r"Example 1: .*length 2.*length 3"):
    metrics.nlu_metrics(
        ["A", "B"], [["O"], ["O", "O", "O"]], ["A", "B"], [["O"], ["O", "O"]])


def test_different_example_counts_raise():
  with pytest.raises(ValueError, match="number of examples"):
    metrics.nlu_metrics(["A", "B"], [["O"], ["O"]], ["A"], [["O"], ["O"]])


def test_empty_input_raises():
  with pytest.raises(ValueError, match="empty"):
    metrics.nlu_metrics([], [], [], [])


def test_tag_string_instead_of_sequence_raises():
  with pytest.raises(ValueError, match="Example 0"):
    metrics.nlu_metrics(["A"], ["O"], ["A"], [["O"]])


def test_tags_to_spans_multi_word_and_span_at_end():
  words = ["book", "a", "table", "at", "olive", "garden", "for", "two"]
  tags = ["O", "O", "O", "O", "B-restaurant", "I-restaurant", "O", "B-party_size"]
  assert metrics.tags_to_spans(words, tags) == [
      {"slot": "restaurant", "text": "olive garden", "start": 4, "end": 6},
      {"slot": "party_size", "text": "two", "start": 7, "end": 8},
  ]


def test_tags_to_spans_adjacent_spans_of_different_types():
  words = ["to", "san", "jose", "california"]
  tags = ["O", "B-city", "I-city", "B-state"]
  assert metrics.tags_to_spans(words, tags) == [
      {"slot": "city", "text": "san jose", "start": 1, "end": 3},
      {"slot": "state", "text": "california", "start": 3, "end": 4},
  ]


def test_tags_to_spans_lenient_i_tags():
  # I-x after O starts a span; I-y right after an x span starts a new y span;
  # B-x right after an x span also starts a new span.
  words = ["ruth", "lorenzo", "euphoria", "adele", "queen"]
  tags = ["I-artist", "I-artist", "I-track", "B-artist", "B-artist"]
  assert metrics.tags_to_spans(words, tags) == [
      {"slot": "artist", "text": "ruth lorenzo", "start": 0, "end": 2},
      {"slot": "track", "text": "euphoria", "start": 2, "end": 3},
      {"slot": "artist", "text": "adele", "start": 3, "end": 4},
      {"slot": "artist", "text": "queen", "start": 4, "end": 5},
  ]


def test_tags_to_spans_accepts_tuples_and_empty():
  assert metrics.tags_to_spans(("hi",), ("O",)) == []
  assert metrics.tags_to_spans((), ()) == []


def test_tags_to_spans_length_mismatch_raises():
  with pytest.raises(ValueError, match="2 words but 1 tags"):
    metrics.tags_to_spans(["a", "b"], ["O"])


def test_multi_intent_metrics_by_hand():
  # Train saw the sets {a}, {b}, {a, b}; {a, c} and {c} are unseen combinations.
  gold = ["a#b", "b#a", "a#c", "c", "a"]
  pred = ["b#a", "a", "c#a", "a", "a"]
  gold_tags = [["O"], ["B-x"], ["O"], ["O"], ["B-x"]]
  pred_tags = [["O"], ["B-x"], ["B-x"], ["O"], ["B-x"]]
  result = metrics.multi_intent_metrics(gold, gold_tags, pred, pred_tags, ["a", "b", "a#b"])
  # Sets right: 0 ("b#a" == {a, b}), 2, 4 -> 3 / 5 (row 1 misses b, row 3 says a for c).
  assert result["intent_set_accuracy"] == pytest.approx(3 / 5)
  # Atomic counts: a: tp 4 (rows 0, 2, 4, and row 1 is a false positive) -> tp 3? Row by row:
  # 0 {a,b}/{a,b}: tp a, b. 1 {a,b}/{a}: tp a, fn b. 2 {a,c}/{a,c}: tp a, c. 3 {c}/{a}: fp a,
  # fn c. 4 {a}/{a}: tp a. -> a: tp 4, fp 1, fn 0; b: tp 1, fn 1; c: tp 1, fn 1.
  per_intent = result["per_intent"]
  assert per_intent["a"] == pytest.approx({"precision": 0.8, "recall": 1.0, "f1": 8 / 9,
                                           "support": 4})
  assert per_intent["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3,
                                           "support": 2})
  assert per_intent["c"]["f1"] == pytest.approx(2 / 3)
  # Micro: tp 6, fp 1, fn 2 -> P 6/7, R 6/8, F1 = 12/15.
  assert result["intent_precision_micro"] == pytest.approx(6 / 7)
  assert result["intent_recall_micro"] == pytest.approx(6 / 8)
  assert result["intent_f1_micro"] == pytest.approx(0.8)
  assert result["intent_f1_macro"] == pytest.approx((8 / 9 + 2 / 3 + 2 / 3) / 3)
  assert result["per_combination"] == {
      "a": {"count": 1, "predicted": 3, "correct": 1, "seen_in_train": True},
      "a#b": {"count": 2, "predicted": 1, "correct": 1, "seen_in_train": True},
      "a#c": {"count": 1, "predicted": 1, "correct": 1, "seen_in_train": False},
      "c": {"count": 1, "predicted": 0, "correct": 0, "seen_in_train": False}}
  # Unseen: rows 2 (set right, tags wrong) and 3 (set wrong).
  assert result["unseen_combinations"] == {"count": 2, "intent_set_accuracy": 0.5,
                                           "whole_frame_accuracy": 0.0}
  assert result["seen_combinations"] == pytest.approx(
      {"count": 3, "intent_set_accuracy": 2 / 3, "whole_frame_accuracy": 2 / 3})
  assert result["multi_intent_utterances"] == {"count": 3, "intent_set_accuracy": 2 / 3,
                                               "whole_frame_accuracy": 1 / 3}
  json.dumps(result)


def test_multi_intent_metrics_without_unseen_combinations_report_none():
  result = metrics.multi_intent_metrics(["a"], [["O"]], ["a"], [["O"]], ["a"])
  assert result["unseen_combinations"] == {"count": 0, "intent_set_accuracy": None,
                                           "whole_frame_accuracy": None}


def test_format_metrics_table_shows_intents_and_percentages():
  table = metrics.format_metrics_table(small_set_metrics(), title="dev set")
  assert table.startswith("dev set\n")
  for intent in ("PlayMusic", "AddToPlaylist", "RateBook"):
    assert intent in table
  assert "75.00%" in table   # intent accuracy and slot precision
  assert "60.00%" in table   # slot recall
  assert "66.67%" in table   # slot F1 (and PlayMusic slot F1)
  assert "83.33%" in table   # token F1 micro = 5/6
  assert "25.00%" in table   # whole-frame accuracy
  assert "whole-frame acc" in table
  assert "token F1 micro" in table and "88.89%" in table  # PlayMusic token F1 micro = 8/9
  assert "100.00%" in table  # PlayMusic intent accuracy


# ---------------------------------------------------------------------------------------------
# GLUE. Five examples, positive class "1":
#   gold 1 0 1 1 0
#   pred 1 1 1 0 0      TP = 2 (ex0, ex2), FP = 1 (ex1), FN = 1 (ex3), TN = 1 (ex4)
GLUE_GOLD = ["1", "0", "1", "1", "0"]
GLUE_PRED = ["1", "1", "1", "0", "0"]


def test_glue_classification_metrics_by_hand():
  result = metrics.classification_metrics(GLUE_GOLD, GLUE_PRED, ["0", "1"], positive_label="1",
                                          with_matthews=True)
  assert result["num_examples"] == 5
  assert result["accuracy"] == pytest.approx(3 / 5)
  # precision 2/3, recall 2/3
  assert result["f1"] == pytest.approx(2 / 3)
  assert result["accuracy_f1_mean"] == pytest.approx((3 / 5 + 2 / 3) / 2)
  # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3*3*2*2)
  assert result["matthews_corrcoef"] == pytest.approx(1 / 6)
  assert result["confusion_matrix"] == {"labels": ["0", "1"], "counts": [[1, 1], [1, 2]]}
  plain = metrics.classification_metrics(GLUE_GOLD, GLUE_PRED, ["0", "1"])
  assert set(plain) == {"num_examples", "accuracy", "confusion_matrix"}


def test_glue_degenerate_classification_is_zero_not_nan():
  # Every prediction "0": F1 of "1" and the Matthews correlation are undefined -> 0.
  assert metrics.positive_class_f1(["1", "0"], ["0", "0"], "1") == 0.0
  assert metrics.matthews_correlation(["1", "0"], ["0", "0"]) == 0.0
  with pytest.raises(ValueError, match="2 gold values but 1 predictions"):
    metrics.accuracy(["1", "0"], ["1"])


def test_glue_regression_metrics_against_numpy_and_ranks():
  gold = [1.0, 2.0, 3.0, 4.0]
  pred = [1.0, 3.0, 2.0, 8.0]
  result = metrics.regression_metrics(gold, pred)
  assert result["pearson"] == pytest.approx(np.corrcoef(gold, pred)[0, 1])
  # Ranks 1 2 3 4 vs 1 3 2 4: d^2 sums to 2; 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
  assert result["spearman"] == pytest.approx(0.8)
  assert result["pearson_spearman_mean"] == pytest.approx((result["pearson"] + 0.8) / 2)
  assert result["mse"] == pytest.approx((0 + 1 + 1 + 16) / 4)
  # A constant prediction has no correlation: 0, not NaN.
  assert metrics.pearson_spearman(gold, [2.5] * 4) == (0.0, 0.0)


def test_glue_table_lists_present_metrics_and_confusion_matrix():
  result = metrics.classification_metrics(GLUE_GOLD, GLUE_PRED, ["0", "1"], positive_label="1")
  result["num_truncated"] = 2
  table = metrics.format_glue_metrics_table(result, title="dev")
  lines = table.splitlines()
  assert lines[0] == "dev"
  assert lines[2].split() == ["examples", "5"]
  assert lines[3].split() == ["accuracy", "60.00"]
  assert "66.67" in lines[4] and "Matthews" not in table
  assert "truncated examples" in table and "rows gold, columns predicted" in table


def test_mean_and_std_over_runs_uses_the_sample_standard_deviation():
  summary = metrics.mean_and_std([0.9, 0.8, 1.0])
  assert summary["mean"] == pytest.approx(0.9)
  assert summary["std"] == pytest.approx(0.1)  # sqrt(((0)^2 + 0.1^2 + 0.1^2) / (3 - 1))
  assert summary["values"] == [0.9, 0.8, 1.0]
  assert metrics.mean_and_std([0.7]) == {"mean": 0.7, "std": 0.0, "values": [0.7]}
  assert metrics.mean_and_std([]) == {"mean": None, "std": None, "values": []}
