"""Step profiling from inside an Estimator: tfprof dumps, chrome traces, TensorBoard traces.

`build_profile_hooks` is called by `bert_nlu.model.model_fn` in TRAIN mode (a hook that writes
summaries must be created inside model_fn, in the training graph). For every traced step N the
hook writes, into `profile_dir`:

  profile_N        a tfprof ProfileProto (`tf.compat.v1.profiler.Profiler.serialize_to_string`)
                   holding the graph, the Python code traces of its ops and the run statistics of
                   ALL traced steps so far (first..N, each under its own step number). Read it with
                   `python -m profiling.tfprof --profile_path=.../profile_N` (`-step N` selects one
                   step; the default `-step -1` averages the traced steps).
  timeline-N.json  the chrome://tracing (Perfetto) trace of step N alone.

With tensorboard_trace, a TensorBoard profile-plugin trace (`plugins/profile/<run>/`, open with
`tensorboard --logdir=<profile_dir>`, Profile tab) covers as many steps as the window, right AFTER
it: last + 1 .. 2 * last - first + 1. It cannot cover the same steps: TF runs one profiler
session per process, and a FULL_TRACE session.run while `tf.profiler.experimental` traces fails
("Another profiling session active"). For the same reason the hook skips (with a warning) any
FULL_TRACE step while someone else's profiler session is active, and a failing TensorBoard trace
is logged, never raised.

Step numbering: "step N" is the session.run that executes with the global step variable equal to
N before the run, i.e. the run that moves the global step from N to N + 1. The first training step
of a fresh run is step 0, so `steps=(3, 4)` traces the 4th and 5th training steps (of a resumed
run, the ones that start at global step 3 and 4). This is the "step" the Estimator logs with that
run's loss, and the checkpoint written after the run is model.ckpt-(N + 1).

Outside its windows the hook requests nothing (no fetches, no run options): it costs one integer
comparison per step. Tracing only observes the run: results are unchanged.
"""

import os
from typing import List, Optional

from absl import logging

# bert_nlu.compat first: it quiets TensorFlow before TensorFlow is imported.
from bert_nlu.compat import tf
from bert_nlu.io_utils import atomic_path
from profiling import tfprof

# tf.profiler.experimental (the TensorBoard trace) is TF2 API; compat.v1 lacks it.
import tensorflow as tf2  # pylint: disable=g-bad-import-order
# pylint: disable-next=g-direct-tensorflow-import
from tensorflow.python.client import timeline as tf_timeline

PROFILE_PREFIX = "profile_"
TIMELINE_PREFIX = "timeline-"


def profile_path(profile_dir: str, step: int) -> str:
  """Path of the tfprof dump written after step `step`."""
  return os.path.join(profile_dir, f"{PROFILE_PREFIX}{step}")


def timeline_path(profile_dir: str, step: int) -> str:
  """Path of the chrome trace of step `step`."""
  return os.path.join(profile_dir, f"{TIMELINE_PREFIX}{step}.json")


def _write_bytes_atomically(path: str, data: bytes) -> None:
  with atomic_path(path) as tmp_path:
    with open(tmp_path, "wb") as f:
      f.write(data)


def chrome_trace(run_metadata: tf.RunMetadata) -> str:
  """The chrome-trace JSON (chrome://tracing, Perfetto) of one traced session.run."""
  return tf_timeline.Timeline(run_metadata.step_stats).generate_chrome_trace_format()


def _other_profiler_session_active() -> bool:
  """Whether a `tf.profiler.experimental` session is running (FULL_TRACE would then fail)."""
  from tensorflow.python.profiler import profiler_v2  # pylint: disable=g-import-not-at-top
  return getattr(profiler_v2, "_profiler", None) is not None


