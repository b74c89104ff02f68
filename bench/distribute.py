"""Training throughput on 1 vs 2 replicas of this CPU, and a multi-worker run on loopback.

  python bench/distribute.py                  # MiniLM on SNIPS, 1 epoch slice (results JSON)
  python bench/distribute.py --tiny --output=/tmp/distribute.json   # smoke test (tiny model)

Three runs of the real trainer (`run_bert_nlu.py`), same flags and global batch:
  one_replica:   --distribution=none;
  two_replicas:  --distribution=mirrored --devices=/cpu:0,/cpu:1 (a session with 2 CPU devices);
  multi_worker:  python -m bert_nlu.launch --workers 2 (chief + worker + evaluator, 127.0.0.1),
                 each worker 1 replica on the CPU.
Threads: every replica of one process runs its ops in the process's one intra-op thread pool
(TensorFlow's default: as many threads as cores), so 2 CPU replicas share the same cores and the
same threads; 2 workers are 2 processes with a pool each, competing for the same cores. On a
2-core CPU neither can be faster than one replica: this measures the overhead of replication
(all-reduce, per-replica batches of half the size), not a speed-up. Figures are training
examples/second from the trainer's own ExamplesPerSecondHook (eval_results.json "training"); in
the multi-worker run eval_results.json is written by the evaluator, which does not train, so
that run's figure is "summary_examples_per_second_mean", the mean of the examples_per_sec
TensorBoard values the training tasks wrote (reported for every run, for a like-for-like
comparison), next to wall seconds (start-up of 3 processes included) and the dev metric. Each
run records the load averages before and after it (other work on the machine shows there), and
--note says what else ran.
Results: bench/results/distribute.json.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))


def _run(command, log_path, timeout_secs):
  start = time.time()
  with open(log_path, "w") as log:
    finished = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              timeout=timeout_secs, check=False)
  return finished.returncode, time.time() - start


def _training_summary(output_dir):
  path = os.path.join(output_dir, "eval_results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  training = results.get("training") or {}
  speed = training.get("train_examples_per_second") if training.get("steps_run_this_session") \
      else None
  return {"train_examples_per_second": speed,
          "num_train_steps": training.get("num_train_steps"),
          "dev_whole_frame_accuracy": results["splits"]["dev"]["whole_frame_accuracy"]}


def _summary_examples_per_second(output_dir):
  """Mean of the trainer's `examples_per_sec` TensorBoard values (one per window of
  --save_summary_steps steps of the global batch) in the event files of output_dir itself: the
  training tasks' (each worker of a cluster writes its own file; the evaluator writes below)."""
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  rates = []
  for path in sorted(glob.glob(os.path.join(output_dir, "events.out.tfevents.*"))):
    for event in tf.train.summary_iterator(path):
      rates.extend(value.simple_value for value in event.summary.value
                   if value.tag == "examples_per_sec")
  if not rates:
    return {}
  return {"summary_examples_per_second_mean": round(sum(rates) / len(rates), 2),
          "summary_windows": len(rates)}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tiny", action="store_true", help="tiny model and corpus (smoke test)")
  parser.add_argument("--workdir", default="runs/bench_distribute")
  parser.add_argument("--train_batch_size", type=int, default=32)
  parser.add_argument("--num_train_epochs", type=float, default=0.25)
  parser.add_argument("--timeout_secs", type=float, default=3600)
  parser.add_argument("--note", default="", help="recorded as is, e.g. what else ran meanwhile")
  parser.add_argument("--output", default=os.path.join(REPO, "bench", "results",
                                                       "distribute.json"))
  args = parser.parse_args()
  import provenance  # pylint: disable=g-import-not-at-top
  from bert_nlu import io_utils, testing  # pylint: disable=g-import-not-at-top
  code = provenance.git_state()
  workdir = os.path.abspath(args.workdir)
  shutil.rmtree(workdir, ignore_errors=True)
  os.makedirs(workdir)
  if args.tiny:
    bert_dir = testing.make_tiny_bert(os.path.join(workdir, "tiny_bert"),
                                      testing.corpus_vocabulary())
    model_flags = [f"--bert_dir={bert_dir}",
                   f"--data_dir={testing.make_corpus(os.path.join(workdir, 'corpus'))}",
                   "--max_seq_length=16"]
  else:
    model_flags = ["--corpus=snips", "--max_seq_length=48"]  # default MiniLM weights
  common = model_flags + [f"--train_batch_size={args.train_batch_size}",
                          f"--num_train_epochs={args.num_train_epochs}",
                          "--save_checkpoints_steps=100000", "--save_summary_steps=10",
                          "--keep_checkpoint_max=20"]
  runs = {
      "one_replica": [sys.executable, "run_bert_nlu.py", *common],
      "two_replicas": [sys.executable, "run_bert_nlu.py", *common, "--distribution=mirrored",
                       "--devices=/cpu:0,/cpu:1"],
      "multi_worker": [sys.executable, "-m", "bert_nlu.launch", "--workers=2",
                       f"--task_log_dir={os.path.join(workdir, 'multi_worker_logs')}",
                       f"--timeout_secs={args.timeout_secs}", "--", *common],
  }
  machine = provenance.machine()
  cores = machine["cores"]
  report = {"code": code, "machine": machine, "tiny": args.tiny, "note": args.note,
            "train_batch_size_global": args.train_batch_size,
            "num_train_epochs": args.num_train_epochs,
            "threads": "one intra-op pool per process (TensorFlow default: one thread per core); "
                       "the 2 CPU replicas of one process share it; 2 workers are 2 processes "
                       "on the same cores",
            "threads_per_replica": {
                "one_replica": f"{cores} (the process's pool)",
                "two_replicas": f"{cores / 2:g} on average (2 replicas share one pool of {cores})",
                "multi_worker": f"{cores} each, 2 processes on {cores} cores "
                                f"({cores / 2:g} cores per replica on average)"},
            "runs": {}}
  for name, command in runs.items():
    output_dir = os.path.join(workdir, name)
    command = command + [f"--output_dir={output_dir}"]
    load_before = os.getloadavg()
    returncode, seconds = _run(command, os.path.join(workdir, f"{name}.log"), args.timeout_secs)
    report["runs"][name] = {"returncode": returncode, "wall_seconds": round(seconds, 1),
                            # 1/5/15-minute load averages: > cores means others shared the CPU
                            "load_average_before": [round(x, 2) for x in load_before],
                            "load_average_after": [round(x, 2) for x in os.getloadavg()],
                            **(_training_summary(output_dir) or {}),
                            **_summary_examples_per_second(output_dir)}
    print(name, report["runs"][name], flush=True)
  io_utils.atomic_write_json(args.output, report)


if __name__ == "__main__":
  main()
