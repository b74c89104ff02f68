#!/usr/bin/env python
"""Multi-intent benchmark: `atomic` vs `multilabel` intents on generated SNIPS / ATIS corpora.

  python bench/multi_intent.py [--corpora=snips,atis] [--seeds=42,43] [--size_ratio=1.0]
                               [--parallel=2]
  python bench/multi_intent.py ... -- --num_train_epochs=3     # extra run_bert_nlu.py flags

For each corpus: `python -m bert_nlu.data.multi_intent --seed=<corpus_seed>` builds the corpus
from <data_root>/<corpus> (1 to 3 utterances joined, 20% of the intent combinations held out of
train) in <runs_root>/data/<corpus>. A sweep file (<runs_root>/multi_intent_<corpus>.sweep: the
grid is policy x seed over `configs/<corpus>.cfg --max_seq_length=auto --eval_on_test`) then
trains through the sweep engine (bert_nlu.sweep): runs are content-addressed, so a finished run is
reused and a killed one resumes. Each run selects its checkpoint on DEV whole-frame accuracy
(multilabel: with the dev-chosen threshold) and evaluates TEST once with it. Writes
<results_dir>/multi_intent_<corpus>.json: per run, and as mean and std over seeds per policy, for
dev and test: intent SET accuracy, slot F1, whole-frame accuracy, and set / whole-frame accuracy
on utterances whose intent combination is seen / unseen in train.
"""

import argparse
import datetime
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import nlu_accuracy  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

POLICIES = ("atomic", "multilabel")
# Scalar metrics of one split, as flat keys (the seen / unseen groups of eval_results.json's
# "multi_intent" section become "<group>_<metric>").
GROUPS = ("seen_combinations", "unseen_combinations", "multi_intent_utterances")
HEADLINE = ("intent_set_accuracy", "slot_f1", "whole_frame_accuracy", "intent_f1_micro",
            "intent_f1_macro") + tuple(f"{group}_{metric}" for group in GROUPS
                                       for metric in ("intent_set_accuracy",
                                                      "whole_frame_accuracy"))


def generate(corpus: str, data_root: str, runs_root: str, corpus_seed: int,
             size_ratio: float) -> str:
  """Builds the multi-intent corpus of `corpus` (the same bytes for the same seed and ratio)."""
  output = os.path.join(runs_root, "data", f"{corpus}_seed{corpus_seed}_ratio{size_ratio:g}")
  if not os.path.exists(os.path.join(output, "generation.json")):
    command = [sys.executable, "-m", "bert_nlu.data.multi_intent",
               f"--source={os.path.join(data_root, corpus)}", f"--output={output}",
               f"--seed={corpus_seed}", f"--size_ratio={size_ratio}"]
    subprocess.run(command, cwd=REPO, check=True)
  return output


def sweep_text(corpus: str, name: str, data_dir: str, seeds, extra_flags) -> str:
  """A sweep file (bert_nlu/sweep_spec.py): configs/<corpus>.cfg x policy x seed."""
  lines = [f"# Written by bench/multi_intent.py: configs/{corpus}.cfg on {data_dir}, "
           "each intent policy once per seed.",
           f"name = {name}", "instances = 1", "metric = whole_frame_accuracy", "", "[flags]",
           f"--flagfile=configs/{corpus}.cfg", f"--data_dir={data_dir}",
           "--max_seq_length=auto", "--eval_on_test", *extra_flags, "", "[grid]"]
  lines += [f"--multi_intent_policy={policy}" for policy in POLICIES]
  lines += [f"--seed={seed}" for seed in seeds]
  return "\n".join(lines) + "\n"


def headline(split_metrics: dict) -> dict:
  """The HEADLINE metrics of one split of eval_results.json, flat."""
  multi = split_metrics["multi_intent"]
  row = {"intent_set_accuracy": multi["intent_set_accuracy"],
         "slot_f1": split_metrics["slot_f1"],
         "whole_frame_accuracy": split_metrics["whole_frame_accuracy"],
         "intent_f1_micro": multi["intent_f1_micro"],
         "intent_f1_macro": multi["intent_f1_macro"]}
  for group in GROUPS:
    for metric in ("intent_set_accuracy", "whole_frame_accuracy"):
      row[f"{group}_{metric}"] = multi[group][metric]
  return row