class StepProfilerHook(tf.estimator.SessionRunHook):
  """Traces global steps first_step..last_step (inclusive) with FULL_TRACE; see module docstring.

  The step being executed is not fetched: it is read once when the session is created and then
  counted (every training session.run advances the global step by exactly one). Inside the window
  the counter is checked against the global step after each traced run.
  """

  def __init__(self, profile_dir: str, first_step: int, last_step: int,
               tensorboard_trace: bool = False):
    """Args:
      profile_dir: output directory (created when the first step is traced).
      first_step, last_step: inclusive window of global steps (0 <= first_step <= last_step).
      tensorboard_trace: also capture a TensorBoard trace of as many steps, after the window.
    """
    if not 0 <= first_step <= last_step:
      raise ValueError(f"profile steps must satisfy 0 <= first <= last, got {first_step}:"
                       f"{last_step}")
    self._profile_dir = profile_dir
    self._first_step = first_step
    self._last_step = last_step
    self._tensorboard_first_step = last_step + 1
    self._tensorboard_last_step = 2 * last_step - first_step + 1
    self._tensorboard_trace = tensorboard_trace
    self._tensorboard_running = False
    self._profiler = None  # tf.compat.v1.profiler.Profiler, built at the first traced step
    self._next_step = None  # the global step of the next session.run
    self.traced_steps: List[int] = []

  def begin(self):
    self._global_step = tf.train.get_global_step()
    if self._global_step is None:
      raise RuntimeError("StepProfilerHook needs a global step in the graph")

  def after_create_session(self, session, coord):  # pylint: disable=unused-argument
    self._next_step = int(session.run(self._global_step))

  def _in_trace_window(self, step: Optional[int]) -> bool:
    return step is not None and self._first_step <= step <= self._last_step

  def _in_tensorboard_window(self, step: Optional[int]) -> bool:
    return (self._tensorboard_trace and step is not None and
            self._tensorboard_first_step <= step <= self._tensorboard_last_step)

  def before_run(self, run_context):  # pylint: disable=unused-argument
    step = self._next_step
    if self._in_tensorboard_window(step) and not self._tensorboard_running:
      self._start_tensorboard_trace()
    if not self._in_trace_window(step):
      return None
    if _other_profiler_session_active():
      logging.warning("Step %d not profiled: another TF profiler session is active", step)
      return None
    options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    return tf.estimator.SessionRunArgs(fetches=None, options=options)

  def after_run(self, run_context, run_values):
    step = self._next_step
    self._next_step += 1
    if self._in_trace_window(step) and run_values.run_metadata.step_stats.dev_stats:
      self._record_step(step, run_values.run_metadata)
      self._check_step_counter(run_context.session)
    if step == self._last_step:
      self._release_profiler()
    if step == self._tensorboard_last_step:
      self._stop_tensorboard_trace()

  def end(self, session):  # pylint: disable=unused-argument
    self._stop_tensorboard_trace()  # training ended inside the window
    self._release_profiler()

  def _record_step(self, step: int, run_metadata: tf.RunMetadata) -> None:
    """Adds the step to the profiler; writes profile_<step> and timeline-<step>.json."""
    tf.io.gfile.makedirs(self._profile_dir)
    if self._profiler is None:
      tfprof.forget_loaded_profile()  # the Profiler replaces TF's process-wide tfprof state
      self._profiler = tf.profiler.Profiler(tf.get_default_graph())
    self._profiler.add_step(step, run_metadata)
    _write_bytes_atomically(profile_path(self._profile_dir, step),
                            self._profiler.serialize_to_string())
    _write_bytes_atomically(timeline_path(self._profile_dir, step),
                            chrome_trace(run_metadata).encode("utf-8"))
    self.traced_steps.append(step)
    logging.info("Profiled global step %d -> %s", step, profile_path(self._profile_dir, step))

  def _check_step_counter(self, session) -> None:
    actual = int(session.run(self._global_step))
    if actual != self._next_step:
      logging.warning("StepProfilerHook: expected global step %d, found %d; resynchronising",
                      self._next_step, actual)
      self._next_step = actual

  def _release_profiler(self) -> None:
    # TF keeps ONE process-wide tfprof state, which Profiler.__del__ deletes: release it now, not
    # whenever the garbage collector gets to it (it would delete a profile loaded later).
    if self._profiler is not None:
      self._profiler = None
      tfprof.forget_loaded_profile()

  def _start_tensorboard_trace(self) -> None:
    try:
      tf.io.gfile.makedirs(self._profile_dir)
      tf2.profiler.experimental.start(self._profile_dir)
      self._tensorboard_running = True
      logging.info("TensorBoard profiler trace of steps %d..%d started", self._next_step,
                   self._tensorboard_last_step)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("TensorBoard profiler trace not captured (start failed: %s)", e)
      self._tensorboard_trace = False  # do not retry every step

  def _stop_tensorboard_trace(self) -> None:
    if not self._tensorboard_running:
      return
    self._tensorboard_running = False
    try:
      tf2.profiler.experimental.stop()
      logging.info("TensorBoard profiler trace saved under %s",
                   os.path.join(self._profile_dir, "plugins", "profile"))
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("TensorBoard profiler trace not saved (stop failed: %s)", e)


def build_profile_hooks(profile_dir: str, first_step: int, last_step: int,
                        tensorboard_trace: bool) -> list:
  """The training hooks that profile global steps first_step..last_step (inclusive).

  Call inside model_fn (TRAIN mode) and return the hooks in `EstimatorSpec.training_hooks`.

  Args:
    profile_dir: where profile_N, timeline-N.json (and the TensorBoard trace) go.
    first_step, last_step: the inclusive window of global steps; "step N" is the run that starts
      with global step N (see the module docstring).
    tensorboard_trace: also capture a TensorBoard profile-plugin trace of as many steps, right
      after the window (see the module docstring; failures are logged, never raised).

  Returns:
    A one-element list of SessionRunHooks.
  """
  return [StepProfilerHook(profile_dir, first_step, last_step, tensorboard_trace)]


def read_profile_steps(profile_dir: str) -> List[int]:
  """The steps that have a profile_N dump in `profile_dir`, ascending ([] if none)."""
  if not tf.io.gfile.isdir(profile_dir):
    return []
  steps = []
  for name in tf.io.gfile.listdir(profile_dir):
    suffix = name[len(PROFILE_PREFIX):] if name.startswith(PROFILE_PREFIX) else ""
    if suffix.isdigit():
      steps.append(int(suffix))
  return sorted(steps)


def latest_profile(profile_dir: str) -> Optional[str]:
  """Path of the newest profile_N in `profile_dir` (it holds all traced steps), or None."""
  steps = read_profile_steps(profile_dir)
  return profile_path(profile_dir, steps[-1]) if steps else None
