"""End to end on a tiny BERT: train, periodic eval, best export, resume, predict raw text."""

import json
import os
import shutil

import numpy as np
import pytest

from bert_nlu import encoder, hooks, metrics, model, testing, train
from bert_nlu.data.labels import LabelMaps
from bert_nlu.predict import NluPredictor, predict_lines
from bert_nlu.tasks.nlu import EVAL_METRIC_NAMES, NluTask


make_config = testing.tiny_training_config

_FILLERS_13 = "please now for me the in at please now for me the in".split()
# Dev examples the default tiny corpus lacks, appended to a copy of it (words, tags, intent). At
# max_seq_length 16 an utterance keeps 14 single-piece words: the first two lose their last 2.
DEV_EDGE_CASES = (
    # Truncated, and its last word is a slot the model never sees: a missed entity.
    (["play", "adele"] + _FILLERS_13 + ["queen"], ["O", "B-artist"] + ["O"] * 13 + ["B-artist"],
     "PlayMusic"),
    # Truncated, only O words lost: can still be entirely right.
    (["weather", "paris"] + _FILLERS_13 + ["now"], ["O", "B-city"] + ["O"] * 14, "GetWeather"),
    # An intent and a slot tag that train does not have: always errors.
    (["weather", "in", "oslo"], ["O", "O", "B-city"], "GetForecast"),
    (["book", "zuma", "now"], ["O", "B-venue", "O"], "BookRestaurant"),
)
EVAL_BATCH_SIZE = 7  # 34 dev examples: 4 batches of 7 and a last one of 6


