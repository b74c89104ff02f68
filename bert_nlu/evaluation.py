"""In-process evaluation: the dev graph is built once and reads the training session's weights.

The Estimator's own periodic evaluation (`train_and_evaluate`) saves a checkpoint, builds a new
eval graph, creates a session, restores the checkpoint and runs it, every time. Here instead
(the idea of tf.estimator.experimental.InMemoryEvaluatorHook, with one persistent eval session
and support for a restore map such as the moving averages of the weights):

  * `InProcessEvaluator` builds the EVAL graph of the Estimator's model_fn once, in its own
    tf.Graph with its own session; `evaluate(values, step)` loads weight values into it (through
    placeholders), re-initialises the metric state and the dev iterator, and runs the whole set.
  * `InProcessEvaluatorHook` is a training hook that every `every_n_steps` global steps (and at
    the end of training) reads the training session's variables, evaluates, writes the metrics
    to TensorBoard (<model_dir>/eval_<name>/, as Estimator.evaluate does), offers the result to
    the best-model exporter and stops training early when asked to. A checkpoint is written only
    when the selection metric improved (the exporter keeps it and exports from it); the
    Estimator's save interval stays what a killed run resumes from.

Which metrics are computed and which one selects the model are parameters (the task's
eval_metric_ops via model_fn, `selection_metric`), so the evaluator knows no task.
"""

import glob
import os
import resource
import shutil
import time
from typing import Callable, Dict, Optional

import numpy as np

from bert_nlu import hooks
from bert_nlu.compat import tf

# Where the training session's weights are saved when a new best is found, before the exporter
# moves them into best_checkpoint/step-N/.
CANDIDATE_DIR_NAME = ".candidate"
LOSS_METRIC = "loss"


def write_eval_summary(eval_dir: str, result: Dict, step: int) -> None:
  """Writes the scalar metrics of one evaluation as TensorBoard events in `eval_dir`.

  The same tags and step as Estimator.evaluate writes, so TensorBoard and the
  tf.estimator.experimental early-stopping readers see no difference.
  """
  summary = tf.Summary()
  for name, value in sorted(result.items()):
    if name == tf.GraphKeys.GLOBAL_STEP:
      continue
    if isinstance(value, (float, int, np.floating, np.integer)):
      summary.value.add(tag=name, simple_value=float(value))
  writer = tf.summary.FileWriterCache.get(eval_dir)
  writer.add_summary(summary, step)
  writer.flush()


def copy_checkpoint(prefix: str, directory: str) -> Optional[str]:
  """Copies the files of checkpoint `prefix` into the empty `directory`; returns the new prefix,
  or None (and `directory` emptied again) if they cannot be copied.

  A copy, not a hard link: the best checkpoint is kept apart from the rotated ones, so damage to
  a rotated checkpoint's file (e.g. the newest one, truncated) must not reach it.
  """
  copied = []
  try:
    for path in sorted(glob.glob(prefix + ".*")):
      target = os.path.join(directory, os.path.basename(path))
      shutil.copyfile(path, target)
      copied.append(target)
  except OSError as e:
    tf.logging.info("Cannot copy %s (%s); saving the checkpoint again", prefix, e)
    for path in copied:
      os.remove(path)
    return None
  return os.path.join(directory, os.path.basename(prefix))


