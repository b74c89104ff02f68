"""Runs a sweep: every configuration of a sweep file, each in its content-addressed directory.

  python -m bert_nlu.sweep configs/sweeps/mrpc_batch_size.sweep [--runs_root=runs/sweeps]
      [--parallel=2] [--dry_run]

Every run is resolved in this process exactly as `run_bert_nlu.py` would resolve its flags, and
trained in `<runs_root>/runs/<hash>` where the hash is its identity (bert_nlu.run_identity:
configuration + data + weights). So:
  - a run that finished (eval_results.json matching its identity) is reused, never retrained:
    re-running a sweep after adding a grid value trains only the new runs, and two sweeps sharing
    a configuration share its run;
  - a run that was stopped resumes from its last checkpoint (the trainer resumes in its directory);
  - a run another process is training (its directory is locked) is waited for, then reused;
  - a run whose directory is gone (a new machine) but whose results a committed results file
    records (`--recorded_results`, default bench/results/sweeps: the files bert_nlu.sweep_report
    writes) is RECORDED: not retrained, and the collector takes its results from that file. So a
    study spread over sessions commits its partial results and the next session trains only the
    rest. `--recorded_results=` (empty) trains every run whose directory is missing.
A flag value `@<sweep name>/<run name>` (e.g. `--init_checkpoint=@seq_stage1/ep1_i0`, or an
item of a comma-separated list such as --distill_teachers) names a run of ANOTHER sweep under the
same runs root: it is replaced by that run's directory, found through
`<runs_root>/<sweep name>/index.json`, and the run must have finished (its eval_results.json), so
a sweep that continues from another one is run after it (`bert_nlu.study` orders them). `--dry_run`
lists a run whose reference has not finished yet as waiting for it. `--index_only` writes the
sweep's index and links without training (to report a sweep some of whose runs were trained by
other sweeps, e.g. parts of its grid split between two jobs, or are not trained yet).
Runs execute as `run_bert_nlu.py` subprocesses (output in `<run dir>/sweep.log`), `--parallel` at
a time, the cores divided between them (TensorFlow intra-/inter-op threads). TFRecord caches are
shared in `<runs_root>/data_cache` (keyed by content). Human-readable names:
`<runs_root>/<sweep name>/index.json` and one symlink per run (e.g. `bs32_lr1e-4_i0 ->
../runs/<hash>`), so `tensorboard --logdir <runs_root>/<sweep name>` shows the sweep, HParams
dashboard included.
"""

import concurrent.futures
import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from absl import app, flags

from bert_nlu import io_utils, run_dir, run_identity, sweep_results, sweep_spec
from bert_nlu.errors import InputError

flags.DEFINE_string("runs_root", "runs/sweeps", "Runs go to <runs_root>/runs/<hash>; the sweep's "
                    "index and named symlinks to <runs_root>/<sweep name>/.")
flags.DEFINE_integer("parallel", 1, "Runs trained at once; the cores are divided between them.")
flags.DEFINE_integer("cores", 0, "Cores to divide between parallel runs (0 = all of this machine).")
flags.DEFINE_bool("dry_run", False, "List the runs (name, hash, reused / resumes / new) and stop.")
flags.DEFINE_bool("index_only", False, "Write the sweep's index and named links, train nothing: "
                  "runs finished by other sweeps (e.g. parts of this grid run side by side) or "
                  "recorded are listed, so bert_nlu.sweep_report can report what there is.")
flags.DEFINE_string("recorded_results", "bench/results/sweeps",
                    "Results files (bert_nlu.sweep_report's JSON) whose finished runs are not "
                    "retrained when their directory is missing; empty: retrain them.")

RUNS_SUBDIR = "runs"
INDEX_FILE = "index.json"
LOG_FILE = "sweep.log"
DATA_CACHE_SUBDIR = "data_cache"
RUN_SCRIPT = os.path.join(run_identity.REPO_DIR, "run_bert_nlu.py")
_LOCK_POLL_SECONDS = 2.0

