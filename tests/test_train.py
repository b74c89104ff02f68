"""End to end on a tiny BERT: train, periodic eval, best export, resume, predict raw text."""

import json
import os

import pytest

from bert_nlu import hooks, testing, train
from bert_nlu.predict import NluPredictor, predict_lines


make_config = testing.tiny_training_config


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp("run"))
  config = make_config(tiny_bert_dir, tiny_corpus_dir, output_dir)
  return config, train.run(config)


def test_learns_far_beyond_chance(trained):
  _, results = trained
  dev = results["splits"]["dev"]
  # 3 balanced intents: chance is ~33% intent accuracy and ~0 whole-frame accuracy.
  assert dev["intent_accuracy"] >= 0.9
  assert dev["slot_f1"] >= 0.8
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
  for split in saved["splits"].values():
    assert set(split["per_intent"]) == {"BookRestaurant", "GetWeather", "PlayMusic"}
  # The final dev evaluation of the best checkpoint reproduces what periodic eval measured.
  assert saved["splits"]["dev"]["whole_frame_accuracy"] == pytest.approx(best["value"], abs=1e-6)
  # ... and the best is at least as good as every periodic evaluation.
  for split in saved["splits"].values():
    assert split["prediction_examples_per_second"] > 0
  assert saved["model"]["parameters"] == saved["model"]["trainable_parameters"] > 0
  assert sum(saved["train_intent_counts"].values()) == 150
  for phase in ("training", "evaluation"):
    assert saved["memory"][phase]["peak_rss_mb"] > 100  # TensorFlow alone takes more
  lines = open(os.path.join(config.output_dir, "predictions_dev.jsonl")).read().splitlines()
  assert len(lines) == 30 and "pred_tags" in json.loads(lines[0])


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
