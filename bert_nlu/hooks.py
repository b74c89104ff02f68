"""Training hooks and the best-checkpoint exporter."""

import glob
import os
import shutil
import sys
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from bert_nlu import io_utils
from bert_nlu.compat import tf

BEST_DIR_NAME = "best_checkpoint"
# Asset of an export holding eval_result values its predictor needs (e.g. intent_threshold).
EXPORTED_METRICS_FILE = "exported_metrics.json"
BEST_METRICS_FILE = "best_metrics.json"
EVALUATED_STEPS_FILE = "evaluated_steps.json"


class ExamplesPerSecondHook(tf.estimator.SessionRunHook):
  """Logs training examples/sec to TensorBoard and keeps the run's training-step totals.

  `train_seconds` counts only time spent in training session.run calls (not evaluation, not
  checkpointing), so `examples_per_second()` is the trainer's own throughput.
  `session_ready_time` and `first_step_end_time` (time.time(), None until then) mark the start-up:
  the training session created (variables initialised or restored) and its first step done.
  """

  def __init__(self, batch_size: int, every_n_steps: int, output_dir: str):
    self._batch_size = batch_size
    self._every_n_steps = max(1, every_n_steps)
    self._output_dir = output_dir
    self.train_seconds = 0.0
    self.train_steps = 0
    self.session_ready_time: Optional[float] = None
    self.first_step_end_time: Optional[float] = None

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._writer = tf.summary.FileWriterCache.get(self._output_dir)
    self._window_seconds = 0.0
    self._window_steps = 0

  def after_create_session(self, session, coord):  # pylint: disable=unused-argument
    self.session_ready_time = time.time()

  def before_run(self, run_context):
    self._start = time.perf_counter()
    return tf.estimator.SessionRunArgs(self._global_step)

  def after_run(self, run_context, run_values):
    elapsed = time.perf_counter() - self._start
    if self.first_step_end_time is None:
      self.first_step_end_time = time.time()
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


def _clock(seconds: Optional[float]) -> str:
  """Seconds as H:MM:SS ("-" for None)."""
  if seconds is None:
    return "-"
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# Short names of selection metrics in the progress line (others appear as they are named).
PROGRESS_METRIC_NAMES = {"whole_frame_accuracy": "frame"}


def format_progress_line(step: int, total_steps: int, steps_per_epoch: float,
                         examples_per_second: float, elapsed_seconds: float,
                         eta_seconds: Optional[float], loss: float,
                         dev_values: Optional[Dict[int, float]] = None,
                         dev_metric: str = "whole_frame_accuracy") -> str:
  """One line of training progress.

  Example: "step 120/1000 (12.0%) | epoch 1.28 | 45.2 ex/s | elapsed 0:02:13 | ETA 0:16:05 |
  loss 0.4321 | dev frame last 88.00% (step 100) best 90.00% (step 80)". `dev_values`:
  {step: dev value of `dev_metric`, the run's selection metric ("frame" = whole_frame_accuracy)};
  dev "-" before the first evaluation. Each dev value names its step, since the evaluation of
  the line's own step (e.g. the last one) may not have run yet.
  """
  def dev_at(dev_step):
    return f"{100.0 * dev_values[dev_step]:.2f}% (step {dev_step})"
  if dev_values:
    newest = max(dev_values)
    best = max(dev_values, key=lambda s: (dev_values[s], -s))  # the first step to reach the best
    dev = f"last {dev_at(newest)} best {dev_at(best)}"
  else:
    dev = "last - best -"
  return (f"step {step}/{total_steps} ({100.0 * step / max(total_steps, 1):.1f}%) | "
          f"epoch {step / max(steps_per_epoch, 1e-9):.2f} | {examples_per_second:.1f} ex/s | "
          f"elapsed {_clock(elapsed_seconds)} | ETA {_clock(eta_seconds)} | loss {loss:.4f} | "
          f"dev {PROGRESS_METRIC_NAMES.get(dev_metric, dev_metric)} {dev}")