# Run states, in the order progress lines list them.
DONE, REUSED, RUNNING, WAITING, LEFT, FAILED = "done", "reused", "running", "waiting", "left", "failed"
# Finished on another machine or in an earlier session: results in a committed results file only.
RECORDED = "recorded"
# Asked to stop (SIGINT/SIGTERM to the sweep) before it finished: its checkpoint is kept.
STOPPED = "stopped"
STATES = (DONE, REUSED, RECORDED, RUNNING, WAITING, LEFT, STOPPED, FAILED)
# States that make the sweep incomplete (exit status 1).
UNFINISHED_STATES = (LEFT, STOPPED, FAILED)
# --dry_run only: a run whose `@sweep/run` reference has not finished (it cannot be resolved yet).
PENDING = "pending"
REFERENCE_PATTERN = re.compile(r"^@([A-Za-z0-9_][A-Za-z0-9_.-]*)/([^/,]+)$")


class UnfinishedReference(InputError):
  """An `@<sweep>/<run>` flag value names a run that does not exist or has not finished."""


def resolve_run_reference(reference: str, runs_root: str) -> str:
  """The directory of the finished run `@<sweep name>/<run name>` under `runs_root`.

  Args:
    reference: "@<sweep name>/<run name>" (the name of its symlink in <runs_root>/<sweep name>).
    runs_root: the runs root both sweeps use.

  Returns:
    The run's directory, <runs_root>/runs/<hash>, as an absolute path.

  Raises:
    InputError: `reference` is not of that form.
    UnfinishedReference: the sweep has no index under `runs_root`, has no run of that name, or
      the run has no eval_results.json yet.
  """
  match = REFERENCE_PATTERN.match(reference)
  if not match:
    raise InputError(reference, "a run reference is @<sweep name>/<run name>")
  sweep_name, run_name = match.groups()
  index_path = os.path.join(runs_root, sweep_name, INDEX_FILE)
  if not os.path.exists(index_path):
    raise UnfinishedReference(reference, f"sweep {sweep_name!r} has not run under --runs_root="
                              f"{runs_root} (no {index_path}): run that sweep first")
  entries = {entry["name"]: entry for entry in io_utils.read_json(index_path)["runs"]}
  if run_name not in entries:
    raise UnfinishedReference(reference, f"sweep {sweep_name!r} has no run named {run_name!r}; "
                              f"its runs: {', '.join(entries)}")
  directory = os.path.abspath(os.path.join(runs_root, sweep_name, entries[run_name]["run_dir"]))
  if (not os.path.exists(os.path.join(directory, run_identity.RESULTS_FILE))
      and entries[run_name].get("state") == RECORDED):
    raise UnfinishedReference(reference, f"run {run_name} of sweep {sweep_name!r} is only recorded "
                              f"in {entries[run_name].get('recorded_in')} (its directory "
                              f"{directory} is gone): run that sweep again with "
                              "--recorded_results= to retrain it")
  if not os.path.exists(os.path.join(directory, run_identity.RESULTS_FILE)):
    raise UnfinishedReference(reference, f"run {run_name} of sweep {sweep_name!r} ({directory}) "
                              f"has not finished (no {run_identity.RESULTS_FILE}): run that sweep "
                              "to the end first")
  return directory


def expand_references(argv: Sequence[str], runs_root: str) -> List[str]:
  """`argv` with every `@<sweep>/<run>` value (or comma-separated item) replaced by its run's
  directory (resolve_run_reference); other flags unchanged."""
  expanded = []
  for line in argv:
    name, value = sweep_spec.parse_flag_line(line)
    if value is None or "@" not in value:
      expanded.append(line)
      continue
    items = [resolve_run_reference(item, runs_root) if item.startswith("@") else item
             for item in value.split(",")]
    expanded.append(f"--{name}={','.join(items)}")
  return expanded


@dataclasses.dataclass
class PlannedRun:
  """A sweep run with its resolved configuration and directory.

  Attributes:
    request: the sweep file's run (name, variant, grid values, instance).
    argv: the complete run_bert_nlu.py flags (seed included, output dir and threads excluded).
    seed: the instance's seed.
    config: the resolved RunConfig as a JSON dict.
    identity, run_hash: see bert_nlu.run_identity.
    run_dir: <runs_root>/runs/<run_hash>.
    state: one of STATES (PENDING in a dry run's plan).
    seconds: wall time of training in this sweep (None if not trained now).
    pending_reason: with state PENDING, why the run cannot be resolved yet.
    recorded_in: with state RECORDED, the results file that records the run.
  """
  request: sweep_spec.RunRequest
  argv: List[str]
  seed: int
  config: Dict[str, Any]
  identity: Dict[str, Any]
  run_hash: str
  run_dir: str
  state: str = LEFT
  seconds: Optional[float] = None
  pending_reason: str = ""
  recorded_in: str = ""


