"""Is `python -m bert_nlu.sweep --parallel=2` faster in total than `--parallel=1`?

Trains the same 4 runs (4 learning rates) once with --parallel=1 and once with --parallel=2,
each in a fresh runs root (nothing reused), in the order 1, 2, 1, 2 ... for --repeats, and reports
the wall time of each sweep and the ratio of the medians. Two kinds of run:

  --model=tiny    a random 2-layer H64 BERT on a generated 600-utterance corpus, 3 epochs: start-up
                  (imports, graph build) dominates, as in a sweep of many short runs;
  --model=minilm  the bundled all-MiniLM-L6-v2 on the first --minilm_train_examples SNIPS training
                  utterances, one epoch, dev evaluated at the end: a sweep of real fine-tunes,
                  where training steps dominate.

  python bench/sweep_parallel.py                      # -> bench/results/sweep_parallel.json
  python bench/sweep_parallel.py --model=minilm       # -> bench/results/sweep_parallel_minilm.json
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
flags.DEFINE_enum("model", "tiny", ["tiny", "minilm"], "What each run trains (module doc).")
flags.DEFINE_integer("minilm_train_examples", 1500, "--model=minilm: SNIPS training utterances.")
flags.DEFINE_string("data_dir", os.path.join(os.environ.get(
    "BERT_NLU_DATA_DIR", os.path.join(REPO_DIR, "..", "shared", "data")), "snips"),
                    "--model=minilm: the SNIPS corpus.")
flags.DEFINE_string("bert_dir", "", "--model=minilm: the converted all-MiniLM-L6-v2 (default: "
                    "the converter's cache).")
flags.DEFINE_string("output", "", "Result JSON (default bench/results/sweep_parallel.json, "
                    "sweep_parallel_minilm.json with --model=minilm).")
FLAGS = flags.FLAGS


def time_sweep(sweep_file: str, runs_root: str, parallel: int) -> float:
  """Wall seconds of one `python -m bert_nlu.sweep` (fails loudly if a run fails)."""
  start = time.time()
  subprocess.run([sys.executable, "-m", "bert_nlu.sweep", sweep_file, f"--runs_root={runs_root}",
                  f"--parallel={parallel}", "--recorded_results="], cwd=REPO_DIR, check=True,
                 stdout=subprocess.DEVNULL)
  return time.time() - start


def write_tiny_sweep(work: str):
  """The --model=tiny sweep file in `work`; returns (path, learning rates)."""
  bert_dir = make_tiny_bert(os.path.join(work, "bert"), corpus_vocabulary(), hidden_size=64,
                            num_layers=2, num_heads=2, intermediate_size=256)
  train_size = 150 if FLAGS.smoke else 600
  corpus_dir = make_corpus(os.path.join(work, "corpus"),
                           sizes=(("train", train_size), ("dev", 100), ("test", 30)))
  rates = ("1e-3", "2e-3") if FLAGS.smoke else ("5e-4", "1e-3", "2e-3", "3e-3")
  path = write_tiny_sweep_file(
      os.path.join(work, "bench.sweep"), "bench", bert_dir, corpus_dir, learning_rates=rates,
      extra_flags=("--num_train_epochs=1",) if FLAGS.smoke else ("--num_train_epochs=3",
                                                                  "--save_checkpoints_steps=40"))
  return path, rates


def write_minilm_sweep(work: str):
  """The --model=minilm sweep file in `work`: one epoch of the first N SNIPS utterances at
  batch 32, the plain recipe otherwise; returns (path, learning rates)."""
  from bert_nlu.convert import default_cache_dir  # pylint: disable=g-import-not-at-top
  bert_dir = FLAGS.bert_dir or os.path.join(default_cache_dir(), "all-MiniLM-L6-v2")
  rates = ("1e-4", "2e-4") if FLAGS.smoke else ("5e-5", "1e-4", "2e-4", "3e-4")
  examples = 200 if FLAGS.smoke else FLAGS.minilm_train_examples
  lines = ["name = bench", "instances = 1", "", "[flags]", f"--bert_dir={bert_dir}",
           f"--data_dir={FLAGS.data_dir}", f"--train_examples={examples}",
           "--max_seq_length=64", "--train_batch_size=32", "--eval_batch_size=64",
           "--warmup_proportion=0.1", "--head_dropout=0.1", "--num_train_epochs=1",
           "--keep_checkpoint_max=1", "", "[grid]"] + [f"--learning_rate={r}" for r in rates]
  path = os.path.join(work, "bench.sweep")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return path, rates


def main(argv):
  del argv
  output = FLAGS.output or os.path.join(
      REPO_DIR, "bench", "results",
      "sweep_parallel.json" if FLAGS.model == "tiny" else "sweep_parallel_minilm.json")
  with tempfile.TemporaryDirectory(prefix="sweep_parallel.") as work:
    write_sweep = write_tiny_sweep if FLAGS.model == "tiny" else write_minilm_sweep
    sweep_file, rates = write_sweep(work)
    repeats = 1 if FLAGS.smoke else FLAGS.repeats
    seconds = {1: [], 2: []}
    for repeat in range(repeats):
      for parallel in (1, 2):
        runs_root = os.path.join(work, f"runs_p{parallel}_r{repeat}")
        seconds[parallel].append(time_sweep(sweep_file, runs_root, parallel))
        print(f"--parallel={parallel}: {seconds[parallel][-1]:.1f} s", flush=True)
  result = {
      "model": FLAGS.model, "command": "python bench/sweep_parallel.py " + " ".join(sys.argv[1:]),
      "runs_per_sweep": len(rates), "cores": os.cpu_count(), "repeats": repeats,
      "seconds": {f"parallel_{p}": s for p, s in seconds.items()},
      "median_seconds": {f"parallel_{p}": statistics.median(s) for p, s in seconds.items()},
  }
  result["speedup_parallel_2"] = (result["median_seconds"]["parallel_1"]
                                  / result["median_seconds"]["parallel_2"])
  print(json.dumps(result, indent=2))
  if not FLAGS.smoke:
    io_utils.atomic_write_json(output, result)


if __name__ == "__main__":
  app.run(main)
