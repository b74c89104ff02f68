"""Training hooks and the best-checkpoint exporter."""

import glob
import os
import shutil
import time
from typing import Callable, Dict, Optional

import numpy as np

from bert_nlu import io_utils
from bert_nlu.compat import tf

BEST_DIR_NAME = "best_checkpoint"
BEST_METRICS_FILE = "best_metrics.json"


class ExamplesPerSecondHook(tf.estimator.SessionRunHook):
  """Logs training examples/sec to TensorBoard and keeps the run's training-step totals.

  `train_seconds` counts only time spent in training session.run calls (not evaluation, not
  checkpointing), so `examples_per_second()` is the trainer's own throughput.
  """

  def __init__(self, batch_size: int, every_n_steps: int, output_dir: str):
    self._batch_size = batch_size
    self._every_n_steps = max(1, every_n_steps)
    self._output_dir = output_dir
    self.train_seconds = 0.0
    self.train_steps = 0

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._writer = tf.summary.FileWriterCache.get(self._output_dir)
    self._window_seconds = 0.0
    self._window_steps = 0

  def before_run(self, run_context):
    self._start = time.perf_counter()
    return tf.estimator.SessionRunArgs(self._global_step)

  def after_run(self, run_context, run_values):
    elapsed = time.perf_counter() - self._start
    self.train_seconds += elapsed
    self.train_steps += 1
    self._window_seconds += elapsed
    self._window_steps += 1
    if self._window_steps >= self._every_n_steps:
      rate = self._window_steps * self._batch_size / max(self._window_seconds, 1e-9)
      summary = tf.Summary(value=[tf.Summary.Value(tag="examples_per_sec", simple_value=rate)])
      self._writer.add_summary(summary, int(run_values.results))
      self._window_seconds, self._window_steps = 0.0, 0

  def examples_per_second(self) -> float:
    return self.train_steps * self._batch_size / self.train_seconds if self.train_seconds else 0.0


def _json_number(value):
  return value.item() if isinstance(value, np.generic) else value


def read_best(output_dir: str) -> Optional[Dict]:
  """The best-checkpoint record of a run ({"checkpoint", "step", "metric", "value", ...}) or None."""
  path = os.path.join(output_dir, BEST_DIR_NAME, BEST_METRICS_FILE)
  if not os.path.exists(path):
    return None
  record = io_utils.read_json(path)
  if not glob.glob(record["checkpoint"] + ".index"):
    return None
  return record


class BestModelExporter(tf.estimator.Exporter):
  """After each evaluation: if the metric improved, export a SavedModel and keep the checkpoint.

  The kept checkpoint lives in <output_dir>/best_checkpoint/step-N/ and is named by
  best_checkpoint/best_metrics.json, which is written (atomically) only after the copy is complete;
  older kept copies are removed afterwards. Estimator's own checkpoint rotation never touches it.
  The best value survives restarts (read back from best_metrics.json).
  """

  def __init__(self, output_dir: str, metric_name: str,
               serving_input_receiver_fn: Callable, assets_extra: Dict[str, str],
               exports_to_keep: int = 2):
    self._output_dir = output_dir
    self._metric_name = metric_name
    self._serving_input_receiver_fn = serving_input_receiver_fn
    self._assets_extra = assets_extra
    self._exports_to_keep = exports_to_keep

  @property
  def name(self) -> str:
    return "best"

  def _best_value(self) -> Optional[float]:
    record = read_best(self._output_dir)
    return None if record is None else record["value"]

  def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
    value = float(eval_result[self._metric_name])
    best = self._best_value()
    if best is not None and value <= best:
      return None
    tf.logging.info("New best %s=%.4f (was %s) at %s", self._metric_name, value, best,
                    checkpoint_path)
    export_dir = estimator.export_saved_model(
        export_path, self._serving_input_receiver_fn, assets_extra=self._assets_extra,
        checkpoint_path=checkpoint_path)
    self._keep_checkpoint(checkpoint_path, eval_result, value, export_dir)
    self._remove_old_exports(export_path)
    return export_dir

  def _keep_checkpoint(self, checkpoint_path, eval_result, value, export_dir) -> None:
    step = int(eval_result[tf.GraphKeys.GLOBAL_STEP])
    best_root = os.path.join(self._output_dir, BEST_DIR_NAME)
    target = os.path.join(best_root, f"step-{step}")
    staging = os.path.join(best_root, f".step-{step}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for path in glob.glob(checkpoint_path + ".*"):
      shutil.copy2(path, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    io_utils.atomic_write_json(os.path.join(best_root, BEST_METRICS_FILE), {
        "metric": self._metric_name,
        "value": value,
        "step": step,
        "checkpoint": os.path.join(target, os.path.basename(checkpoint_path)),
        "saved_model": export_dir.decode() if isinstance(export_dir, bytes) else export_dir,
        "eval_result": {k: _json_number(v) for k, v in eval_result.items()},
    })
    for old in glob.glob(os.path.join(best_root, "step-*")):
      if old != target:
        shutil.rmtree(old, ignore_errors=True)

  def _remove_old_exports(self, export_path: str) -> None:
    exports = sorted(p for p in glob.glob(os.path.join(export_path, "*"))
                     if os.path.basename(p).isdigit())
    record = read_best(self._output_dir)
    keep = {record["saved_model"]} if record else set()
    for path in exports[:-self._exports_to_keep]:
      if path not in keep:
        shutil.rmtree(path, ignore_errors=True)


def latest_export(output_dir: str) -> str:
  """Directory of the newest best SavedModel of a run (raises FileNotFoundError if none)."""
  record = read_best(output_dir)
  if record and os.path.isdir(record.get("saved_model", "")):
    return record["saved_model"]
  exports = sorted(p for p in glob.glob(os.path.join(output_dir, "export", "best", "*"))
                   if os.path.basename(p).isdigit())
  if not exports:
    raise FileNotFoundError(f"{output_dir}: no exported SavedModel (export/best/<timestamp>)")
  return exports[-1]