def make_edge_case_corpus(source_dir: str, directory: str) -> str:
  """A copy of the tiny corpus with DEV_EDGE_CASES appended to dev; returns `directory`."""
  shutil.copytree(source_dir, directory)
  columns = {"seq.in": [" ".join(words) for words, _, _ in DEV_EDGE_CASES],
             "seq.out": [" ".join(tags) for _, tags, _ in DEV_EDGE_CASES],
             "label": [intent for _, _, intent in DEV_EDGE_CASES]}
  for name, lines in columns.items():
    with open(os.path.join(directory, "dev", name), "a", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
  return directory


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  """The end-to-end run: dev has truncated utterances and unseen labels, and is evaluated in
  several batches (the last one partial)."""
  corpus_dir = make_edge_case_corpus(tiny_corpus_dir,
                                     str(tmp_path_factory.mktemp("edge") / "corpus"))
  output_dir = str(tmp_path_factory.mktemp("run"))
  config = make_config(tiny_bert_dir, corpus_dir, output_dir, eval_batch_size=EVAL_BATCH_SIZE)
  return config, train.run(config)


def _saved_predictions(config, split="dev"):
  with open(os.path.join(config.output_dir, f"predictions_{split}.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _metrics_of(rows):
  return metrics.nlu_metrics([r["gold_intent"] for r in rows], [r["gold_tags"] for r in rows],
                             [r["pred_intent"] for r in rows], [r["pred_tags"] for r in rows])


def test_learns_far_beyond_chance(trained):
  _, results = trained
  dev = results["splits"]["dev"]
  # 3 balanced intents: chance is ~33% intent accuracy and ~0 whole-frame accuracy.
  assert dev["intent_accuracy"] >= 0.9
  assert dev["slot_f1"] >= 0.75  # 2 of dev's 35 entities cannot be found (DEV_EDGE_CASES)
  assert dev["whole_frame_accuracy"] >= 0.6
  assert results["training"]["num_train_steps"] == 188  # ceil(150 * 20 / 16)


def test_results_file_holds_best_checkpoint_metrics_for_dev_and_test(trained):
  config, results = trained
  with open(os.path.join(config.output_dir, "eval_results.json")) as f:
    saved = json.load(f)
  best = hooks.read_best(config.output_dir)
  assert saved["checkpoint"] == best["checkpoint"]
  assert saved["best_step"] == best["step"]
  assert set(saved["splits"]) == {"dev", "test"}
  assert set(saved["splits"]["test"]["per_intent"]) == {"BookRestaurant", "GetWeather",
                                                         "PlayMusic"}
  assert set(saved["splits"]["dev"]["per_intent"]) == {"BookRestaurant", "GetForecast",
                                                        "GetWeather", "PlayMusic"}
  # The final dev evaluation of the best checkpoint reproduces what periodic eval measured.
  assert saved["splits"]["dev"]["whole_frame_accuracy"] == pytest.approx(best["value"], abs=1e-6)
  # ... and the best is at least as good as every periodic evaluation.
  for split in saved["splits"].values():
    assert split["prediction_examples_per_second"] > 0
  assert saved["model"]["parameters"] == saved["model"]["trainable_parameters"] > 0
  # Counted on the training graph: the same as on a network built apart for them.
  assert saved["model"] == model.parameter_counts(
      train.make_task(config, LabelMaps.load(os.path.join(config.output_dir, "label_maps.json"))),
      encoder.load_bert_config(config.model.bert_config_file), config.model)
  assert sum(saved["train_intent_counts"].values()) == 150
  for phase in ("training", "evaluation"):
    assert saved["memory"][phase]["peak_rss_mb"] > 100  # TensorFlow alone takes more
  lines = open(os.path.join(config.output_dir, "predictions_dev.jsonl")).read().splitlines()
  assert len(lines) == 30 + len(DEV_EDGE_CASES) and "pred_tags" in json.loads(lines[0])


def test_metrics_are_computed_once_over_all_evaluation_batches(trained):
  """Dev is evaluated in 5 batches: the periodic evaluation that chose the best checkpoint and
  eval_results.json must both equal the metrics of all 34 saved predictions together."""
  config, results = trained
  rows = _saved_predictions(config)
  assert len(rows) == 34 > 4 * EVAL_BATCH_SIZE
  expected = _metrics_of(rows)
  assert 0 < expected["whole_frame_accuracy"] < 1 and 0 < expected["slot_f1"] < 1
  best = hooks.read_best(config.output_dir)
  for name in EVAL_METRIC_NAMES:  # periodic evaluation (float32 on the way through the graph)
    assert best["eval_result"][name] == pytest.approx(expected[name], abs=1e-6), name
  assert hooks.BestModelExporter(config.output_dir, NluTask.selection_metric, None, {}
                                 ).evaluated_steps()[best["step"]] == pytest.approx(
                                     expected["whole_frame_accuracy"], abs=1e-6)
  dev = dict(results["splits"]["dev"])
  assert dev.pop("num_truncated") == 2
  assert dev.pop("prediction_examples_per_second") > 0  # a speed, not a metric of the rows
  train_split, _ = train.read_corpus(config, [])
  assert dev.pop("multi_intent") == metrics.multi_intent_metrics(
      [r["gold_intent"] for r in rows], [r["gold_tags"] for r in rows],
      [r["pred_intent"] for r in rows], [r["pred_tags"] for r in rows],
      train_split["train"].intents())
  assert dev == expected


def test_truncated_words_count_as_predicted_o_and_unseen_labels_as_errors(trained):
  config, results = trained
  dev = results["splits"]["dev"]
  with open(os.path.join(config.output_dir, "eval_results.json"), encoding="utf-8") as f:
    assert json.load(f)["splits"]["dev"] == dev
  rows = _saved_predictions(config)  # in dev order: the edge cases are the last 4
  with open(os.path.join(config.data.data_dir, "dev", "seq.in"), encoding="utf-8") as f:
    dev_words = [line.split() for line in f]
  assert dev["num_examples"] == len(dev_words) == 34
  assert dev["num_words"] == sum(len(words) for words in dev_words)  # truncated words included
  assert dev["num_truncated"] == 2
  long_slot, long_o, unseen_intent, unseen_tag = rows[-4:]
  assert [row["text"].split() for row in rows[-4:]] == [words for words, _, _ in DEV_EDGE_CASES]
  for row in (long_slot, long_o):
    assert len(row["pred_tags"]) == 16
    assert row["pred_tags"][14:] == ["O", "O"]  # the 2 words cut off
  assert long_slot["pred_tags"] != long_slot["gold_tags"]  # so its frame is wrong
  assert unseen_intent["pred_intent"] != "GetForecast"
  assert dev["per_intent"]["GetForecast"]["count"] == 1
  assert dev["per_intent"]["GetForecast"]["intent_accuracy"] == 0.0
  assert dev["per_intent"]["GetForecast"]["whole_frame_accuracy"] == 0.0
  assert "B-venue" not in unseen_tag["pred_tags"]
  assert dev["per_slot"]["venue"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
  # Three frames are wrong whatever the model does; they stay in every denominator.
  right_frames = sum(r["gold_intent"] == r["pred_intent"] and r["gold_tags"] == r["pred_tags"]
                     for r in rows)
  assert right_frames <= 31
  assert dev["whole_frame_accuracy"] == right_frames / 34
  right_intents = sum(r["gold_intent"] == r["pred_intent"] for r in rows)
  assert dev["intent_accuracy"] == right_intents / 34 <= 33 / 34


def test_best_checkpoint_is_kept_apart_from_rotation(trained):
  config, _ = trained
  best = hooks.read_best(config.output_dir)
  assert os.path.exists(best["checkpoint"] + ".index")
  assert os.path.dirname(best["checkpoint"]).startswith(
      os.path.join(config.output_dir, "best_checkpoint"))
  assert os.path.isdir(best["saved_model"])


def test_predict_raw_text_to_spans(trained):
  config, _ = trained
  predictor = NluPredictor(hooks.latest_export(config.output_dir))
  texts = ["play  adele queen please", "weather in paris", "   ", "book hakkasan now"]
  results = predictor.predict(texts)
  assert [r["text"] for r in results] == texts
  assert results[2]["intent"] is None and results[2]["slots"] == []
  assert results[0]["intent"]["name"] == "PlayMusic"
  assert results[1]["intent"]["name"] == "GetWeather"
  for result in (results[0], results[1], results[3]):
    assert 0.0 <= result["intent"]["probability"] <= 1.0
    for span in result["slots"]:
      assert result["text"][span["start"]:span["end"]] == span["text"]
      assert span["slot"] in {"artist", "city", "restaurant"}
  assert {"slot": "city", "text": "paris"}.items() <= results[1]["slots"][0].items()


def test_predict_lines_writes_json_lines(trained, tmp_path):
  import io
  config, _ = trained
  predictor = NluPredictor(hooks.latest_export(config.output_dir))
  out = io.StringIO()
  assert predict_lines(predictor, ["weather in rome", 'say "hi" \\ </script>'], 1, out) == 2
  rows = [json.loads(line) for line in out.getvalue().splitlines()]
  assert rows[1]["text"] == 'say "hi" \\ </script>'


def test_predict_warns_once_on_stderr_when_words_are_cut(trained):
  import io
  config, _ = trained
  predictor = NluPredictor(hooks.latest_export(config.output_dir))
  long_utterance = " ".join(["play"] + ["adele"] * 19)  # 21 pieces with [CLS]/[SEP]; 16 fit
  out, err = io.StringIO(), io.StringIO()
  predict_lines(predictor, ["weather in rome", long_utterance, long_utterance], 1, out, err)
  rows = [json.loads(line) for line in out.getvalue().splitlines()]
  assert [row["truncated_words"] for row in rows] == [0, 6, 6]
  assert err.getvalue().count("\n") == 1
  assert "2 of 3 utterances" in err.getvalue() and "12 words" in err.getvalue()
  err = io.StringIO()
  predict_lines(predictor, ["weather in rome"], 1, io.StringIO(), err)
  assert err.getvalue() == ""


def _corpus_with_one_long_line(directory):
  corpus = testing.make_corpus(directory)
  with open(os.path.join(corpus, "dev", "seq.in"), "a") as f:
    f.write(" ".join(["play"] + ["hakkasan"] * 9) + "\n")  # 1 + 9 * 3 pieces + 2 = 30
  with open(os.path.join(corpus, "dev", "seq.out"), "a") as f:
    f.write(" ".join(["O"] + ["B-restaurant"] + ["I-restaurant"] * 8) + "\n")
  with open(os.path.join(corpus, "dev", "label"), "a") as f:
    f.write("BookRestaurant\n")
  return corpus


def test_truncation_is_reported_before_training(tiny_bert_dir, tmp_path, monkeypatch):
  corpus = _corpus_with_one_long_line(str(tmp_path / "corpus"))
  config = testing.tiny_run_config(tiny_bert_dir, corpus, str(tmp_path / "run"),
                                   max_seq_length=16)
  warnings = []
  monkeypatch.setattr(train.tf.logging, "warning", lambda fmt, *a: warnings.append(fmt % a))
  splits, _ = train.read_corpus(config, ["dev"])
  resolved, reports = train.resolve_max_seq_length(config, splits, 64)
  assert resolved == config
  # 14 pieces fit: "play" + 4 words of 3 pieces; 5 of the 10 words are lost.
  assert (reports["dev"].num_truncated, reports["dev"].words_lost) == (1, 5)
  assert reports["train"].num_truncated == 0
  assert warnings == [
      "max_seq_length=16 truncates dev: 1 of 31 examples (5 words lost). A length of 30 covers "
      "100% of these examples, 30 covers 99.9% (--max_seq_length=auto picks the first, up to "
      "the model's position limit)."]
  assert train.length_summary(reports)["dev"] == {
      "examples": 31, "truncated": 1, "words_lost": 5, "longest": 30, "covers_99_9": 30}


@pytest.mark.parametrize("position_limit, expected", [(64, 30), (24, 24)])
def test_auto_max_seq_length_covers_every_split_up_to_the_position_limit(
    tiny_bert_dir, tmp_path, position_limit, expected):
  corpus = _corpus_with_one_long_line(str(tmp_path / "corpus"))
  config = testing.tiny_run_config(tiny_bert_dir, corpus, str(tmp_path / "run"),
                                   max_seq_length=64,
                                   data_fields={"auto_max_seq_length": True})
  splits, _ = train.read_corpus(config, ["dev"])  # test is read for the length too
  resolved, reports = train.resolve_max_seq_length(config, splits, position_limit)
  assert resolved.data.max_seq_length == expected
  assert set(reports) == {"train", "dev", "test"}
  assert reports["dev"].num_truncated == (0 if expected == 30 else 1)


class _Interrupt(Exception):
  pass


def test_resume_after_interruption_loses_no_steps(tiny_bert_dir, tiny_corpus_dir, tmp_path,
                                                  monkeypatch):
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"))
  real_after_run = hooks.ExamplesPerSecondHook.after_run

  def interrupting_after_run(self, run_context, run_values):
    real_after_run(self, run_context, run_values)
    if int(run_values.results) >= 70:  # after the step-50 checkpoint, before step 100
      raise _Interrupt()

  monkeypatch.setattr(hooks.ExamplesPerSecondHook, "after_run", interrupting_after_run)
  with pytest.raises(_Interrupt):
    train.run(config)
  monkeypatch.setattr(hooks.ExamplesPerSecondHook, "after_run", real_after_run)
  results = train.run(config)
  # Resumed from the last checkpoint (step 25 or later), not from scratch.
  assert results["training"]["steps_run_this_session"] <= 188 - 50
  from bert_nlu.compat import tf
  assert tf.train.latest_checkpoint(config.output_dir).endswith("model.ckpt-188")


def test_same_seed_same_result(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  results = [
      train.run(make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / name),
                            num_train_epochs=2, save_checkpoints_steps=100))
      for name in ("a", "b")]
  a, b = (r["splits"]["dev"] for r in results)
  assert a["whole_frame_accuracy"] == b["whole_frame_accuracy"]
  assert a["slot_f1"] == b["slot_f1"]
  pred_a = open(tmp_path / "a" / "predictions_dev.jsonl").read()
  pred_b = open(tmp_path / "b" / "predictions_dev.jsonl").read()
  assert pred_a == pred_b


def test_incompatible_rerun_is_refused_and_overwrite_is_explicit(trained, tmp_path):
  import dataclasses
  from bert_nlu import run_dir
  config, _ = trained
  changed = dataclasses.replace(config, data=dataclasses.replace(config.data, max_seq_length=12))
  with pytest.raises(run_dir.IncompatibleRunError) as error:
    train.run(changed)
  assert "config.data.max_seq_length: 16 -> 12" in str(error.value)
  assert "--overwrite_output_dir" in str(error.value)
  assert os.path.exists(os.path.join(config.output_dir, "eval_results.json"))  # untouched


def test_a_run_directory_in_use_is_refused(trained):
  from bert_nlu import run_dir
  config, _ = trained
  with run_dir.RunDirectoryLock(config.output_dir):
    import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
    script = ("import sys; from bert_nlu import run_dir\n"
              f"try:\n  run_dir.RunDirectoryLock({config.output_dir!r}).__enter__()\n"
              "except run_dir.RunDirectoryInUseError as e:\n  print('REFUSED', e); sys.exit(0)\n"
              "sys.exit(1)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0 and "REFUSED" in result.stdout, result.stdout + result.stderr
  assert str(os.getpid()) in result.stdout


def test_early_stopping_ends_training_when_dev_stops_improving(tiny_bert_dir, tiny_corpus_dir,
                                                               tmp_path):
  # A learning rate so small that dev whole-frame accuracy cannot improve after the first eval.
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"),
                       learning_rate=1e-12, save_checkpoints_steps=10, early_stopping_evals=2)
  results = train.run(config)
  from bert_nlu.compat import tf
  final_step = int(tf.train.latest_checkpoint(config.output_dir).rsplit("-", 1)[1])
  assert final_step < results["training"]["num_train_steps"] // 2


def test_prediction_speed_leaves_out_the_first_batch(monkeypatch):
  clock = iter([0.0, 5.0, 6.0, 7.0])  # start; batches of 4, 4, 2 arrive at 5 s, 6 s and 7 s
  monkeypatch.setattr(train.time, "perf_counter", lambda: next(clock))
  speed = train.PredictionSpeed()
  batches = [{"example_index": list(range(n))} for n in (4, 4, 2)]
  assert list(speed.timed(batches)) == batches
  assert speed.examples_per_second() == pytest.approx(6 / 2.0)  # 4 + 2 examples in 7 s - 5 s
  single = train.PredictionSpeed()
  clock = iter([0.0, 2.0])
  list(single.timed([{"example_index": [0, 1, 2, 3]}]))
  assert single.examples_per_second() == pytest.approx(2.0)


@pytest.mark.parametrize("resample", [True, False])
def test_limit_data_limits_train_only_and_the_label_maps_follow(tiny_bert_dir, tiny_corpus_dir,
                                                                tmp_path, resample):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import limit  # pylint: disable=g-import-not-at-top
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path))
  full, _ = train.read_corpus(config, ["dev"])
  read = limit.intent_counts(full["train"])
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, limit_data=(("PlayMusic", 3), ("GetWeather", 0)), resample=resample))
  splits, label_maps = train.read_corpus(config, ["dev"])
  assert limit.intent_counts(splits["train"]) == {
      "BookRestaurant": read["BookRestaurant"], "PlayMusic": read["PlayMusic"] if resample else 3}
  assert label_maps.intents == ("BookRestaurant", "PlayMusic")
  assert splits["dev"].examples == full["dev"].examples