def plan_sweep(spec: sweep_spec.SweepSpec, runs_root: str, allow_pending: bool = False,
               recorded: Optional[Mapping[str, sweep_results.RecordedRun]] = None
               ) -> List[PlannedRun]:
  """Resolves every run of `spec` and finds out which have finished already.

  Args:
    spec: the sweep file.
    runs_root: where runs go (and where `@<sweep>/<run>` references are looked up).
    allow_pending: a run whose reference has not finished becomes a PENDING entry (no hash, no
      configuration) instead of an error: what --dry_run lists.
    recorded: sweep_results.recorded_runs(...): a run not finished in `runs_root` whose hash is
      recorded there is RECORDED (not trained).

  Raises:
    InputError: a flag of the sweep file is not a run_bert_nlu.py flag, a flagfile undoes a line
      of the sweep file (sweep_spec.check_flagfile_overrides), a run's flags do not
      resolve (ConfigurationError), a reference names no finished run (UnfinishedReference),
      two runs of the sweep resolve to one configuration, or a finished run does not match its
      identity.
  """
  _check_flag_names(spec)
  sweep_spec.check_flagfile_overrides(spec)
  cache_dir = os.path.join(runs_root, DATA_CACHE_SUBDIR)
  planned = []
  for request in sweep_spec.expand(spec):
    try:
      request_argv = expand_references(request.argv, runs_root)
    except UnfinishedReference as e:
      if not allow_pending:
        raise
      planned.append(PlannedRun(request, list(request.argv), 0, {}, {}, "", "", state=PENDING,
                                pending_reason=str(e)))
      continue
    base = run_identity.resolve_run_config(request_argv)
    seed = base.train.seed + request.instance
    argv = list(request_argv) + [f"--seed={seed}"]
    if not base.data.cache_dir:
      argv.append(f"--cache_dir={os.path.abspath(cache_dir)}")
    config = run_identity.resolve_run_config(argv)
    identity = run_identity.run_identity(config)
    run_hash = run_identity.identity_hash(identity)
    planned.append(PlannedRun(request, argv, seed, _as_json(config.to_json_dict()), identity,
                              run_hash, os.path.join(runs_root, RUNS_SUBDIR, run_hash)))
  _check_distinct(spec, [run for run in planned if run.state != PENDING])
  for run in planned:
    if (run.state != PENDING
        and run_identity.finished_results(run.run_dir, run.identity) is not None):
      run.state = REUSED
    elif run.state != PENDING and recorded and run.run_hash in recorded:
      run.state, run.recorded_in = RECORDED, recorded[run.run_hash].path
  return planned


def _as_json(obj: Any) -> Any:
  """`obj` as it reads back from JSON (tuples become lists)."""
  return json.loads(json.dumps(obj))


def _check_flag_names(spec: sweep_spec.SweepSpec) -> None:
  known = run_identity.run_flag_names()
  lines = list(spec.flags) + [f"--{axis.flag}=" for axis in spec.grid]
  lines += [line for variant in spec.variants for line in variant.flags]
  for line in lines:
    name, _ = sweep_spec.parse_flag_line(line)
    if name not in known and not (name.startswith("no") and name[2:] in known):
      raise InputError(spec.path, f"--{name} is not a flag of run_bert_nlu.py")


def _check_distinct(spec: sweep_spec.SweepSpec, planned: Sequence[PlannedRun]) -> None:
  seen: Dict[str, str] = {}
  for run in planned:
    if run.run_hash in seen:
      raise InputError(spec.path, f"runs {seen[run.run_hash]} and {run.request.name} resolve to "
                       "the same configuration (a grid value or variant that changes nothing?)")
    seen[run.run_hash] = run.request.name


