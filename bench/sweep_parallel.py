"""Is `python -m bert_nlu.sweep --parallel=2` faster in total than `--parallel=1`?

Trains the same 4 tiny-ish runs (a random 2-layer H64 BERT, a generated 600-utterance corpus,
4 learning rates) once with --parallel=1 and once with --parallel=2, each in a fresh runs root
(nothing reused), in the order 1, 2, 1, 2 ... for --repeats, and reports the wall time of each
sweep and the ratio of the medians:

  python bench/sweep_parallel.py                      # -> bench/results/sweep_parallel.json
  python bench/sweep_parallel.py --smoke              # 2 short runs per sweep, nothing saved

Run it on an otherwise idle machine: the figure is a total wall time.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

from bert_nlu import io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from bert_nlu.testing import (corpus_vocabulary, make_corpus,  # noqa: E402  pylint: disable=g-import-not-at-top
                              make_tiny_bert, write_tiny_sweep_file)

flags.DEFINE_integer("repeats", 2, "Sweeps per setting (interleaved).")
flags.DEFINE_bool("smoke", False, "2 runs of 1 epoch per sweep, one repeat; nothing saved.")
flags.DEFINE_string("output", os.path.join(REPO_DIR, "bench", "results", "sweep_parallel.json"),
                    "Result JSON.")
FLAGS = flags.FLAGS


def time_sweep(sweep_file: str, runs_root: str, parallel: int) -> float:
  """Wall seconds of one `python -m bert_nlu.sweep` (fails loudly if a run fails)."""
  start = time.time()
  subprocess.run([sys.executable, "-m", "bert_nlu.sweep", sweep_file, f"--runs_root={runs_root}",
                  f"--parallel={parallel}"], cwd=REPO_DIR, check=True,
                 stdout=subprocess.DEVNULL)
  return time.time() - start


def main(argv):
  del argv
  with tempfile.TemporaryDirectory(prefix="sweep_parallel.") as work:
    bert_dir = make_tiny_bert(os.path.join(work, "bert"), corpus_vocabulary(), hidden_size=64,
                              num_layers=2, num_heads=2, intermediate_size=256)
    train_size = 150 if FLAGS.smoke else 600
    corpus_dir = make_corpus(os.path.join(work, "corpus"),
                             sizes=(("train", train_size), ("dev", 100), ("test", 30)))
    rates = ("1e-3", "2e-3") if FLAGS.smoke else ("5e-4", "1e-3", "2e-3", "3e-3")
    sweep_file = write_tiny_sweep_file(
        os.path.join(work, "bench.sweep"), "bench", bert_dir, corpus_dir, learning_rates=rates,
        extra_flags=("--num_train_epochs=1",) if FLAGS.smoke else ("--num_train_epochs=3",
                                                                    "--save_checkpoints_steps=40"))
    repeats = 1 if FLAGS.smoke else FLAGS.repeats
    seconds = {1: [], 2: []}
    for repeat in range(repeats):
      for parallel in (1, 2):
        runs_root = os.path.join(work, f"runs_p{parallel}_r{repeat}")
        seconds[parallel].append(time_sweep(sweep_file, runs_root, parallel))
        print(f"--parallel={parallel}: {seconds[parallel][-1]:.1f} s", flush=True)
  result = {
      "runs_per_sweep": len(rates), "cores": os.cpu_count(), "repeats": repeats,
      "seconds": {f"parallel_{p}": s for p, s in seconds.items()},
      "median_seconds": {f"parallel_{p}": statistics.median(s) for p, s in seconds.items()},
  }
  result["speedup_parallel_2"] = (result["median_seconds"]["parallel_1"]
                                  / result["median_seconds"]["parallel_2"])
  print(json.dumps(result, indent=2))
  if not FLAGS.smoke:
    io_utils.atomic_write_json(FLAGS.output, result)


if __name__ == "__main__":
  app.run(main)