def test_sequential_fine_tuning_continues_from_a_run_with_heads_loaded_by_label(
    trained, tiny_bert_dir, tiny_corpus_dir, tmp_path):
  import dataclasses  # pylint: disable=g-import-not-at-top
  source_config, _ = trained
  best = hooks.read_best(source_config.output_dir)
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "second"),
                       num_train_epochs=1)
  config = dataclasses.replace(
      config,
      data=dataclasses.replace(config.data, limit_data=(("GetWeather", 0),)),
      model=dataclasses.replace(config.model, init_checkpoint=best["checkpoint"],
                                init_run_dir=source_config.output_dir))
  results = train.run(config)
  loaded = results["warm_start"]
  assert loaded["intents"] == {"copied": ["BookRestaurant", "PlayMusic"], "new": [],
                               "dropped": ["GetWeather"]}
  assert "B-city" in loaded["slot_tags"]["dropped"] and not loaded["slot_tags"]["new"]
  assert loaded["source_checkpoint"] == best["checkpoint"]
  with open(os.path.join(config.output_dir, "eval_results.json")) as f:
    assert json.load(f)["warm_start"] == loaded
  # 7 steps from scratch would not do this: the encoder and the shared head rows were loaded.
  per_intent = results["splits"]["dev"]["per_intent"]
  for intent in ("BookRestaurant", "PlayMusic"):
    assert per_intent[intent]["intent_accuracy"] >= 0.9