def thread_counts(parallel: int, cores: int) -> Dict[str, int]:
  """TensorFlow threads of each of `parallel` simultaneous runs on `cores` cores (0 = all).

  One run on all cores keeps TensorFlow's defaults (0); otherwise each run gets cores // parallel
  threads (at least 1) for both pools, so the runs do not oversubscribe the cores. A sweep given
  fewer cores than the machine has (e.g. --cores=1 beside another job) stays on its share.
  """
  if parallel <= 1 and cores == 0:
    return {"intra_op_threads": 0, "inter_op_threads": 0}
  per_run = max(1, (cores or os.cpu_count() or 1) // parallel)
  return {"intra_op_threads": per_run, "inter_op_threads": per_run}


def write_index(spec: sweep_spec.SweepSpec, planned: Sequence[PlannedRun], runs_root: str) -> str:
  """Writes <runs_root>/<sweep>/index.json and the named symlinks; returns the sweep directory.

  Symlinks of the sweep directory that name no run of the sweep any more are removed (the runs
  stay in <runs_root>/runs).
  """
  sweep_dir = os.path.join(runs_root, spec.name)
  os.makedirs(sweep_dir, exist_ok=True)
  names = set()
  for run in planned:
    link = os.path.join(sweep_dir, run.request.name)
    target = os.path.join("..", RUNS_SUBDIR, run.run_hash)
    names.add(run.request.name)
    if os.path.islink(link) and os.readlink(link) == target:
      continue
    if os.path.lexists(link):
      os.remove(link)
    os.symlink(target, link)
  for name in os.listdir(sweep_dir):
    path = os.path.join(sweep_dir, name)
    if os.path.islink(path) and name not in names:
      os.remove(path)
  io_utils.atomic_write_json(os.path.join(sweep_dir, INDEX_FILE), {
      "sweep": spec.name,
      "sweep_file": spec.path,
      "metric": spec.metric,
      "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "runs": [index_entry(run) for run in planned],
  })
  return sweep_dir


def index_entry(run: PlannedRun) -> Dict[str, Any]:
  return {
      "name": run.request.name, "hash": run.run_hash,
      "run_dir": os.path.join("..", RUNS_SUBDIR, run.run_hash),
      "variant": run.request.variant, "grid": run.request.grid_values,
      "instance": run.request.instance, "seed": run.seed, "argv": run.argv,
      "state": run.state, "seconds": run.seconds, "config": run.config,
      **({"recorded_in": run.recorded_in} if run.state == RECORDED else {}),
  }


class Progress:
  """Counts of run states and an estimate of the time left; one printed line per change."""

  def __init__(self, planned: Sequence[PlannedRun], parallel: int,
               emit: Callable[[str], None] = print):
    self._planned = planned
    self._parallel = parallel
    self._emit = emit
    self._lock = threading.Lock()

  def update(self, run: PlannedRun, state: str, event: str) -> None:
    with self._lock:
      run.state = state
      self._emit(f"[{time.strftime('%H:%M:%S')}] {event} | {self.summary()}")

  def counts(self) -> Dict[str, int]:
    counts = {state: 0 for state in STATES}
    for run in self._planned:
      counts[run.state] += 1
    return counts

  def incomplete(self) -> bool:
    """True while any run is left, stopped or failed (the sweep then exits 1)."""
    counts = self.counts()
    return any(counts[state] for state in UNFINISHED_STATES)

  def seconds_left(self) -> Optional[float]:
    """Mean duration of the runs trained so far x the work left / parallel; None before one."""
    durations = [run.seconds for run in self._planned if run.state == DONE and run.seconds]
    if not durations:
      return None
    counts = self.counts()
    runs_left = counts[LEFT] + counts[WAITING] + 0.5 * counts[RUNNING]
    return sum(durations) / len(durations) * runs_left / self._parallel

  def summary(self) -> str:
    counts = self.counts()
    text = ", ".join(f"{n} {state}" for state, n in counts.items() if n or state in (DONE, LEFT))
    left = self.seconds_left()
    if counts[LEFT] + counts[RUNNING] + counts[WAITING] == 0:
      return text
    if left is None:
      return text + "; time left: known after the first run"
    return text + f"; ~{left / 60:.1f} min left"


def run_all(planned: Sequence[PlannedRun], parallel: int, threads: Dict[str, int],
            emit: Callable[[str], None] = print) -> Progress:
  """Trains the runs not reused, `parallel` at a time; returns the final progress."""
  progress = Progress(planned, parallel, emit)
  emit(f"{len(planned)} runs | {progress.summary()}")
  children: Dict[str, subprocess.Popen] = {}
  stopping = threading.Event()

  def train(run: PlannedRun) -> None:
    if stopping.is_set():
      return
    _wait_for_other_process(run, progress, stopping)
    if run_identity.finished_results(run.run_dir, run.identity) is not None:
      progress.update(run, REUSED, f"reused {run.request.name} (trained by another process)")
      return
    if stopping.is_set():
      return
    resuming = run_dir.has_run_markers(run.run_dir)
    _write_identity(run)
    progress.update(run, RUNNING, f"{'resuming' if resuming else 'started'} {run.request.name} "
                    f"in {run.run_dir}")
    start = time.time()
    return_code = _train_subprocess(run, threads, children, stopping)
    run.seconds = time.time() - start
    try:
      finished = return_code == 0 and run_identity.finished_results(
          run.run_dir, run.identity) is not None
    except InputError as e:  # results the sweep cannot match with the run: a failed run
      progress.update(run, FAILED, f"FAILED {run.request.name}: {e}")
      return
    if finished:
      progress.update(run, DONE, f"done {run.request.name} in {run.seconds / 60:.1f} min")
    elif stopping.is_set():
      progress.update(run, STOPPED, f"stopped {run.request.name} (exit {return_code}) after "
                      f"{run.seconds / 60:.1f} min: its checkpoint is kept; run the sweep again "
                      "to resume it")
    else:
      log = os.path.join(run.run_dir, LOG_FILE)
      progress.update(run, FAILED, f"FAILED {run.request.name} (exit {return_code}): {log}\n"
                      + _tail(log))

  to_train = [run for run in planned if run.state not in (REUSED, RECORDED)]
  previous = _forward_stop_signals(children, stopping)
  try:
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
      for future in [pool.submit(train, run) for run in to_train]:
        future.result()
  finally:
    _restore_signals(previous)
  return progress


def _wait_for_other_process(run: PlannedRun, progress: Progress, stopping: threading.Event):
  """Waits while another live process holds the run directory's lock (e.g. another sweep)."""
  lock_path = os.path.join(run.run_dir, run_dir.LOCK_FILE)
  announced = False
  while not stopping.is_set() and os.path.exists(lock_path):
    try:
      with open(lock_path, encoding="utf-8", errors="replace") as f:
        holder = run_dir.parse_lock_record(f.read())
    except FileNotFoundError:
      return
    if holder is None or run_dir.holder_alive_reason(holder) is None:
      return  # stale: the trainer takes it over
    if not announced:
      progress.update(run, WAITING, f"waiting for {run.request.name}: {run.run_dir} is being "
                      f"trained by pid {holder['pid']}")
      announced = True
    time.sleep(_LOCK_POLL_SECONDS)


def _write_identity(run: PlannedRun) -> None:
  path = os.path.join(run.run_dir, run_identity.IDENTITY_FILE)
  if os.path.exists(path):
    recorded = io_utils.read_json(path)
    if recorded.get("identity") != run.identity:
      raise InputError(path, "holds another identity than the run about to use this directory: "
                       + "; ".join(run_identity.identity_differences(recorded.get("identity", {}),
                                                                     run.identity)))
    return
  io_utils.atomic_write_json(path, {"hash": run.run_hash, "identity": run.identity,
                                    "argv": run.argv})


def _train_subprocess(run: PlannedRun, threads: Dict[str, int],
                      children: Dict[str, subprocess.Popen], stopping: threading.Event) -> int:
  command = [sys.executable, RUN_SCRIPT, *run.argv, f"--output_dir={run.run_dir}"]
  command += [f"--{name}={value}" for name, value in threads.items()]
  with open(os.path.join(run.run_dir, LOG_FILE), "a", encoding="utf-8") as log:
    log.write(f"\n==== {datetime.datetime.now().isoformat(timespec='seconds')} "
              f"{' '.join(command)}\n")
    log.flush()
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    children[run.run_hash] = child
    if stopping.is_set():
      child.send_signal(signal.SIGTERM)
    try:
      return child.wait()
    finally:
      children.pop(run.run_hash, None)


def _forward_stop_signals(children: Dict[str, subprocess.Popen], stopping: threading.Event):
  """SIGINT/SIGTERM: stop starting runs and ask the running ones to checkpoint and stop."""
  if threading.current_thread() is not threading.main_thread():
    return {}

  def handler(signum, frame):  # pylint: disable=unused-argument
    stopping.set()
    for child in list(children.values()):
      child.send_signal(signal.SIGTERM)  # the trainer saves a checkpoint, then stops

  return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous) -> None:
  for sig, handler in previous.items():
    signal.signal(sig, handler)


