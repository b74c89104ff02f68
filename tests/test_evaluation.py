"""The in-process evaluator against the Estimator's checkpoint evaluation, on tiny runs.

Two runs with the same seed and recipe (CRF slot decoder, weight averaging; 4 dev batches, the last
one short) train identically;
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
      eval_batch_size=8,  # 30 dev examples: 4 batches a pass, the last one short
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


def _eval_scalars(config):
  """{tag: {step: value}} of the run's dev evaluations (<output_dir>/eval_dev events)."""
  scalars = {}
  for path in glob.glob(os.path.join(config.output_dir, "eval_dev", "events.*")):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
  return scalars


def test_every_evaluation_matches_the_checkpoint_evaluation_of_the_same_weights(runs):
  in_process, checkpoint = (_evaluated(runs[name][0]) for name in ("in_process", "checkpoint"))
  assert sorted(in_process) == [8, 16, NUM_STEPS]
  assert in_process == checkpoint  # exact: same weights, same graph, same whole-set metrics
  # Every metric of every evaluation, as TensorBoard has them (the loss is the mean over the dev
  # batches). The in-process dev pipeline is started once and repeats: each evaluation read
  # exactly one pass, as the checkpoint evaluation's new pipeline does, no batch more or less.
  in_process, checkpoint = (_eval_scalars(runs[name][0]) for name in ("in_process", "checkpoint"))
  checkpoint.pop("checkpoint_path", None)  # the Estimator's own extra tag
  assert set(in_process) == set(checkpoint) and {"loss", "intent_accuracy"} <= set(in_process)
  for tag, values in in_process.items():
    assert sorted(values) == [8, 16, NUM_STEPS], tag
    assert values == pytest.approx(checkpoint[tag], abs=1e-6), tag


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
  # The final one only: none before the first step (hooks.PeriodicCheckpointSaverHook), none per
  # evaluation.
  assert steps == [NUM_STEPS]
  assert results["training"]["evaluations_this_session"] == 3
  parts = results["training"]["evaluation_parts_seconds"]
  assert [p["step"] for p in parts] == [8, 16, NUM_STEPS]
  for p in parts:  # the parts are measured inside the evaluation's total
    assert 0 < (p["fetch_weights"] + p["assign_weights"] + p["reset_state"] + p["run_batches"]
                + p["metric_values"]) <= p["seconds"]
    assert p["cpu_seconds"] > 0 and p["major_page_faults"] >= 0
  scalars = _eval_scalars(config)
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


@pytest.fixture(scope="module")
def saver_runs(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  """The same tiny run (evaluation at every save, the default) twice: "reference" with the
  Estimator's own CheckpointSaverHook (a save and graph.pbtxt before the first step) and every
  new best saved again; "trained" as train.py runs today (no save before the first step; a new
  best at a save step links that save). {name: (config, results)}."""
  out = {}
  for name in ("reference", "trained"):
    config = testing.tiny_run_config(
        tiny_bert_dir, tiny_corpus_dir, str(tmp_path_factory.mktemp(name)), num_train_epochs=2,
        save_checkpoints_steps=EVAL_EVERY, save_summary_steps=10, keep_checkpoint_max=5)
    with pytest.MonkeyPatch.context() as patch:
      if name == "reference":
        patch.setattr(hooks, "PeriodicCheckpointSaverHook", tf.estimator.CheckpointSaverHook)
        patch.setattr(hooks.SavedCheckpointsListener, "checkpoint_at", lambda self, step: None)
      out[name] = (config, train.run(config))
  return out


def test_no_save_before_the_first_step_changes_no_metric(saver_runs):
  (reference, reference_results), (trained, results) = saver_runs["reference"], saver_runs["trained"]
  assert _evaluated(trained) == _evaluated(reference)
  assert sorted(_evaluated(trained)) == [8, 16, NUM_STEPS]
  assert results["best_step"] == reference_results["best_step"]
  assert results["splits"]["dev"] == {
      **reference_results["splits"]["dev"],
      "prediction_examples_per_second": results["splits"]["dev"]["prediction_examples_per_second"]}
  # The kept best checkpoint holds the same values, linked or saved.
  best, reference_best = (tf.train.load_checkpoint(hooks.read_best(c.output_dir)["checkpoint"])
                          for c in (trained, reference))
  names = sorted(best.get_variable_to_shape_map())
  assert names == sorted(reference_best.get_variable_to_shape_map())
  for name in names:
    assert (best.get_tensor(name) == reference_best.get_tensor(name)).all(), name


def test_checkpoints_are_the_periodic_ones_and_a_best_at_a_save_step_is_linked(saver_runs):
  (reference, _), (trained, _) = saver_runs["reference"], saver_runs["trained"]

  def saved_steps(config):
    state = tf.train.get_checkpoint_state(config.output_dir)
    return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)

  assert saved_steps(reference) == [0, 8, 16, NUM_STEPS]
  assert saved_steps(trained) == [8, 16, NUM_STEPS]
  assert os.path.exists(os.path.join(reference.output_dir, "graph.pbtxt"))
  assert not os.path.exists(os.path.join(trained.output_dir, "graph.pbtxt"))
  best = hooks.read_best(trained.output_dir)
  kept = glob.glob(best["checkpoint"] + ".data-*")
  saved = glob.glob(os.path.join(trained.output_dir, f"model.ckpt-{best['step']}.data-*"))
  assert len(kept) == len(saved) == 1
  # A copy of the save (the same bytes), not a second name of it: damage to the rotated
  # checkpoint must not reach the best one.
  assert not os.path.samefile(kept[0], saved[0])
  assert open(kept[0], "rb").read() == open(saved[0], "rb").read()
  # TensorBoard still gets the training graph.
  graphs = [event for path in glob.glob(os.path.join(trained.output_dir, "events.*"))
            for event in tf.train.summary_iterator(path) if event.graph_def]
  assert graphs