class InProcessEvaluator:
  """The EVAL graph of an Estimator's model_fn, built once, evaluated with given weights.

  Args:
    estimator: the Estimator whose model_fn (and config: session config) is evaluated.
    input_fn: the evaluation input_fn (a finite tf.data.Dataset of feature dicts).
    restore_map_fn: called inside the eval graph after model_fn; returns {source name: eval
      variable}: which training variable (by name, as in a checkpoint) each eval variable is
      loaded from (e.g. `optimization.eval_restore_map`: the moving averages under weight
      averaging). Every eval global variable must be covered.
    steps: batches per evaluation (None = the whole set).
    batches_per_pass: the number of batches of the whole set. With it (and steps None) the dev
      pipeline is started once and repeats from an in-memory cache of its batches: each
      evaluation reads exactly one pass, and nothing is re-initialised but the metric state.
      (Re-initialising the iterator of an exhausted pipeline that has sat idle in a training
      process stalled for up to 40 s with the CPU idle; see README "End to end".) Without it the
      iterator is re-initialised for every evaluation and read to its end.
  """

  def __init__(self, estimator: tf.estimator.Estimator, input_fn: Callable,
               restore_map_fn: Callable[[], Dict[str, tf.Variable]],
               steps: Optional[int] = None, batches_per_pass: Optional[int] = None):
    self._repeating = bool(batches_per_pass) and steps is None
    self._steps = batches_per_pass if self._repeating else steps
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf.set_random_seed(estimator.config.tf_random_seed)
      global_step = tf.train.get_or_create_global_step()
      dataset = input_fn()
      if self._repeating:
        dataset = dataset.cache().repeat()
      self._iterator = tf.data.make_initializable_iterator(dataset)
      features = self._iterator.get_next()
      spec = estimator.model_fn(features, None, tf.estimator.ModeKeys.EVAL, estimator.config)
      metric_ops = dict(spec.eval_metric_ops)
      metric_ops[LOSS_METRIC] = tf.metrics.mean(spec.loss)
      self._value_ops = {name: value for name, (value, _) in metric_ops.items()}
      self._value_ops[tf.GraphKeys.GLOBAL_STEP] = global_step
      # Sorted as Estimator does: the same graph, and the same update order, every time.
      self._update_op = tf.group(*[update for _, (_, update) in sorted(metric_ops.items())])
      restore_map = restore_map_fn()
      missing = set(tf.global_variables()) - set(restore_map.values())
      if missing:
        raise ValueError("no source for eval variables "
                         f"{sorted(v.op.name for v in missing)} in the restore map")
      self.source_names = sorted(restore_map)
      placeholders = {name: tf.placeholder(restore_map[name].dtype.base_dtype,
                                           shape=restore_map[name].shape)
                      for name in self.source_names}
      self._placeholders = placeholders
      self._load_op = tf.group(*[restore_map[name].assign(placeholders[name])
                                 for name in self.source_names])
      self._reset_op = tf.local_variables_initializer()
      if not self._repeating:
        self._reset_op = tf.group(self._reset_op, self._iterator.initializer)
      self.graph.finalize()
    self._session = tf.Session(graph=self.graph, config=estimator.config.session_config)
    if self._repeating:
      self._session.run(self._iterator.initializer)
    self.last_seconds: Dict[str, float] = {}  # the last evaluate()'s parts (see evaluate)

  def evaluate(self, values: Dict[str, np.ndarray]) -> Dict:
    """Evaluates with the weights `values` ({source name: value}); returns the metrics dict.

    The dict has the model's metric names, "loss" and "global_step" (as Estimator.evaluate).
    `last_seconds` gets the wall seconds of its parts: assigning the weights, resetting the
    metric state and the dev iterator, running the batches (metric updates), computing the
    whole-set metric values.
    """
    start = time.perf_counter()
    self._session.run(self._load_op, feed_dict={self._placeholders[name]: values[name]
                                                for name in self.source_names})
    assigned = time.perf_counter()
    self._session.run(self._reset_op)
    loaded = time.perf_counter()
    batches = 0
    while self._steps is None or batches < self._steps:
      try:
        self._session.run(self._update_op)
      except tf.errors.OutOfRangeError:
        break
      batches += 1
    ran = time.perf_counter()
    result = self._session.run(self._value_ops)
    self.last_seconds = {"assign_weights": assigned - start, "reset_state": loaded - assigned,
                         "run_batches": ran - loaded, "metric_values": time.perf_counter() - ran}
    return result

  def close(self) -> None:
    self._session.close()


def usage_during(before: resource.struct_rusage) -> Dict[str, float]:
  """What this process used since `before` (a getrusage(RUSAGE_SELF)): CPU seconds of all its
  threads (user + system) and major page faults (pages read from disk). Beside a part's wall
  time they tell a stall's kind: CPU time far below the wall time with no major faults is waiting
  (for the CPU or a lock), many major faults is paging in from disk."""
  after = resource.getrusage(resource.RUSAGE_SELF)
  return {"cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
          "major_page_faults": after.ru_majflt - before.ru_majflt}