def _print_to_stderr(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


class ProgressHook(tf.estimator.SessionRunHook):
  """Emits one `format_progress_line` every `every_n_steps` training steps (and at the last).

  Examples/s are over the interval's wall time (evaluations included, as the ETA must); the ETA
  is the remaining steps at this session's average wall time per step. Dev values come from
  `read_dev_values()` ({step: dev value of `dev_metric`}, e.g. BestModelExporter.evaluated_steps).
  """

  def __init__(self, total_steps: int, steps_per_epoch: float, batch_size: int,
               every_n_steps: int, loss_collection: str,
               read_dev_values: Callable[[], Dict[int, float]],
               emit: Callable[[str], None] = _print_to_stderr,
               dev_metric: str = "whole_frame_accuracy"):
    self._total_steps = total_steps
    self._steps_per_epoch = steps_per_epoch
    self._batch_size = batch_size
    self._every_n_steps = max(1, every_n_steps)
    self._loss_collection = loss_collection
    self._read_dev_values = read_dev_values
    self._emit = emit
    self._dev_metric = dev_metric

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._loss = tf.get_collection(self._loss_collection)[-1]

  def after_create_session(self, session, coord):  # pylint: disable=unused-argument
    self._start_step = int(session.run(self._global_step))
    self._steps = 0
    self._start = self._window_start = time.time()
    self._window_steps = 0

  def before_run(self, run_context):
    return tf.estimator.SessionRunArgs(self._loss)

  def after_run(self, run_context, run_values):
    self._steps += 1
    self._window_steps += 1
    step = self._start_step + self._steps
    if self._window_steps < self._every_n_steps and step < self._total_steps:
      return
    now = time.time()
    elapsed = now - self._start
    dev = self._read_dev_values()
    self._emit(format_progress_line(
        step, self._total_steps, self._steps_per_epoch,
        self._window_steps * self._batch_size / max(now - self._window_start, 1e-9), elapsed,
        max(0, self._total_steps - step) * elapsed / self._steps, float(run_values.results),
        dev, self._dev_metric))
    self._window_start, self._window_steps = now, 0


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
  The best value survives restarts (read back from best_metrics.json). `exported_metrics` (e.g.
  the dev-chosen intent_threshold) are written from the evaluation into the export's
  assets.extra/exported_metrics.json, so the export predicts as that evaluation did.
  """

  def __init__(self, output_dir: str, metric_name: str,
               serving_input_receiver_fn: Callable, assets_extra: Dict[str, str],
               exports_to_keep: int = 2, exported_metrics: Sequence[str] = ()):
    self._output_dir = output_dir
    self._metric_name = metric_name
    self._serving_input_receiver_fn = serving_input_receiver_fn
    self._assets_extra = assets_extra
    self._exports_to_keep = exports_to_keep
    self._exported_metrics = tuple(exported_metrics)

  @property
  def name(self) -> str:
    return "best"

  @property
  def metric_name(self) -> str:
    return self._metric_name

  def _best_value(self) -> Optional[float]:
    record = read_best(self._output_dir)
    return None if record is None else record["value"]

  def evaluated_steps(self) -> Dict[int, float]:
    """{global step: metric value} of every evaluation this exporter has decided on."""
    path = os.path.join(self._output_dir, BEST_DIR_NAME, EVALUATED_STEPS_FILE)
    if not os.path.exists(path):
      return {}
    return {int(step): value for step, value in io_utils.read_json(path).items()}

  def _record_evaluated(self, step: int, value: float) -> None:
    evaluated = self.evaluated_steps()
    evaluated[step] = value
    io_utils.atomic_write_json(os.path.join(self._output_dir, BEST_DIR_NAME, EVALUATED_STEPS_FILE),
                               {str(k): v for k, v in sorted(evaluated.items())})

  def is_improvement(self, eval_result: Dict) -> bool:
    """Whether `eval_result` beats the best so far (ties keep the earlier best)."""
    best = self._best_value()
    return best is None or float(eval_result[self._metric_name]) > best

  def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export,
             move_checkpoint: bool = False):
    """Exports and keeps `checkpoint_path` if `eval_result` is an improvement; returns the export
    directory or None. `move_checkpoint`: the checkpoint's files are this exporter's to move
    (a private copy, see evaluation.py) instead of copying them out of the rotation."""
    del is_the_final_export  # every evaluation is offered the same way
    value = float(eval_result[self._metric_name])
    step = int(eval_result[tf.GraphKeys.GLOBAL_STEP])
    best = self._best_value()
    if not self.is_improvement(eval_result):
      self._record_evaluated(step, value)
      return None
    if not tf.io.gfile.exists(checkpoint_path + ".index"):
      # A separate evaluator (multi-worker cluster) slower than training: the chief's checkpoint
      # rotation removed this checkpoint while it was being evaluated.
      tf.logging.warning("%s scored a new best %s=%.4f but was deleted by checkpoint rotation "
                         "before it could be kept; raise --keep_checkpoint_max", checkpoint_path,
                         self._metric_name, value)
      return None
    tf.logging.info("New best %s=%.4f (was %s) at %s", self._metric_name, value, best,
                    checkpoint_path)
    export_dir = estimator.export_saved_model(
        export_path, self._serving_input_receiver_fn, assets_extra=self._assets(eval_result),
        checkpoint_path=checkpoint_path)
    io_utils.fault_point("after_export")
    self._keep_checkpoint(checkpoint_path, eval_result, value, export_dir, move_checkpoint)
    self._record_evaluated(step, value)  # last: a kill before this re-evaluates the checkpoint
    self._remove_old_exports(export_path)
    return export_dir

  def _assets(self, eval_result) -> Dict[str, str]:
    """The export's assets: the fixed ones plus this evaluation's exported metrics (if any)."""
    if not self._exported_metrics:
      return self._assets_extra
    path = os.path.join(self._output_dir, EXPORTED_METRICS_FILE)
    io_utils.atomic_write_json(path, {name: _json_number(eval_result[name])
                                      for name in self._exported_metrics})
    return dict(self._assets_extra, **{EXPORTED_METRICS_FILE: path})

  def _keep_checkpoint(self, checkpoint_path, eval_result, value, export_dir,
                       move_checkpoint: bool) -> None:
    step = int(eval_result[tf.GraphKeys.GLOBAL_STEP])
    best_root = os.path.join(self._output_dir, BEST_DIR_NAME)
    target = os.path.join(best_root, f"step-{step}")
    staging = os.path.join(best_root, f".step-{step}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for path in glob.glob(checkpoint_path + ".*"):
      if move_checkpoint:
        os.replace(path, os.path.join(staging, os.path.basename(path)))
      else:
        shutil.copy2(path, staging)
      io_utils.fault_point("best_checkpoint_copy")
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


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN/Inf loss or gradient; no checkpoint of that state was written."""

  def __init__(self, step: int, loss: float, gradient_norm: float, last_checkpoint: Optional[str]):
    self.step = step
    self.last_checkpoint = last_checkpoint
    super().__init__(
        f"non-finite training value at step {step} (loss={loss}, gradient norm={gradient_norm}); "
        f"training stopped before any checkpoint of this state was saved. Last good checkpoint: "
        f"{last_checkpoint or 'none'}. Lower --learning_rate or check the data, then rerun to "
        "resume from it.")


class NonFiniteGuardHook(tf.estimator.SessionRunHook):
  """Stops training at the first step whose loss or global gradient norm is NaN/Inf.

  Must run before the checkpoint saver: train.py lists its own CheckpointSaverHook after this
  one among the TrainSpec hooks (the Estimator's default saver would be a chief hook, which runs
  first), so the state after a non-finite update is never checkpointed and the last checkpoint
  stays the last good one.
  Under dynamic loss scaling (fp16) non-finite GRADIENTS with a finite loss are an overflow the
  train op has already skipped: they are logged and counted (`skipped_steps`), not fatal.
  """

  def __init__(self, model_dir: str, loss_collection: str, gradient_norm_collection: str,
               loss_scale_collection: Optional[str] = None):
    self._model_dir = model_dir
    self._loss_collection = loss_collection
    self._gradient_norm_collection = gradient_norm_collection
    self._loss_scale_collection = loss_scale_collection
    self.skipped_steps: Optional[int] = None  # over the whole run (checkpointed), fp16 only

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._fetches = {
        "loss": tf.get_collection(self._loss_collection)[-1],
        "gradient_norm": tf.get_collection(self._gradient_norm_collection)[-1],
    }
    if self._loss_scale_collection:
      # The scale this step used, and the skipped steps counted with this one.
      scale_used, skipped_after = tf.get_collection(self._loss_scale_collection)[-2:]
      self._fetches["loss_scale"] = scale_used
      self._fetches["skipped_steps"] = skipped_after

  def before_run(self, run_context):
    return tf.estimator.SessionRunArgs(self._fetches)

  def after_run(self, run_context, run_values):
    values = run_values.results
    if self._loss_scale_collection:
      self.skipped_steps = int(values["skipped_steps"])
      if np.isfinite(values["loss"]) and not np.isfinite(values["gradient_norm"]):
        step = int(run_context.session.run(self._global_step))
        tf.logging.warning(
            "step %d: gradients overflowed at loss scale %g; update skipped, scale halved "
            "(%d steps skipped so far)", step, values["loss_scale"], self.skipped_steps)
        return
    if not (np.isfinite(values["loss"]) and np.isfinite(values["gradient_norm"])):
      # Read after the run: the number of steps done, the last of which was the bad one.
      step = int(run_context.session.run(self._global_step))
      raise NonFiniteLossError(step, float(values["loss"]),
                               float(values["gradient_norm"]),
                               tf.train.latest_checkpoint(self._model_dir))


class PeriodicCheckpointSaverHook(tf.estimator.CheckpointSaverHook):
  """The Estimator's CheckpointSaverHook without its work before the first step.

  Once the session exists, the base class writes graph.pbtxt (the training graph as text: ~5 MB
  and seconds of CPU for MiniLM) and saves the state training starts from: step 0 of a fresh run
  (the initial weights, which a rerun rebuilds identically from the init checkpoint and the seed)
  or, resuming, the checkpoint just restored (the same values again). A killed run needs neither:
  it resumes from its newest periodic checkpoint, or starts over from the same initial state.
  Here the graph goes to TensorBoard (the events file, as the base class also writes it) and the
  first save is the first periodic one; the saves every save_steps and at the end, each with its
  .meta, are the base class's.

  It also reads the global step only when a save is due (the base class, built for TPU loops of
  many steps per session.run, runs the session for it after every step).

  Not for Estimator train_and_evaluate: its evaluation listener skips the first save it sees,
  assuming it is the one before the first step.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._set_steps_per_run(1)  # one training step per session.run

  def after_create_session(self, session, coord):  # pylint: disable=unused-argument
    self._summary_writer.add_graph(tf.get_default_graph())
    self._timer.update_last_triggered_step(int(session.run(self._global_step_tensor)))


class SavedCheckpointsListener(tf.estimator.CheckpointSaverListener):
  """Records the checkpoints a CheckpointSaverHook writes in this session.

  `checkpoint_at(step)` is the prefix of this session's save of global step `step`, or None: the
  training session's state at that step is already on disk there (the in-process evaluator links
  it as a new best's checkpoint instead of saving the same values again).
  """

  def __init__(self, model_dir: str):
    self._model_dir = model_dir
    self._saved: Dict[int, str] = {}

  def after_save(self, session, global_step_value):  # pylint: disable=unused-argument
    latest = tf.train.latest_checkpoint(self._model_dir)
    if latest and latest.endswith(f"-{int(global_step_value)}"):
      self._saved[int(global_step_value)] = latest

  def checkpoint_at(self, step: int) -> Optional[str]:
    prefix = self._saved.get(step)
    return prefix if prefix and os.path.exists(prefix + ".index") else None


class TrainingInterrupted(Exception):
  """Training was stopped by a signal after saving a checkpoint."""

  def __init__(self, signal_name: str, step: int, checkpoint: str):
    self.signal_name = signal_name
    self.step = step
    self.checkpoint = checkpoint
    super().__init__(f"{signal_name}: training stopped at step {step}; checkpoint saved to "
                     f"{checkpoint}. Rerun the same command to resume.")


class StopRequest:
  """Set by a signal handler; read by GracefulStopHook."""

  def __init__(self):
    self.signal_name: Optional[str] = None


class GracefulStopHook(tf.estimator.SessionRunHook):
  """On a stop request: save a checkpoint of the current step with the Estimator's own saver,
  then raise TrainingInterrupted (skipping the end-of-training evaluation)."""

  def __init__(self, stop_request: StopRequest, model_dir: str):
    self._stop_request = stop_request
    self._checkpoint_prefix = os.path.join(model_dir, "model.ckpt")

  def begin(self):
    self._global_step = tf.train.get_global_step()

  def after_run(self, run_context, run_values):
    if self._stop_request.signal_name is None:
      return
    session = run_context.session
    step = int(session.run(self._global_step))
    saver = tf.get_collection(tf.GraphKeys.SAVERS)[0]
    checkpoint = saver.save(session, self._checkpoint_prefix, global_step=step)
    raise TrainingInterrupted(self._stop_request.signal_name, step, checkpoint)
