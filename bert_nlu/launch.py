"""Starts a local tf.distribute cluster on loopback ports: chief + workers (+ evaluator).

  python -m bert_nlu.launch --workers 2 -- --flagfile=configs/snips.cfg --output_dir=runs/mw

runs `run_bert_nlu.py <flags> --distribution=multi_worker` once per task, each with the TF_CONFIG a
host of a real cluster would get (see README, "Training on several GPUs or machines"): the chief
(worker 0 of the collective, writes checkpoints and the run manifest), `--workers - 1` workers and,
unless --noevaluator_task, an evaluator that evaluates every checkpoint and does the final evaluation
(the training tasks then get --norun_eval). Ports are free ports of 127.0.0.1 only. Each task's
output goes to <task_log_dir>/<task>.log. The launcher waits for all tasks; when one fails, or after
--timeout_secs, it terminates the others (SIGTERM, then SIGKILL) and exits non-zero. Its exit code
is the first failing task's, else 0.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from absl import app, flags

flags.DEFINE_integer("workers", 2, "Training tasks: the chief + (workers - 1) workers.")
flags.DEFINE_bool("evaluator_task", True, "Also start an evaluator task.")
flags.DEFINE_string("task_log_dir", "launch_logs", "Where each task's output goes (<task>.log).")
flags.DEFINE_float("timeout_secs", 3600, "Terminate every task after this long.")
FLAGS = flags.FLAGS

LOOPBACK = "127.0.0.1"
RUN_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "run_bert_nlu.py")


def free_loopback_ports(count: int) -> List[int]:
  """`count` distinct ports free on 127.0.0.1 now (bound, read, released)."""
  sockets = []
  try:
    for _ in range(count):
      sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      sock.bind((LOOPBACK, 0))
      sockets.append(sock)
    return [sock.getsockname()[1] for sock in sockets]
  finally:
    for sock in sockets:
      sock.close()


def cluster_tf_configs(num_workers: int, with_evaluator: bool,
                       ports: Sequence[int]) -> Dict[str, dict]:
  """TF_CONFIG of every task: {"chief": {...}, "worker_0": {...}, ..., "evaluator": {...}}.

  Args:
    num_workers: training tasks (>= 1): one chief and num_workers - 1 workers.
    with_evaluator: add an evaluator task (not listed in the cluster, as TensorFlow expects).
    ports: num_workers loopback ports.
  """
  addresses = [f"{LOOPBACK}:{port}" for port in ports[:num_workers]]
  cluster = {"chief": addresses[:1]}
  if num_workers > 1:
    cluster["worker"] = addresses[1:]
  configs = {"chief": {"cluster": cluster, "task": {"type": "chief", "index": 0}}}
  for index in range(num_workers - 1):
    configs[f"worker_{index}"] = {"cluster": cluster, "task": {"type": "worker", "index": index}}
  if with_evaluator:
    configs["evaluator"] = {"cluster": cluster, "task": {"type": "evaluator", "index": 0}}
  return configs


def task_command(task: str, run_flags: Sequence[str], with_evaluator: bool) -> List[str]:
  """The run_bert_nlu.py command line of one task."""
  command = [sys.executable, RUN_SCRIPT, *run_flags, "--distribution=multi_worker"]
  if with_evaluator and task != "evaluator":
    command.append("--norun_eval")  # the evaluator does the final evaluation
  return command


def _stop(processes: Dict[str, subprocess.Popen], grace_secs: float = 20.0) -> None:
  """SIGTERM every running task (each saves and stops), then SIGKILL what is left."""
  for process in processes.values():
    if process.poll() is None:
      process.send_signal(signal.SIGTERM)
  deadline = time.time() + grace_secs
  for process in processes.values():
    try:
      process.wait(timeout=max(0.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def launch(num_workers: int, with_evaluator: bool, run_flags: Sequence[str], log_dir: str,
           timeout_secs: float) -> int:
  """Runs the cluster to completion (module docstring); returns the exit code."""
  os.makedirs(log_dir, exist_ok=True)
  configs = cluster_tf_configs(num_workers, with_evaluator, free_loopback_ports(num_workers))
  processes: Dict[str, subprocess.Popen] = {}
  try:
    for task, tf_config in configs.items():
      env = dict(os.environ, TF_CONFIG=json.dumps(tf_config))
      with open(os.path.join(log_dir, f"{task}.log"), "wb") as log:
        processes[task] = subprocess.Popen(task_command(task, run_flags, with_evaluator),
                                           env=env, stdout=log, stderr=subprocess.STDOUT)
      print(f"started {task} (pid {processes[task].pid}): TF_CONFIG={json.dumps(tf_config)}",
            flush=True)
    deadline = time.time() + timeout_secs
    while True:
      codes = {task: process.poll() for task, process in processes.items()}
      failed = [task for task, code in codes.items() if code not in (None, 0)]
      if failed:
        print(f"{failed[0]} exited with {codes[failed[0]]}: stopping the cluster", flush=True)
        return codes[failed[0]]
      if all(code == 0 for code in codes.values()):
        print("all tasks finished", flush=True)
        return 0
      if time.time() > deadline:
        print(f"timeout after {timeout_secs:g} s: stopping the cluster", flush=True)
        return 124
      time.sleep(1.0)
  finally:
    _stop(processes)


def _raise_on_sigterm(signum, frame):  # pylint: disable=unused-argument
  raise KeyboardInterrupt("SIGTERM")  # unwinds through launch()'s finally: the tasks are stopped


def main(argv):
  signal.signal(signal.SIGTERM, _raise_on_sigterm)
  run_flags = argv[1:]
  if FLAGS.workers < 1:
    raise app.UsageError(f"--workers must be >= 1, got {FLAGS.workers}")
  if FLAGS.timeout_secs <= 0:
    raise app.UsageError(f"--timeout_secs must be > 0, got {FLAGS.timeout_secs}")
  if any(f.startswith("--distribution") for f in run_flags):
    raise app.UsageError("the launcher sets --distribution=multi_worker itself")
  return launch(FLAGS.workers, FLAGS.evaluator_task, run_flags, FLAGS.task_log_dir,
                FLAGS.timeout_secs)


if __name__ == "__main__":
  app.run(main)
