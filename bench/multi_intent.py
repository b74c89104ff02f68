#!/usr/bin/env python
"""Multi-intent benchmark: `atomic` vs `multilabel` intents on generated SNIPS / ATIS corpora.

  python bench/multi_intent.py [--corpora=snips,atis] [--seeds=42,43] [--runs_root=runs/multi]
  python bench/multi_intent.py ... -- --num_train_epochs=3     # extra run_bert_nlu.py flags

For each corpus: `python -m bert_nlu.data.multi_intent --seed=<corpus_seed>` builds the corpus
from <data_root>/<corpus> (1 to 3 utterances joined, 20% of the intent combinations held out of
train) in <runs_root>/data/<corpus>; then for each policy (atomic, multilabel) and seed,
`run_bert_nlu.py --flagfile=configs/<corpus>.cfg --max_seq_length=auto` trains from scratch,
selects the checkpoint on DEV whole-frame accuracy (multilabel: with the dev-chosen threshold)
and evaluates TEST once with it. Writes <results_dir>/multi_intent_<corpus>.json: per run and
as the mean over seeds, for dev and test, intent SET accuracy, slot F1, whole-frame accuracy,
and set / whole-frame accuracy on utterances whose intent combination is seen / unseen in train.
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

POLICIES = ("atomic", "multilabel")


def generate(corpus: str, data_root: str, runs_root: str, corpus_seed: int,
             size_ratio: float) -> str:
  """Builds the multi-intent corpus of `corpus`; returns its directory."""
  output = os.path.join(runs_root, "data", corpus)
  shutil.rmtree(output, ignore_errors=True)
  command = [sys.executable, "-m", "bert_nlu.data.multi_intent",
             f"--source={os.path.join(data_root, corpus)}", f"--output={output}",
             f"--seed={corpus_seed}", f"--size_ratio={size_ratio}"]
  subprocess.run(command, cwd=REPO, check=True)
  return output


def headline(split_metrics: dict) -> dict:
  """Set accuracy, slot F1, whole frame, seen / unseen combinations of one split's metrics."""
  multi = split_metrics["multi_intent"]
  return {
      "intent_set_accuracy": multi["intent_set_accuracy"],
      "slot_f1": split_metrics["slot_f1"],
      "whole_frame_accuracy": split_metrics["whole_frame_accuracy"],
      "intent_f1_micro": multi["intent_f1_micro"],
      "intent_f1_macro": multi["intent_f1_macro"],
      "seen_combinations": multi["seen_combinations"],
      "unseen_combinations": multi["unseen_combinations"],
      "multi_intent_utterances": multi["multi_intent_utterances"],
  }


def train_one(corpus: str, data_dir: str, policy: str, seed: int, runs_root: str,
              extra_flags) -> dict:
  """One run from scratch; returns its dev/test headline and provenance."""
  output_dir = os.path.join(runs_root, corpus, f"{policy}_seed{seed}")
  shutil.rmtree(output_dir, ignore_errors=True)
  os.makedirs(os.path.dirname(output_dir), exist_ok=True)
  command = [sys.executable, "run_bert_nlu.py", f"--flagfile=configs/{corpus}.cfg",
             f"--data_dir={data_dir}", f"--multi_intent_policy={policy}", f"--seed={seed}",
             "--max_seq_length=auto", "--eval_on_test", f"--output_dir={output_dir}",
             *extra_flags]
  log_path = output_dir + ".log"
  print(f"[{corpus} {policy} seed {seed}] {' '.join(command)}  (log: {log_path})", flush=True)
  start = time.time()
  with open(log_path, "w") as log:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"{corpus} {policy} seed {seed}: exit {result.returncode}, see {log_path}")
  results = io_utils.read_json(os.path.join(output_dir, "eval_results.json"))
  return {
      "policy": policy, "seed": seed, "command": " ".join(command),
      "wall_seconds": round(time.time() - start, 1),
      "best_step": results["best_step"],
      "max_seq_length": results["config"]["data"]["max_seq_length"],
      "intent_threshold": results.get("intent_threshold"),
      "dev": headline(results["splits"]["dev"]),
      "test": headline(results["splits"]["test"]),
  }


def mean_over_seeds(runs) -> dict:
  """{split: {metric: mean}} of the scalar headline metrics and the seen/unseen accuracies."""
  means = {}
  for split in ("dev", "test"):
    rows = [run[split] for run in runs]
    means[split] = {name: statistics.mean(row[name] for row in rows)
                    for name in ("intent_set_accuracy", "slot_f1", "whole_frame_accuracy")}
    for group in ("seen_combinations", "unseen_combinations", "multi_intent_utterances"):
      for name in ("intent_set_accuracy", "whole_frame_accuracy"):
        values = [row[group][name] for row in rows if row[group][name] is not None]
        means[split][f"{group}_{name}"] = statistics.mean(values) if values else None
  return means


def format_table(report: dict) -> str:
  lines = [f"{report['corpus'].upper()} multi-intent, TEST, mean over seeds "
           f"{report['seeds']} (%): set acc / slot F1 / frame / set acc seen / set acc unseen"]
  for policy, mean in report["mean"].items():
    test = mean["test"]
    values = [test["intent_set_accuracy"], test["slot_f1"], test["whole_frame_accuracy"],
              test["seen_combinations_intent_set_accuracy"],
              test["unseen_combinations_intent_set_accuracy"]]
    lines.append(f"  {policy:10s} " + " / ".join(
        "-" if v is None else f"{100 * v:.2f}" for v in values))
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpora", default="snips,atis")
  parser.add_argument("--seeds", default="42,43")
  parser.add_argument("--corpus_seed", type=int, default=0, help="the generator's seed")
  parser.add_argument("--size_ratio", type=float, default=1.0,
                      help="generated split size / source split size")
  parser.add_argument("--data_root", default=os.path.join(REPO, "..", "shared", "data"))
  parser.add_argument("--runs_root", default="runs/multi_intent")
  parser.add_argument("--results_dir", default=os.path.join(REPO, "bench", "results"))
  parser.add_argument("extra_flags", nargs="*", help="passed to run_bert_nlu.py after --")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  runs_root = os.path.abspath(args.runs_root)
  for corpus in args.corpora.split(","):
    code_version = provenance.git_state()
    data_dir = generate(corpus, args.data_root, runs_root, args.corpus_seed, args.size_ratio)
    generation = io_utils.read_json(os.path.join(data_dir, "generation.json"))
    runs = [train_one(corpus, data_dir, policy, seed, runs_root, args.extra_flags)
            for policy in POLICIES for seed in seeds]
    report = {
        "benchmark": "multi_intent", "corpus": corpus,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": code_version, "machine": provenance.machine(),
        "selection": "dev whole_frame_accuracy (multilabel: threshold chosen on dev); test once",
        "seeds": seeds, "generation": generation, "extra_flags": list(args.extra_flags),
        "mean": {policy: mean_over_seeds([r for r in runs if r["policy"] == policy])
                 for policy in POLICIES},
        "runs": runs,
    }
    os.makedirs(args.results_dir, exist_ok=True)
    io_utils.atomic_write_json(
        os.path.join(args.results_dir, f"multi_intent_{corpus}.json"), report)
    print(format_table(report), flush=True)


if __name__ == "__main__":
  main()
