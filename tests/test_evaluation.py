"""The in-process evaluator against the Estimator's checkpoint evaluation, on tiny runs.

Two runs with the same seed and recipe (CRF slot decoder, weight averaging) train identically;
one evaluates in process every 8 steps with a checkpoint only every 1000, the other restores
every checkpoint (every 8 steps) into a new graph. Every evaluation, the selected best model and
its final dev metrics must be the same.
"""

import glob
import os

import pytest

from bert_nlu import hooks, testing, train
from bert_nlu.compat import tf
from bert_nlu.tasks.nlu import NluTask

EVAL_EVERY = 8
NUM_STEPS = 19  # ceil(150 * 2 / 16)


def _config(bert_dir, corpus_dir, output_dir, evaluator, save_checkpoints_steps,
            eval_every_steps=None):
  return testing.tiny_run_config(
      bert_dir, corpus_dir, output_dir, model_fields={"slot_crf": True},
      num_train_epochs=2, weight_average_decay=0.9, evaluator=evaluator,
      save_checkpoints_steps=save_checkpoints_steps, eval_every_steps=eval_every_steps,
      save_summary_steps=10, keep_checkpoint_max=2)


@pytest.fixture(scope="module")
def runs(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  """{"in_process": (config, results, offers), "checkpoint": (...)}; offers: every
  (step, export_dir or None) the best-model exporter returned, in order."""
  real_export = hooks.BestModelExporter.export
  out = {}
  for evaluator, save_steps, eval_steps in (("in_process", 1000, EVAL_EVERY),
                                            ("checkpoint", EVAL_EVERY, None)):
    offers = []

    def recording_export(self, *args, offers=offers, **kwargs):
      export_dir = real_export(self, *args, **kwargs)
      eval_result = kwargs["eval_result"] if "eval_result" in kwargs else args[3]
      offers.append((int(eval_result["global_step"]), export_dir))
      return export_dir

    hooks.BestModelExporter.export = recording_export
    try:
      config = _config(tiny_bert_dir, tiny_corpus_dir,
                       str(tmp_path_factory.mktemp(evaluator)), evaluator, save_steps,
                       eval_steps)
      out[evaluator] = (config, train.run(config), offers)
    finally:
      hooks.BestModelExporter.export = real_export
  return out


def _evaluated(config):
  return hooks.BestModelExporter(config.output_dir, NluTask.selection_metric, None,
                                 {}).evaluated_steps()


def test_every_evaluation_matches_the_checkpoint_evaluation_of_the_same_weights(runs):
  in_process, checkpoint = (_evaluated(runs[name][0]) for name in ("in_process", "checkpoint"))
  assert sorted(in_process) == [8, 16, NUM_STEPS]
  assert in_process == checkpoint  # exact: same weights, same graph, same whole-set metrics


def test_best_checkpoint_metrics_do_not_depend_on_the_evaluator(runs):
  (_, in_process, _), (_, checkpoint, _) = runs["in_process"], runs["checkpoint"]
  assert in_process["best_step"] == checkpoint["best_step"]
  a, b = in_process["splits"]["dev"], checkpoint["splits"]["dev"]
  for name in ("intent_accuracy", "slot_f1", "whole_frame_accuracy", "token_f1_macro",
               "per_intent"):
    assert a[name] == b[name], name
  best = hooks.read_best(runs["in_process"][0].output_dir)
  # The kept checkpoint holds the evaluated weights: re-evaluating it from disk agrees.
  assert in_process["splits"]["dev"]["whole_frame_accuracy"] == pytest.approx(best["value"],
                                                                               abs=1e-6)


def test_evaluation_interval_is_not_the_checkpoint_interval(runs):
  config, results, _ = runs["in_process"]
  state = tf.train.get_checkpoint_state(config.output_dir)
  steps = sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)
  assert steps == [0, NUM_STEPS]  # the initial and final ones: no checkpoint per evaluation
  assert results["training"]["evaluations_this_session"] == 3
  events = glob.glob(os.path.join(config.output_dir, "eval_dev", "events.*"))
  scalars = {}
  for path in events:
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
  assert sorted(scalars["whole_frame_accuracy"]) == [8, 16, NUM_STEPS]
  assert {"loss", "intent_accuracy", "slot_f1"} <= set(scalars)


def test_best_export_and_checkpoint_written_only_on_improvement(runs):
  config, _, offers = runs["in_process"]
  values = _evaluated(config)
  best_so_far = None
  for step, export_dir in offers:
    improved = best_so_far is None or values[step] > best_so_far
    assert (export_dir is not None) == improved, (step, values)
    best_so_far = values[step] if improved else best_so_far
  best = hooks.read_best(config.output_dir)
  assert best["value"] == max(values.values())
  assert os.path.isdir(best["saved_model"])
  assert os.path.exists(best["checkpoint"] + ".index")
  # The candidate checkpoint was moved into best_checkpoint/step-N, not left behind.
  assert not glob.glob(os.path.join(config.output_dir, "best_checkpoint", ".candidate", "*"))