def run_result(entry: dict, run_dir: str) -> dict:
  """One finished run of the sweep's index: its policy, seed, dev/test headline."""
  results = io_utils.read_json(os.path.join(run_dir, "eval_results.json"))
  return {
      "policy": entry["grid"]["multi_intent_policy"], "seed": entry["seed"],
      "run_dir": run_dir, "reused": entry["state"] == "reused",
      "wall_seconds": entry["seconds"],
      "best_step": results["best_step"],
      "max_seq_length": results["config"]["data"]["max_seq_length"],
      "intent_threshold": results.get("intent_threshold"),
      "dev": headline(results["splits"]["dev"]),
      "test": headline(results["splits"]["test"]),
      "test_group_sizes": {group: results["splits"]["test"]["multi_intent"][group]["count"]
                           for group in GROUPS},
  }


def run_corpus(corpus: str, args, seeds) -> dict:
  """Generates the corpus, trains (or reuses) policy x seed runs; returns the corpus report."""
  runs_root = os.path.abspath(args.runs_root)
  data_dir = generate(corpus, args.data_root, runs_root, args.corpus_seed, args.size_ratio)
  name = f"multi_intent_{corpus}"
  code_version = provenance.git_state()
  start = time.time()
  index, _ = nlu_accuracy.run_sweep(
      corpus, name, sweep_text(corpus, name, data_dir, seeds, args.extra_flags), runs_root,
      parallel=args.parallel)
  runs = [run_result(entry, os.path.normpath(os.path.join(runs_root, name, entry["run_dir"])))
          for entry in index["runs"]]
  summary = {}
  for policy in POLICIES:
    of_policy = [run for run in runs if run["policy"] == policy]
    summary[policy] = {split: nlu_accuracy.mean_and_std(of_policy, split, HEADLINE)
                       for split in ("dev", "test")}
  return {
      "benchmark": "multi_intent", "corpus": corpus,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": " ".join([sys.executable, "bench/multi_intent.py", f"--corpora={corpus}",
                           f"--seeds={','.join(str(s) for s in seeds)}",
                           f"--size_ratio={args.size_ratio:g}",
                           f"--corpus_seed={args.corpus_seed}"]
                          + (["--", *args.extra_flags] if args.extra_flags else [])),
      "git": code_version, "machine": provenance.machine(),
      "wall_seconds_this_call": round(time.time() - start, 1),
      "selection": "dev whole_frame_accuracy (multilabel: threshold chosen on dev); test once",
      "seeds": seeds,
      "generation": io_utils.read_json(os.path.join(data_dir, "generation.json")),
      "extra_flags": list(args.extra_flags),
      "summary": summary, "runs": runs,
  }


def format_table(report: dict) -> str:
  """The test table: mean +- std over seeds per policy."""
  columns = (("set acc", "intent_set_accuracy"), ("slot F1", "slot_f1"),
             ("frame", "whole_frame_accuracy"),
             ("set acc seen", "seen_combinations_intent_set_accuracy"),
             ("set acc unseen", "unseen_combinations_intent_set_accuracy"))
  lines = [f"{report['corpus'].upper()} multi-intent, TEST, mean +- std over seeds "
           f"{report['seeds']} (%)",
           f"{'policy':11s}" + "".join(f"{title:>17s}" for title, _ in columns)]
  for policy, splits in report["summary"].items():
    cells = []
    for _, key in columns:
      value = splits["test"][key]
      cells.append("-" if value["mean"] is None else
                   f"{100 * value['mean']:.2f} +- {100 * value['std']:.2f}")
    lines.append(f"{policy:11s}" + "".join(f"{cell:>17s}" for cell in cells))
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpora", default="snips,atis")
  parser.add_argument("--seeds", default="42,43")
  parser.add_argument("--corpus_seed", type=int, default=0, help="the generator's seed")
  parser.add_argument("--size_ratio", type=float, default=1.0,
                      help="generated split size / source split size")
  parser.add_argument("--data_root", default=os.environ.get("BERT_NLU_DATA_DIR")
                      or os.path.join(REPO, "..", "shared", "data"),
                      help="holds snips/ and atis/ (default $BERT_NLU_DATA_DIR, else "
                           "../shared/data)")
  parser.add_argument("--runs_root", default="runs/multi_intent")
  parser.add_argument("--parallel", type=int, default=1,
                      help="runs trained at once (bert_nlu.sweep --parallel); 2 on 2 cores is "
                           "1.22x faster in total (bench/results/sweep_parallel_minilm.json)")
  parser.add_argument("--results_dir", default=os.path.join(REPO, "bench", "results"))
  parser.add_argument("extra_flags", nargs="*", help="passed to run_bert_nlu.py after --")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  for corpus in args.corpora.split(","):
    report = run_corpus(corpus, args, seeds)
    os.makedirs(args.results_dir, exist_ok=True)
    io_utils.atomic_write_json(
        os.path.join(args.results_dir, f"multi_intent_{corpus}.json"), report)
    print(format_table(report), flush=True)


if __name__ == "__main__":
  main()
