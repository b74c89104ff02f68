#!/usr/bin/env python
"""Prediction latency of exported models, side by side (interleaved, one utterance per call).

  python bench/predict_latency.py --export "softmax=runs/bench/atis" \
      --export "crf=runs/bench_crf/atis" --utterances=../shared/data/atis/test/seq.in \
      --name=predict_latency_crf

Each --export is "label=run directory" (its newest best export is loaded once with
bert_nlu.predict.NluPredictor). The utterances are predicted one at a time, end to end (raw text ->
spans), alternating between the models so that machine load hits them alike. Writes
bench/results/<name>.json (p50/p95/mean ms per model) and prints a table.
"""

import argparse
import datetime
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import hooks, io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
from bert_nlu.predict import NluPredictor  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)


def percentile(values, q):
  ordered = sorted(values)
  return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--export", action="append", required=True, help='"label=run directory"')
  parser.add_argument("--utterances", required=True, help="one utterance per line")
  parser.add_argument("--samples", type=int, default=300)
  parser.add_argument("--warmup", type=int, default=20)
  parser.add_argument("--name", default="predict_latency")
  args = parser.parse_args()
  code_version = provenance.git_state()
  predictors = {}
  for spec in args.export:
    label, _, run_dir = spec.partition("=")
    predictors[label] = (NluPredictor(hooks.latest_export(run_dir)), run_dir)
  with open(args.utterances, encoding="utf-8") as f:
    texts = [line.strip() for line in f if line.strip()]
  texts = (texts * (1 + (args.samples + args.warmup) // len(texts)))[:args.samples + args.warmup]
  timings = {label: [] for label in predictors}
  for i, text in enumerate(texts):
    for label, (predictor, _) in predictors.items():
      start = time.perf_counter()
      predictor.predict([text])
      if i >= args.warmup:
        timings[label].append(1000 * (time.perf_counter() - start))
  models = {label: {"run_dir": predictors[label][1],
                    "p50_ms": round(percentile(values, 0.5), 3),
                    "p95_ms": round(percentile(values, 0.95), 3),
                    "mean_ms": round(statistics.mean(values), 3)}
            for label, values in timings.items()}
  report = {"benchmark": "predict_latency",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), "git": code_version, "machine": provenance.machine(),
            "samples": args.samples, "utterances": args.utterances, "models": models}
  io_utils.atomic_write_json(os.path.join(REPO, "bench", "results", f"{args.name}.json"), report)
  print(f"{'model':12s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s}")
  for label, m in models.items():
    print(f"{label:12s} {m['p50_ms']:8.2f} {m['p95_ms']:8.2f} {m['mean_ms']:8.2f}")


if __name__ == "__main__":
  main()
