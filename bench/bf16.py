#!/usr/bin/env python
"""float32 vs bfloat16 (`--bf16`) side by side in one run, on a small SNIPS subset.

  python bench/bf16.py                    # MiniLM, 2,000 SNIPS train / 300 dev utterances, 1 epoch
  python bench/bf16.py --smoke            # a tiny random BERT, 64 / 32 utterances (seconds)

Each precision runs in its own process (TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at start, and
a crash of one precision must not take the others down), one after the other:
  float32      the plain run;
  bf16         the same with --bf16, as a user gets it on THIS machine: on a CPU without bfloat16
               instructions (or without oneDNN) that is the float32 fallback, recorded as such;
  bf16_forced  only where bf16 falls back: the rewrite forced on anyway (TF_ENABLE_ONEDNN_OPTS=1
               and the detection told the CPU has avx512_bf16), i.e. what emulated bfloat16 costs.
For each: training examples/s, time to the dev-selected model (train.run: training, a dev
evaluation per checkpoint, export of the best), its dev metrics, then the exported model's predict
latency (one utterance per call, p50/p95) and batch throughput (utterances/s in calls of
--predict_batch_size). The ops the rewrite converts in the model's graphs (bert_nlu.mixed_precision,
forced) and the CPU model and flags are recorded too. Writes bench/results/<name>.json.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import cpu_features, io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

PRECISIONS = ("float32", "bf16", "bf16_forced")
SPLIT_FILES = ("seq.in", "seq.out", "label")
# What the forced run's detection is told: this CPU plus AVX512_BF16.
FORCED_FLAGS_SUFFIX = " avx512_bf16"


def percentile(values, q):
  ordered = sorted(values)
  return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def write_subset(source_dir: str, target_dir: str, sizes) -> None:
  """The first N utterances of each split of a seq corpus (train, dev), test = dev."""
  for split, size in sizes:
    os.makedirs(os.path.join(target_dir, split), exist_ok=True)
    for name in SPLIT_FILES:
      with open(os.path.join(source_dir, split, name), encoding="utf-8") as f:
        lines = f.read().splitlines()[:size]
      with open(os.path.join(target_dir, split, name), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
  shutil.copytree(os.path.join(target_dir, "dev"), os.path.join(target_dir, "test"))


def worker(args) -> dict:
  """One precision: train.run on the subset, then the export's predict latency and throughput."""
  from bert_nlu import predict, train  # pylint: disable=g-import-not-at-top
  from bert_nlu.hooks import latest_export  # pylint: disable=g-import-not-at-top
  from bert_nlu.testing import tiny_run_config  # pylint: disable=g-import-not-at-top
  if args.worker == "bf16_forced":
    real_cpuinfo = cpu_features.read_cpuinfo()
    cpu_features.read_cpuinfo = lambda: real_cpuinfo.replace("flags\t\t:", "flags\t\t:" +
                                                             FORCED_FLAGS_SUFFIX, 1)
  output_dir = os.path.join(args.work_dir, args.worker)
  config = tiny_run_config(
      args.bert_dir, args.corpus_dir, output_dir, max_seq_length=args.max_seq_length,
      model_fields={"bf16": args.worker != "float32", "slot_crf": args.slot_crf},
      train_batch_size=args.train_batch_size, eval_batch_size=64,
      learning_rate=args.learning_rate, num_train_epochs=args.epochs,
      save_checkpoints_steps=args.save_checkpoints_steps, save_summary_steps=10, seed=42)
  start = time.time()
  results = train.run(config)
  seconds_to_model = time.time() - start
  with open(os.path.join(args.corpus_dir, "dev", "seq.in"), encoding="utf-8") as f:
    texts = [line.strip() for line in f if line.strip()]
  predictor = predict.NluPredictor(latest_export(output_dir))
  latencies = []
  for i, text in enumerate((texts * (1 + (args.latency_samples + 10) // len(texts)))
                           [:args.latency_samples + 10]):
    begin = time.perf_counter()
    predictor.predict([text])
    if i >= 10:  # the first calls build and optimize the function
      latencies.append(1000 * (time.perf_counter() - begin))
  begin = time.perf_counter()
  for first in range(0, len(texts), args.predict_batch_size):
    predictor.predict(texts[first:first + args.predict_batch_size])
  batch_seconds = time.perf_counter() - begin
  dev = results["splits"]["dev"]
  return {
      "precision": results["precision"],
      "predictor_bf16_active": predictor.bf16_support.active,
      "train_examples_per_second": round(results["training"]["train_examples_per_second"], 2),
      "train_steps": results["training"]["num_train_steps"],
      "seconds_to_dev_selected_model": round(seconds_to_model, 1),
      "best_step": results["best_step"],
      "dev": {name: round(dev[name], 4) for name in
              ("intent_accuracy", "slot_f1", "whole_frame_accuracy")},
      "predict_latency_ms": {"p50": round(percentile(latencies, 0.5), 3),
                             "p95": round(percentile(latencies, 0.95), 3),
                             "samples": len(latencies)},
      "predict_batch_utterances_per_second": round(len(texts) / batch_seconds, 1),
  }


def run_precision(precision: str, args, corpus_dir: str, work_dir: str) -> dict:
  """Runs `worker` for one precision in a fresh process; its JSON result or the failure."""
  env = dict(os.environ, PYTHONPATH=REPO)
  if precision == "bf16_forced":
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
  command = [sys.executable, os.path.abspath(__file__), f"--worker={precision}",
             f"--corpus_dir={corpus_dir}", f"--work_dir={work_dir}", f"--bert_dir={args.bert_dir}",
             f"--epochs={args.epochs}", f"--train_batch_size={args.train_batch_size}",
             f"--learning_rate={args.learning_rate}", f"--max_seq_length={args.max_seq_length}",
             f"--save_checkpoints_steps={args.save_checkpoints_steps}",
             f"--latency_samples={args.latency_samples}",
             f"--predict_batch_size={args.predict_batch_size}",
             "--slot_crf" if args.slot_crf else "--no-slot_crf"]
  process = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if process.returncode != 0:
    return {"failed": f"exit {process.returncode}", "stderr_tail": process.stderr[-2000:]}
  return json.loads(process.stdout.strip().splitlines()[-1])


def converted_ops(bert_config_file: str, slot_crf: bool) -> dict:
  """`python -m bert_nlu.mixed_precision` with oneDNN on: the bfloat16 ops per model part."""
  env = dict(os.environ, PYTHONPATH=REPO, TF_ENABLE_ONEDNN_OPTS="1")
  process = subprocess.run(
      [sys.executable, "-m", "bert_nlu.mixed_precision", f"--bert_config_file={bert_config_file}",
       "--slot_crf" if slot_crf else "--noslot_crf"],
      env=env, capture_output=True, text=True, check=False, cwd=REPO)
  if process.returncode != 0:
    return {"failed": f"exit {process.returncode}", "stderr_tail": process.stderr[-2000:]}
  return json.loads(process.stdout)


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--smoke", action="store_true",
                      help="tiny random BERT, 64 train / 32 dev utterances, a few latency samples")
  parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data", "snips"))
  parser.add_argument("--bert_dir", default="")
  parser.add_argument("--train_examples", type=int, default=2000)
  parser.add_argument("--dev_examples", type=int, default=300)
  parser.add_argument("--epochs", type=float, default=1.0)
  parser.add_argument("--train_batch_size", type=int, default=32)
  parser.add_argument("--learning_rate", type=float, default=2e-4)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--save_checkpoints_steps", type=int, default=1000)
  parser.add_argument("--slot_crf", action=argparse.BooleanOptionalAction, default=True)
  parser.add_argument("--latency_samples", type=int, default=200)
  parser.add_argument("--predict_batch_size", type=int, default=32)
  parser.add_argument("--precisions", default=",".join(PRECISIONS))
  parser.add_argument("--name", default="bf16")
  parser.add_argument("--worker", choices=PRECISIONS, help=argparse.SUPPRESS)
  parser.add_argument("--corpus_dir", help=argparse.SUPPRESS)
  parser.add_argument("--work_dir", help=argparse.SUPPRESS)
  return parser.parse_args()


def main():
  args = parse_args()
  if args.worker:
    print(json.dumps(worker(args)))
    return
  code_version = provenance.git_state()
  cpuinfo = cpu_features.read_cpuinfo()
  onednn_default = cpu_features.onednn_enabled()
  here = cpu_features.bf16_support(True, cpuinfo, onednn_default)
  work_dir = tempfile.mkdtemp(prefix="bench_bf16_")
  try:
    corpus_dir = os.path.join(work_dir, "corpus")
    if args.smoke:
      from bert_nlu import testing  # pylint: disable=g-import-not-at-top
      args.bert_dir = testing.make_tiny_bert(os.path.join(work_dir, "tiny_bert"),
                                             testing.corpus_vocabulary())
      testing.make_corpus(corpus_dir, sizes=(("train", 64), ("dev", 32), ("test", 32)))
      args.latency_samples, args.max_seq_length = min(args.latency_samples, 20), 16
    else:
      from bert_nlu.convert import default_cache_dir  # pylint: disable=g-import-not-at-top
      args.bert_dir = args.bert_dir or os.path.join(default_cache_dir(), "all-MiniLM-L6-v2")
      write_subset(args.data_dir, corpus_dir,
                   (("train", args.train_examples), ("dev", args.dev_examples)))
    precisions = [p for p in args.precisions.split(",")
                  if p != "bf16_forced" or not here.active]  # forcing only where bf16 falls back
    runs = {precision: run_precision(precision, args, corpus_dir, work_dir)
            for precision in precisions}
    ops = converted_ops(os.path.join(args.bert_dir, "bert_config.json"), args.slot_crf)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  report = {
      "benchmark": "bf16",
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": " ".join(sys.argv), "git": code_version, "machine": provenance.machine(),
      "smoke": args.smoke,
      "cpu": {"model": cpu_features.cpu_model(cpuinfo),
              "bf16_instructions": list(here.bf16_instructions),
              "flags": sorted(cpu_features.cpu_flags(cpuinfo)),
              "onednn_enabled_by_default": onednn_default,
              "bf16_supported": here.active, "why_not": here.reason},
      "setup": {"bert_dir": args.bert_dir,
                "data": "tiny synthetic" if args.smoke else args.data_dir,
                "train_examples": 64 if args.smoke else args.train_examples,
                "dev_examples": 32 if args.smoke else args.dev_examples, "epochs": args.epochs,
                "train_batch_size": args.train_batch_size, "learning_rate": args.learning_rate,
                "slot_crf": args.slot_crf, "max_seq_length": args.max_seq_length,
                "predict_batch_size": args.predict_batch_size},
      "runs": runs,
      "bf16_ops_forced": ops,
  }
  if "float32" in runs and all("failed" not in run for run in runs.values()):
    base = runs["float32"]
    report["relative_to_float32"] = {
        precision: {
            "train_examples_per_second": round(run["train_examples_per_second"] /
                                               base["train_examples_per_second"], 3),
            "seconds_to_dev_selected_model": round(run["seconds_to_dev_selected_model"] /
                                                   base["seconds_to_dev_selected_model"], 3),
            "predict_latency_p50": round(run["predict_latency_ms"]["p50"] /
                                         base["predict_latency_ms"]["p50"], 3)}
        for precision, run in runs.items() if precision != "float32"}
  io_utils.atomic_write_json(os.path.join(REPO, "bench", "results", f"{args.name}.json"), report)
  print(f"{'precision':12s} {'bf16 on':>7s} {'train ex/s':>10s} {'to model s':>10s} "
        f"{'dev frame':>9s} {'p50 ms':>8s} {'p95 ms':>8s} {'batch utt/s':>11s}")
  for precision, run in runs.items():
    if "failed" in run:
      print(f"{precision:12s} FAILED {run['failed']}")
      continue
    print(f"{precision:12s} {str(run['precision']['active']):>7s} "
          f"{run['train_examples_per_second']:10.1f} {run['seconds_to_dev_selected_model']:10.1f} "
          f"{run['dev']['whole_frame_accuracy']:9.4f} {run['predict_latency_ms']['p50']:8.2f} "
          f"{run['predict_latency_ms']['p95']:8.2f} "
          f"{run['predict_batch_utterances_per_second']:11.1f}")


if __name__ == "__main__":
  main()
