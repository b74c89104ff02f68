"""--weight_average_decay end to end: evaluation, the kept best checkpoint and the export use the
moving average of the weights, not the raw weights."""

import os

import numpy as np
import pytest

from bert_nlu import encoder, hooks, testing, train
from bert_nlu.compat import tf
from bert_nlu.predict import NluPredictor
from bert_nlu.tasks.nlu import NluTask

_KERNEL = "slot_head/dense/kernel"


@pytest.fixture(scope="module")
def averaged_run(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp("averaged_run"))
  # All checkpoints kept: each periodic evaluation can be redone.
  config = testing.tiny_training_config(tiny_bert_dir, tiny_corpus_dir, output_dir,
                                        weight_average_decay=0.9, layer_learning_rate_decay=0.8,
                                        save_checkpoints_steps=40, keep_checkpoint_max=10)
  return config, train.run(config)


def test_averaged_run_learns(averaged_run):
  _, results = averaged_run
  dev = results["splits"]["dev"]
  assert dev["intent_accuracy"] >= 0.9  # chance: ~0.33
  assert dev["whole_frame_accuracy"] >= 0.5


def test_the_export_holds_the_averaged_weights_of_the_best_checkpoint(averaged_run):
  config, _ = averaged_run
  best = hooks.read_best(config.output_dir)
  raw = tf.train.load_variable(best["checkpoint"], _KERNEL)
  averaged = tf.train.load_variable(best["checkpoint"], _KERNEL + "/ExponentialMovingAverage")
  assert np.abs(raw - averaged).max() > 1e-5  # they differ, so the check below can tell them apart
  # Loading the SavedModel (its saver restores the averages into the model's variables):
  with tf.Graph().as_default() as graph, tf.Session(graph=graph) as session:
    tf.saved_model.loader.load(session, ["serve"], hooks.latest_export(config.output_dir))
    exported = session.run([v for v in tf.global_variables() if v.op.name == _KERNEL][0])
  np.testing.assert_array_equal(exported, averaged)
  predictions = NluPredictor(hooks.latest_export(config.output_dir)).predict(["weather in paris"])
  assert predictions[0]["intent"]["name"] == "GetWeather"


def _dev_predictor(config):
  """predict(checkpoint) -> (dev metrics, prediction rows), reading the weights as `config` says
  (the averages with weight_average_decay, else the raw weights)."""
  prepared = train.prepare_data(config, ["dev"])
  task = train.make_task(config, prepared.label_maps)
  bert_config = encoder.load_bert_config(config.model.bert_config_file)
  estimator = train.build_estimator(config, task, bert_config, 1, 0, None)
  return lambda checkpoint: train.predict_split(
      estimator, prepared, "dev", checkpoint, config.train.eval_batch_size,
      config.data.max_seq_length)


def _predict_dev(config, checkpoint):
  return _dev_predictor(config)(checkpoint)


def test_evaluation_reads_the_averaged_weights(averaged_run, tiny_bert_dir, tiny_corpus_dir,
                                              tmp_path):
  """The run's own evaluation of its best checkpoint used the averages: predicting with averaging
  on reproduces it; with averaging off (the raw weights) the confidences differ."""
  config, results = averaged_run
  best = hooks.read_best(config.output_dir)
  averaged_metrics, averaged_rows = _predict_dev(config, best["checkpoint"])
  raw_config = testing.tiny_training_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path))
  _, raw_rows = _predict_dev(raw_config, best["checkpoint"])
  for name in ("intent_accuracy", "slot_f1", "whole_frame_accuracy"):
    assert averaged_metrics[name] == results["splits"]["dev"][name]
  averaged_confidence = np.array([row["intent_confidence"] for row in averaged_rows])
  raw_confidence = np.array([row["intent_confidence"] for row in raw_rows])
  assert np.abs(averaged_confidence - raw_confidence).max() > 1e-4


def test_the_periodic_evaluations_that_select_the_best_checkpoint_read_the_averages(
    averaged_run, tiny_bert_dir, tiny_corpus_dir, tmp_path):
  """Every periodic dev evaluation (the ones that pick the best checkpoint) reproduces an
  evaluation of the averaged weights of its checkpoint; the raw weights score otherwise."""
  config, _ = averaged_run
  periodic = hooks.BestModelExporter(config.output_dir, NluTask.selection_metric, None,
                                     {}).evaluated_steps()
  assert sorted(periodic) == [40, 80, 120, 160, 188]
  predict_averaged = _dev_predictor(config)
  predict_raw = _dev_predictor(
      testing.tiny_training_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path)))
  averaged, raw = {}, {}
  for step in periodic:
    checkpoint = os.path.join(config.output_dir, f"model.ckpt-{step}")
    averaged[step] = predict_averaged(checkpoint)[0][NluTask.selection_metric]
    raw[step] = predict_raw(checkpoint)[0][NluTask.selection_metric]
  assert periodic == pytest.approx(averaged, abs=1e-6)
  assert any(raw[step] != averaged[step] for step in periodic), (raw, averaged)
  best = hooks.read_best(config.output_dir)
  assert best["value"] == pytest.approx(max(averaged.values()), abs=1e-6)
  assert best["step"] == min(step for step, value in averaged.items()
                             if value == pytest.approx(best["value"], abs=1e-6))
