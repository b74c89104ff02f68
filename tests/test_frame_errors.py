"""bert_nlu.frame_errors: frame and span error classes, counts, and the report files."""

import json

import pytest

from bert_nlu import frame_errors
from bert_nlu.errors import InputError


@pytest.mark.parametrize("gold, pred, expected", [
    (["B-city", "I-city", "O"], ["B-city", "I-city", "O"], []),
    (["B-city", "I-city", "O"], ["B-state", "I-state", "O"], [("wrong type", "city", "state")]),
    (["B-city", "I-city", "O"], ["B-city", "O", "O"], [("boundary", "city", "")]),
    (["B-city", "I-city", "O"], ["O", "B-state", "O"],
     [("boundary and type", "city", "state")]),
    (["B-city", "I-city", "O"], ["O", "O", "O"], [("missed", "city", "")]),
    (["O", "O", "B-time"], ["O", "O", "O"], [("missed", "time", "")]),
    (["O", "O", "O"], ["O", "O", "B-time"], [("spurious", "time", "")]),
    # One right span, one missed, one spurious in the same utterance.
    (["B-a", "O", "B-b", "O"], ["B-a", "O", "O", "B-c"],
     [("missed", "b", ""), ("spurious", "c", "")]),
])
def test_span_errors_are_classified_by_overlap_boundaries_and_type(gold, pred, expected):
  assert frame_errors.classify_spans(gold, pred) == expected


def _prediction(gold_intent, pred_intent, gold_tags, pred_tags):
  return {"gold_intent": gold_intent, "pred_intent": pred_intent, "gold_tags": gold_tags,
          "pred_tags": pred_tags}


PREDICTIONS = [
    _prediction("book", "book", ["B-city"], ["B-city"]),  # right
    _prediction("book", "play", ["B-city"], ["B-city"]),  # intent only
    _prediction("book", "book", ["B-city"], ["B-state"]),  # slots only: wrong type
    _prediction("play", "book", ["O", "B-song"], ["O", "O"]),  # both: missed
]


def test_frames_are_split_into_intent_only_slots_only_and_both():
  assert [frame_errors.frame_class(p) for p in PREDICTIONS] == [
      "", "intent only", "slots only", "intent and slots"]
  counts = frame_errors.count_errors(PREDICTIONS)
  assert counts["frames"] == 4 and counts["wrong_frames"] == 3
  assert counts["frame_classes"] == {"intent only": 1, "slots only": 1, "intent and slots": 1}
  assert counts["span_classes"]["wrong type"] == 1 and counts["span_classes"]["missed"] == 1
  assert counts["span_classes_by_type"] == {"city": {"wrong type": 1}, "song": {"missed": 1}}
  assert counts["type_confusions"] == {"city -> state": 1}
  assert counts["wrong_frames_by_gold_intent"] == {"book": 2, "play": 1}


def test_counts_of_several_runs_add_up():
  one = frame_errors.count_errors(PREDICTIONS)
  total = frame_errors.sum_counts([one, one])
  assert total["frames"] == 8 and total["wrong_frames"] == 6
  assert total["frame_classes"]["slots only"] == 2
  assert total["span_classes_by_type"]["song"] == {"missed": 2}
  assert total["type_confusions"] == {"city -> state": 2}


def test_the_command_writes_tables_and_counts_from_a_runs_predictions(tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "predictions_test.jsonl").write_text(
      "".join(json.dumps(p) + "\n" for p in PREDICTIONS))
  output = str(tmp_path / "errors")
  frame_errors.main(["--run", f"seed 42|{run_dir}", "--output", output])
  text = open(output + ".md").read()
  assert "| seed 42 | 4 | 3 | 1 | 1 | 1 | 1 | 0 | 0 | 1 | 0 |" in text
  assert "| city | 1 | 1 | 0 | 0 | 0 | 0 |" in text
  written = json.load(open(output + ".json"))
  assert written["runs"][0]["wrong_frames"] == 3 and written["total"]["frames"] == 4


def test_a_malformed_or_glue_predictions_line_is_named(tmp_path):
  (tmp_path / "predictions_test.jsonl").write_text(
      json.dumps(PREDICTIONS[0]) + "\n" + json.dumps({"gold_label": "1", "pred_label": "0"}) + "\n")
  with pytest.raises(InputError) as error:
    frame_errors.read_predictions(str(tmp_path), "test")
  assert error.value.line == 2 and "gold_intent" in error.value.problem
  with pytest.raises(InputError, match="missing"):
    frame_errors.read_predictions(str(tmp_path), "dev")