class InProcessEvaluatorHook(tf.estimator.SessionRunHook):
  """Evaluates the training session's weights every N steps and at the end (module docstring).

  Args:
    estimator: the Estimator being trained (model_dir, model_fn, config).
    input_fn: the dev input_fn.
    restore_map_fn: see `InProcessEvaluator`.
    every_n_steps: evaluate when the global step is a multiple of this.
    exporter: `hooks.BestModelExporter` deciding on improvements (and keeping/exporting).
    early_stopping_evals: request a stop once the best is this many evaluations (of
      every_n_steps each) old; 0 = never.
    steps: dev batches per evaluation (None = all).
    batches_per_pass: the dev set's number of batches (see `InProcessEvaluator`).
    name: evaluation name; TensorBoard events go to <model_dir>/eval_<name>/.
    saved_checkpoint_at: step -> prefix of a checkpoint this training session saved at that
      step, or None (`hooks.SavedCheckpointsListener.checkpoint_at`); a new best at such a step
      copies those files instead of saving the same values again from the session.
  """

  def __init__(self, estimator: tf.estimator.Estimator, input_fn: Callable,
               restore_map_fn: Callable[[], Dict[str, tf.Variable]], every_n_steps: int,
               exporter: hooks.BestModelExporter, early_stopping_evals: int = 0,
               steps: Optional[int] = None, name: str = "dev",
               saved_checkpoint_at: Optional[Callable[[int], Optional[str]]] = None,
               batches_per_pass: Optional[int] = None):
    self._estimator = estimator
    self._batches_per_pass = batches_per_pass
    self._input_fn = input_fn
    self._restore_map_fn = restore_map_fn
    self._every_n_steps = every_n_steps
    self._exporter = exporter
    self._early_stopping_evals = early_stopping_evals
    self._steps = steps
    self._saved_checkpoint_at = saved_checkpoint_at
    self._eval_dir = estimator.eval_dir(name)
    self._export_path = os.path.join(estimator.model_dir, "export", exporter.name)
    self._candidate_dir = os.path.join(estimator.model_dir, hooks.BEST_DIR_NAME,
                                       CANDIDATE_DIR_NAME)
    self.evaluator: Optional[InProcessEvaluator] = None
    # Every evaluation of this session: {"step", "seconds", "fetch_weights" (from the training
    # session), InProcessEvaluator.last_seconds and `usage_during` the evaluation}: where an
    # evaluation's time goes.
    self.evaluations = []
    self.build_seconds = 0.0  # building the eval graph and its session, once
    self.export_seconds = 0.0  # saving, keeping and exporting new bests

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._train_variables = {v.op.name: v for v in tf.global_variables()}
    self._sources = None
    self._last_evaluated_step = None
    shutil.rmtree(self._candidate_dir, ignore_errors=True)  # left by a killed run

  def _source_variables(self):
    """The training variables the eval graph loads, in its order; the eval graph is built at the
    first evaluation (none for a run stopped before it: start-up does not wait for it)."""
    if self.evaluator is None:
      start = time.perf_counter()
      self.evaluator = InProcessEvaluator(self._estimator, self._input_fn, self._restore_map_fn,
                                          self._steps, self._batches_per_pass)
      self.build_seconds = time.perf_counter() - start
    if self._sources is None:
      unknown = [name for name in self.evaluator.source_names
                 if name not in self._train_variables]
      if unknown:
        raise ValueError(f"training graph has no variables {unknown} to evaluate from")
      self._sources = [self._train_variables[name] for name in self.evaluator.source_names]
    return self._sources

  def before_run(self, run_context):
    return tf.estimator.SessionRunArgs(self._global_step)

  def after_run(self, run_context, run_values):
    # The fetched step is read before this step's update (as CheckpointSaverHook reasons).
    if (int(run_values.results) + 1) % self._every_n_steps:
      return
    step = int(run_context.session.run(self._global_step))
    if step % self._every_n_steps == 0:
      self._evaluate(run_context.session, step)
      if self._should_stop_early(step):
        tf.logging.info("Early stopping at step %d: dev %s has not improved for %d evaluations",
                        step, self._exporter.metric_name, self._early_stopping_evals)
        run_context.request_stop()

  def end(self, session):
    step = int(session.run(self._global_step))
    if step != self._last_evaluated_step and step > 0:
      self._evaluate(session, step)
    if self.evaluator is not None:
      self.evaluator.close()
      self.evaluator = None

  def _evaluate(self, session, step: int) -> Dict:
    sources = self._source_variables()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    values = dict(zip(self.evaluator.source_names, session.run(sources)))
    fetched = time.perf_counter()
    result = self.evaluator.evaluate(values)
    self.evaluations.append({"step": step, "seconds": time.perf_counter() - start,
                             "fetch_weights": fetched - start, **self.evaluator.last_seconds,
                             **usage_during(usage_before)})
    tf.logging.info("In-process evaluation at step %d (%.2fs): %s", step,
                    self.evaluations[-1]["seconds"],
                    ", ".join(f"{k} = {v:.4f}" for k, v in sorted(result.items())
                              if k != tf.GraphKeys.GLOBAL_STEP))
    write_eval_summary(self._eval_dir, result, step)
    self._last_evaluated_step = step
    start = time.perf_counter()
    checkpoint = None
    if self._exporter.is_improvement(result):
      checkpoint = self._save_candidate(session, step)
    self._exporter.export(self._estimator, self._export_path, checkpoint, result, False,
                          move_checkpoint=True)
    self.export_seconds += time.perf_counter() - start
    return result

  def _save_candidate(self, session, step: int) -> str:
    """Puts the training session's variables (all of them, as the Estimator's checkpoints do)
    outside the checkpoint rotation; returns the checkpoint prefix. When this session's saver
    has just written the same step (by default evaluations fall on save steps), its files are
    copied rather than saved again from the session."""
    shutil.rmtree(self._candidate_dir, ignore_errors=True)
    os.makedirs(self._candidate_dir)
    saved = self._saved_checkpoint_at(step) if self._saved_checkpoint_at else None
    if saved is not None:
      copied = copy_checkpoint(saved, self._candidate_dir)
      if copied is not None:
        return copied
    saver = tf.get_collection(tf.GraphKeys.SAVERS)[0]
    return saver.save(session, os.path.join(self._candidate_dir, "model.ckpt"), global_step=step,
                      write_meta_graph=False, write_state=False)

  def _should_stop_early(self, step: int) -> bool:
    if not self._early_stopping_evals:
      return False
    best = hooks.read_best(self._estimator.model_dir)
    return best is not None and step - best["step"] >= (
        self._early_stopping_evals * self._every_n_steps)