@pytest.fixture(scope="module")
def without_play_music(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  """Stage 1 of a forgetting study: the tiny corpus with PlayMusic dropped (COUNT 0)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path_factory.mktemp("stage1")),
                       num_train_epochs=10)
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, limit_data=(("PlayMusic", 0),)))
  return config, train.run(config)


def test_keep_init_labels_adds_a_new_intent_and_keeps_the_old_ones_evaluated(
    without_play_music, tiny_bert_dir, tiny_corpus_dir, tmp_path):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import limit  # pylint: disable=g-import-not-at-top
  source_config, source_results = without_play_music
  old_maps = LabelMaps.load(os.path.join(source_config.output_dir, "label_maps.json"))
  assert old_maps.intents == ("BookRestaurant", "GetWeather")
  # Stage 2: 3 PlayMusic sentences alone (the other intents COUNT 0), resampled to PlayMusic's
  # own count, on top of stage 1 with its labels kept.
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "stage2"),
                       num_train_epochs=1, learning_rate=1e-4)
  config = dataclasses.replace(
      config,
      data=dataclasses.replace(config.data, limit_data=(
          ("PlayMusic", 3), ("BookRestaurant", 0), ("GetWeather", 0))),
      model=dataclasses.replace(
          config.model, init_run_dir=source_config.output_dir, keep_init_labels=True,
          init_checkpoint=hooks.read_best(source_config.output_dir)["checkpoint"]))
  splits, _ = train.read_corpus(config, ["dev"])
  full, _ = train.read_corpus(make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path)), [])
  assert limit.intent_counts(splits["train"]) == {
      "PlayMusic": limit.intent_counts(full["train"])["PlayMusic"]}
  assert len({e.guid for e in splits["train"].examples}) == 3
  results = train.run(config)
  new_maps = LabelMaps.load(os.path.join(config.output_dir, "label_maps.json"))
  assert new_maps.intents == old_maps.intents + ("PlayMusic",)
  assert new_maps.slot_tags == old_maps.slot_tags + ("B-artist", "I-artist")
  assert results["warm_start"]["intents"] == {
      "copied": ["BookRestaurant", "GetWeather"], "new": ["PlayMusic"], "dropped": []}
  assert results["warm_start"]["slot_tags"]["dropped"] == []
  assert results["config"]["model"]["keep_init_labels"] is True
  # The warm start copied the shared rows as they were (the earlier run kept no averages).
  before = tf.train.load_checkpoint(hooks.read_best(source_config.output_dir)["checkpoint"])
  after = tf.train.load_checkpoint(results["warm_start"]["checkpoint"])
  for name, count in (("intent_head/dense/kernel", 2), ("slot_head/dense/kernel", 5)):
    np.testing.assert_array_equal(after.get_tensor(name)[:, :count], before.get_tensor(name))
  # The old intents are still predicted and evaluated: one epoch of PlayMusic alone at a low rate
  # leaves most of their dev frames right.
  dev = results["splits"]["dev"]["per_intent"]
  assert set(dev) == {"BookRestaurant", "GetWeather", "PlayMusic"}
  for intent in ("BookRestaurant", "GetWeather"):
    assert dev[intent]["intent_accuracy"] > 0.5, dev[intent]
  predicted = {row["pred_intent"] for row in _saved_predictions(config)}
  assert {"BookRestaurant", "GetWeather"} <= predicted
  assert source_results["splits"]["dev"]["per_intent"]["PlayMusic"]["intent_accuracy"] == 0.0
