#!/usr/bin/env python
"""Soak test: one long training run with many periodic evaluations; memory and open files sampled.

  python bench/soak.py [--minutes=30] [--workdir=runs/soak] [--interval=5]

The Estimator rebuilds the evaluation graph (and our whole-set metric collector) at every
evaluation; a leak there grows with the number of evaluations. This runs `run_bert_nlu.py` on a
tiny BERT and corpus with a checkpoint (hence a dev evaluation + best-model decision) every few
steps and enough epochs to last --minutes, samples the process's resident memory (VmRSS) and
open file descriptors every --interval seconds, and writes bench/results/soak.json plus
reports/soak.png. It reports the growth between the first and last quarter of the run (after
warm-up) and the number of evaluations done.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def sample(pid):
  """(rss_mb, open_fds, threads) of a live process from /proc."""
  rss_kb, threads = 0, 0
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        rss_kb = int(line.split()[1])
      elif line.startswith("Threads:"):
        threads = int(line.split()[1])
  return rss_kb / 1024.0, len(os.listdir(f"/proc/{pid}/fd")), threads


def count_evaluations(output_dir):
  from bert_nlu import hooks  # pylint: disable=g-import-not-at-top
  path = os.path.join(output_dir, hooks.BEST_DIR_NAME, hooks.EVALUATED_STEPS_FILE)
  if not os.path.exists(path):
    return 0
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  return len(io_utils.read_json(path))


def quarter_growth(values):
  n = len(values)
  if n < 8:
    return None
  first = values[n // 4: n // 2]  # after warm-up
  last = values[3 * n // 4:]
  return sum(last) / len(last) - sum(first) / len(first)


def fitted_slope(xs, ys):
  """Least-squares slope of ys over xs (None with fewer than 2 distinct xs)."""
  n = len(xs)
  if n < 2 or len(set(xs)) < 2:
    return None
  mean_x, mean_y = sum(xs) / n, sum(ys) / n
  covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
  return covariance / sum((x - mean_x) ** 2 for x in xs)


def summarize(samples) -> dict:
  """Growth figures over the samples after warm-up (the first quarter is left out)."""
  rss = [s["rss_mb"] for s in samples]
  fds = [s["open_fds"] for s in samples]
  settled = samples[len(samples) // 4:]
  slope = fitted_slope([s["evaluations"] for s in settled], [s["rss_mb"] for s in settled])
  return {
      "evaluations": samples[-1]["evaluations"] if samples else 0,
      "rss_mb_first_quarter_to_last_quarter_growth": quarter_growth(rss),
      "open_fds_first_quarter_to_last_quarter_growth": quarter_growth(fds),
      "rss_mb_per_100_evaluations_fitted": None if slope is None else round(100 * slope, 3),
      "rss_mb_min_max_after_warmup": [min(rss[len(rss) // 4:]), max(rss[len(rss) // 4:])]
                                     if len(rss) >= 4 else None,
      "open_fds_min_max_after_warmup": [min(fds[len(fds) // 4:]), max(fds[len(fds) // 4:])]
                                       if len(fds) >= 4 else None,
  }


def write_chart(samples, path):
  import altair as alt  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frame = pd.DataFrame(samples)
  rss = alt.Chart(frame).mark_line().encode(
      x=alt.X("seconds:Q", title="seconds"), y=alt.Y("rss_mb:Q", title="resident memory (MB)"))
  fds = alt.Chart(frame).mark_line(color="orange").encode(
      x=alt.X("seconds:Q", title="seconds"), y=alt.Y("open_fds:Q", title="open file descriptors"))
  evals = alt.Chart(frame).mark_line(color="green").encode(
      x=alt.X("seconds:Q", title="seconds"), y=alt.Y("evaluations:Q", title="evaluations done"))
  chart = alt.hconcat(rss.properties(width=260, height=200), fds.properties(width=260, height=200),
                      evals.properties(width=260, height=200)).properties(
                          title="Soak: one training run, periodic evaluation every 5 steps")
  chart.save(path, scale_factor=1.5)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--minutes", type=float, default=30.0)
  parser.add_argument("--interval", type=float, default=5.0)
  parser.add_argument("--workdir", default="runs/soak")
  parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "soak.json"))
  parser.add_argument("--png", default=os.path.join(REPO, "reports", "soak.png"))
  parser.add_argument("--resummarize", action="store_true",
                      help="recompute the summary figures of --output from its stored samples")
  args = parser.parse_args()
  from bert_nlu import io_utils, testing  # pylint: disable=g-import-not-at-top
  if args.resummarize:
    report = io_utils.read_json(args.output)
    report.update(summarize(report["samples"]))
    io_utils.atomic_write_json(args.output, report)
    print({k: v for k, v in report.items() if k != "samples"})
    return
  workdir = os.path.abspath(args.workdir)
  shutil.rmtree(workdir, ignore_errors=True)
  bert_dir = testing.make_tiny_bert(os.path.join(workdir, "tiny_bert"),
                                    testing.corpus_vocabulary())
  corpus_dir = testing.make_corpus(os.path.join(workdir, "corpus"))
  output_dir = os.path.join(workdir, "run")
  command = [sys.executable, "run_bert_nlu.py", f"--bert_dir={bert_dir}",
             f"--data_dir={corpus_dir}", f"--output_dir={output_dir}", "--max_seq_length=16",
             "--train_batch_size=8", "--num_train_epochs=100000", "--learning_rate=1e-4",
             "--save_checkpoints_steps=5", "--save_summary_steps=5", "--keep_checkpoint_max=2"]
  log = open(workdir + ".log", "w")
  process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
  start = time.time()
  samples = []
  try:
    while time.time() - start < args.minutes * 60 and process.poll() is None:
      rss_mb, open_fds, threads = sample(process.pid)
      samples.append({"seconds": round(time.time() - start, 1), "rss_mb": round(rss_mb, 1),
                      "open_fds": open_fds, "threads": threads,
                      "evaluations": count_evaluations(output_dir)})
      time.sleep(args.interval)
  finally:
    exit_code = process.poll()
    process.terminate()  # graceful stop: checkpoint, exit 143
    process.wait(timeout=300)
    log.close()
  report = {
      "benchmark": "soak",
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": " ".join(command),
      "minutes": round((time.time() - start) / 60, 1),
      "crashed_early": exit_code is not None,
      **summarize(samples),
      "samples": samples,
  }
  io_utils.atomic_write_json(args.output, report)
  write_chart(samples, args.png)
  print({k: v for k, v in report.items() if k != "samples"})


if __name__ == "__main__":
  main()