def _tail(path: str, lines: int = 8) -> str:
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return "".join(f.readlines()[-lines:])
  except OSError:
    return ""


def describe_plan(planned: Sequence[PlannedRun]) -> str:
  """A table of the runs: name, hash, what will happen."""
  rows = []
  for run in planned:
    if run.state == PENDING:
      action = f"waits: {run.pending_reason}"
    elif run.state == REUSED:
      action = "reused (finished)"
    elif run.state == RECORDED:
      action = f"recorded in {run.recorded_in} (not retrained)"
    elif run_dir.has_run_markers(run.run_dir):
      action = "resumes"
    else:
      action = "new"
    rows.append(f"  {run.request.name:<40} {run.run_hash or '-':<16}  {action}")
  return "\n".join(rows)


def plan_summary(planned: Sequence[PlannedRun]) -> str:
  """"N runs: a new, b resume, c reused, d wait for runs of other sweeps" (--dry_run's last line)."""
  counts = {"new": 0, "resume": 0, "reused": 0, "recorded": 0,
            "wait for runs of other sweeps": 0}
  for run in planned:
    if run.state == PENDING:
      counts["wait for runs of other sweeps"] += 1
    elif run.state == REUSED:
      counts["reused"] += 1
    elif run.state == RECORDED:
      counts["recorded"] += 1
    elif run_dir.has_run_markers(run.run_dir):
      counts["resume"] += 1
    else:
      counts["new"] += 1
  return f"{len(planned)} runs: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m bert_nlu.sweep SWEEP_FILE [--runs_root=DIR] "
                         "[--parallel=N] [--cores=N] [--dry_run | --index_only]")
  options = flags.FLAGS
  if options.parallel < 1:
    raise app.UsageError(f"--parallel must be >= 1, got {options.parallel}")
  if options.cores < 0:
    raise app.UsageError(f"--cores must be >= 0 (0 = all), got {options.cores}")
  if options.dry_run and options.index_only:
    raise app.UsageError("--dry_run writes nothing and --index_only writes the index: give one")
  runs_root, parallel, dry_run = options.runs_root, options.parallel, options.dry_run
  index_only, cores = options.index_only, options.cores
  try:
    spec = sweep_spec.read_sweep_file(argv[1])
    # plan_sweep re-parses the global flags: the options were read above.
    recorded = sweep_results.recorded_runs(options.recorded_results)
    planned = plan_sweep(spec, runs_root, allow_pending=dry_run or index_only, recorded=recorded)
    print(f"sweep {spec.name}: {len(planned)} runs in {os.path.join(runs_root, RUNS_SUBDIR)}")
    print(describe_plan(planned))
    if dry_run:
      print(plan_summary(planned))
      return 0
    sweep_dir = write_index(spec, planned, runs_root)
    if index_only:
      print(f"{plan_summary(planned)}; nothing trained; index: "
            f"{os.path.join(sweep_dir, INDEX_FILE)}")
      return 0
    progress = run_all(planned, parallel, thread_counts(parallel, cores))
    sweep_dir = write_index(spec, planned, runs_root)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"sweep {spec.name}: {progress.summary()}; index: {os.path.join(sweep_dir, INDEX_FILE)}")
  return 1 if progress.incomplete() else 0


def run_main():
  app.run(main)


if __name__ == "__main__":
  run_main()
