#!/usr/bin/env python
"""Accuracy benchmark: fine-tune all-MiniLM-L6-v2 on SNIPS and ATIS with the committed configs.

  python bench/nlu_accuracy.py [--corpora=snips,atis] [--runs_root=runs/bench]
  python bench/nlu_accuracy.py --corpora=snips --runs_root=runs/try --attempt=crf_dropout02 \
      -- --slot_crf --encoder_dropout=0.2      # a variant: extra flags after the config file

For each corpus it runs `run_bert_nlu.py --flagfile=configs/<corpus>.cfg` from scratch in
<runs_root>/<corpus> (selection on DEV whole-frame accuracy, TEST evaluated once with the best dev
checkpoint), then writes bench/results/<corpus>.json (metrics, targets, published figures, config,
git commit, wall time, examples/sec, the dev curve) and prints a comparison table. With
--attempt=NAME the result goes to bench/results/attempts/<corpus>_NAME.json instead (variants
tried; the published result is the committed config's).
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

from bert_nlu import hooks, io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

# Test-set figures (intent acc / slot F1 / whole-frame acc), from ../shared/DESIGN.md section 6.
PUBLISHED = {
    "snips": {
        "JointBERT paper, BERT-base (110M)": (98.6, 97.0, 92.8),
        "monologg JointBERT BERT-base (best on TEST)": (99.14, 96.90, 93.00),
        "monologg BERT-base + CRF": (98.57, 97.24, 93.57),
        "monologg DistilBERT (66M)": (98.00, 96.10, 91.00),
        "PyTorch/HF fine-tune of the same MiniLM (floor)": (98.0, 95.0, 88.1),
    },
    "atis": {
        "JointBERT paper, BERT-base (110M)": (97.5, 96.1, 88.2),
        "monologg JointBERT BERT-base (best on TEST)": (97.87, 95.59, 88.24),
        "monologg BERT-base + CRF": (97.98, 95.93, 88.58),
        "monologg DistilBERT (66M)": (97.76, 95.50, 87.68),
        "PyTorch/HF fine-tune of the same MiniLM (floor)": (97.8, 95.3, 87.1),
    },
}
TARGETS = {  # test set, percent
    "snips": {"whole_frame_accuracy": 91.0, "intent_accuracy": 98.0, "slot_f1": 95.5},
    "atis": {"whole_frame_accuracy": 87.5, "intent_accuracy": 97.0, "slot_f1": 95.0},
}
HEADLINE = ("intent_accuracy", "slot_precision", "slot_recall", "slot_f1", "whole_frame_accuracy",
            "token_f1_micro", "token_f1_macro")


def run_corpus(corpus: str, runs_root: str, extra_flags) -> dict:
  output_dir = os.path.join(runs_root, corpus)
  shutil.rmtree(output_dir, ignore_errors=True)
  os.makedirs(runs_root, exist_ok=True)
  flagfile = os.path.join("configs", f"{corpus}.cfg")
  command = [sys.executable, "run_bert_nlu.py", f"--flagfile={flagfile}",
             f"--output_dir={output_dir}", *extra_flags]
  log_path = output_dir + ".log"
  code_version = provenance.git_state()
  print(f"[{corpus}] {' '.join(command)}  (log: {log_path})", flush=True)
  start = time.time()
  with open(log_path, "w") as log:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
  wall_seconds = time.time() - start
  if result.returncode != 0:
    raise RuntimeError(f"{corpus}: training failed (exit {result.returncode}), see {log_path}")
  with open(os.path.join(REPO, flagfile)) as f:
    flagfile_text = f.read()
  return benchmark_result(corpus, os.path.join(REPO, output_dir), command=" ".join(command),
                          code_version=code_version, wall_seconds=wall_seconds,
                          extra_flags=extra_flags, flagfile_text=flagfile_text)


def benchmark_result(corpus: str, output_dir: str, command: str, code_version: dict,
                     wall_seconds: float, extra_flags, flagfile_text: str) -> dict:
  """The result JSON of one finished run, from what the trainer wrote in `output_dir`."""
  results = io_utils.read_json(os.path.join(output_dir, "eval_results.json"))
  targets = TARGETS[corpus]
  test = results["splits"]["test"]
  return {
      "benchmark": "nlu_accuracy",
      "corpus": corpus,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": command,
      "git": code_version,
      "machine": provenance.machine(),
      "model": "all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7M parameters), converted",
      "selection": results["selected_by"],
      "best_step": results["best_step"],
      "num_train_steps": results["training"]["num_train_steps"],
      "wall_seconds": round(wall_seconds, 1),
      "train_examples_per_second": round(results["training"]["train_examples_per_second"], 1),
      "dev": {k: results["splits"]["dev"][k] for k in HEADLINE},
      "test": {k: test[k] for k in HEADLINE},
      "test_per_intent": test["per_intent"],
      "targets_test_percent": targets,
      "targets_met": {k: 100 * test[k] >= v for k, v in targets.items()},
      "published_test_percent": {k: dict(zip(("intent_accuracy", "slot_f1",
                                              "whole_frame_accuracy"), v))
                                 for k, v in PUBLISHED[corpus].items()},
      "extra_flags": list(extra_flags),
      "dev_whole_frame_accuracy_by_step": io_utils.read_json(os.path.join(
          output_dir, hooks.BEST_DIR_NAME, hooks.EVALUATED_STEPS_FILE)),
      "flagfile": flagfile_text,
      "run_config": results["config"],
  }


def format_table(report: dict) -> str:
  corpus = report["corpus"]
  rows = [("bert-nlu (this run), dev", report["dev"]), ("bert-nlu (this run), TEST",
                                                        report["test"])]
  lines = [f"{corpus.upper()}: intent acc / slot F1 / whole-frame acc (%)",
           f"{'system':52s} {'intent':>7s} {'slot F1':>7s} {'frame':>7s}"]
  for name, m in rows:
    lines.append(f"{name:52s} {100 * m['intent_accuracy']:7.2f} {100 * m['slot_f1']:7.2f} "
                 f"{100 * m['whole_frame_accuracy']:7.2f}")
  for name, (intent, slot, frame) in PUBLISHED[corpus].items():
    lines.append(f"{name:52s} {intent:7.2f} {slot:7.2f} {frame:7.2f}")
  targets = report["targets_test_percent"]
  lines.append(f"{'target (test)':52s} {targets['intent_accuracy']:7.2f} "
               f"{targets['slot_f1']:7.2f} {targets['whole_frame_accuracy']:7.2f}   met: "
               + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in report["targets_met"].items()))
  lines.append(f"best dev step {report['best_step']} of {report['num_train_steps']}; wall "
               f"{report['wall_seconds'] / 60:.1f} min; train {report['train_examples_per_second']}"
               " examples/s")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpora", default="snips,atis")
  parser.add_argument("--runs_root", default="runs/bench")
  parser.add_argument("--attempt", default="",
                      help="write bench/results/attempts/<corpus>_<attempt>.json instead")
  parser.add_argument("extra_flags", nargs="*", help="passed to run_bert_nlu.py after --")
  args = parser.parse_args()
  for corpus in args.corpora.split(","):
    report = run_corpus(corpus, args.runs_root, args.extra_flags)
    if args.attempt:
      path = os.path.join(REPO, "bench", "results", "attempts", f"{corpus}_{args.attempt}.json")
    else:
      path = os.path.join(REPO, "bench", "results", f"{corpus}.json")
    io_utils.atomic_write_json(path, report)
    print(format_table(report), flush=True)


if __name__ == "__main__":
  main()
