#!/usr/bin/env python
"""Seed-ensemble benchmark: the runs `bench/nlu_accuracy.py --seeds` trained, predicting as one.

  python bench/nlu_ensemble.py --corpora=snips,atis [--runs_root=runs/bench] [--attempt=NAME]

For each corpus it takes every seed of the seeds sweep (<runs_root>/<corpus>_seeds/index.json, or
<corpus>_<attempt>_seeds), combines their best exports with `bert_nlu.ensemble` (averaged intent
distributions; averaged CRF potentials + Viterbi, or averaged per-word slot distributions), scores
the ensemble on dev and test with the trainer's whole-set word-level metrics, times it at batch 1
against one member (K members cost K times the work), and writes bench/results/<corpus>_ensemble.json
(attempts: attempts/<corpus>_<attempt>_ensemble.json) next to the seeds' mean from
bench/results/<corpus>_seeds.json, which it prints side by side. Nothing is trained.

  python bench/nlu_ensemble.py --corpora=atis --attempt=aug05 --constrain_slots_to_intent

instead scores intent-constrained slot decoding (`bert_nlu.slot_constraints`: each utterance's
slots decoded with only the slot types the training split shows with its predicted intent) on
every seed alone and on the ensemble, each beside the same model decoded without the constraint,
with the mean and std over seeds; it writes <corpus>[_<attempt>]_constrained.json. A decoding
choice, judged on the dev mean like a recipe.
"""

import argparse
import datetime
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import nlu_accuracy  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

HEADLINE = ("intent_accuracy", "slot_f1", "whole_frame_accuracy")


def seed_run_dirs(runs_root: str, sweep_name: str):
  """[(seed, run directory)] of a finished seeds sweep, in seed order.

  Raises:
    FileNotFoundError: the sweep has no index under `runs_root`, or a run has not finished.
  """
  index_path = os.path.join(runs_root, sweep_name, "index.json")
  if not os.path.exists(index_path):
    raise FileNotFoundError(f"{index_path}: no such seeds sweep; run bench/nlu_accuracy.py "
                            "--seeds first with the same --runs_root")
  runs = []
  for entry in sorted(io_utils.read_json(index_path)["runs"], key=lambda e: e["seed"]):
    directory = os.path.normpath(os.path.join(runs_root, sweep_name, entry["run_dir"]))
    if entry.get("state") == "recorded":
      raise FileNotFoundError(f"seed {entry['seed']} was trained in an earlier session and only its "
                              "metrics are recorded: an ensemble needs its model, so run "
                              "bench/nlu_accuracy.py --seeds with --retrain_recorded first")
    if not os.path.exists(os.path.join(directory, "eval_results.json")):
      raise FileNotFoundError(f"{directory}: seed {entry['seed']} has not finished")
    runs.append((entry["seed"], directory))
  return runs


def seed_members(corpus: str, runs_root: str, attempt: str):
  """(seeds sweep name, [(seed, run directory)], [NluPredictor of each run's best export])."""
  from bert_nlu.hooks import latest_export  # pylint: disable=g-import-not-at-top
  from bert_nlu.predict import NluPredictor  # pylint: disable=g-import-not-at-top
  sweep_name = f"{corpus}_{attempt}_seeds" if attempt else f"{corpus}_seeds"
  runs = seed_run_dirs(runs_root, sweep_name)
  return sweep_name, runs, [NluPredictor(latest_export(directory)) for _, directory in runs]


def compare_rows(ensemble: dict, seeds_report: dict):
  """[(row label, split, {metric: percent})]: the seeds' mean, the best-dev seed, the ensemble."""
  rows = []
  for split in ("dev", "test"):
    if seeds_report:
      rows.append((f"mean of {len(seeds_report['seeds'])} seeds", split,
                   {k: 100 * seeds_report[split][k]["mean"] for k in HEADLINE}))
      best = [r for r in seeds_report["per_seed"] if r["seed"] == seeds_report["best_dev_seed"]]
      rows.append((f"best-dev seed ({seeds_report['best_dev_seed']})", split,
                   {k: 100 * best[0][split][k] for k in HEADLINE}))
    rows.append((f"ensemble of {ensemble['num_members']}", split,
                 {k: 100 * ensemble["splits"][split][k] for k in HEADLINE}))
  return rows


def format_table(corpus: str, rows, latency: dict) -> str:
  lines = [f"{corpus.upper()}: intent acc / slot F1 / whole frame (%)",
           f"{'split':6s} {'model':28s} {'intent':>7s} {'slot F1':>8s} {'frame':>7s}"]
  for label, split, values in rows:
    lines.append(f"{split:6s} {label:28s} {values['intent_accuracy']:7.2f} "
                 f"{values['slot_f1']:8.2f} {values['whole_frame_accuracy']:7.2f}")
  if latency:
    lines.append(f"batch-1 latency p50: ensemble {latency['ensemble']['p50']:.1f} ms, one member "
                 f"{latency['single_member']['p50']:.1f} ms "
                 f"({latency['ensemble']['p50'] / latency['single_member']['p50']:.2f}x)")
  return "\n".join(lines)


def run_corpus(corpus: str, runs_root: str, attempt: str, data_root: str,
               latency_utterances: int) -> dict:
  from bert_nlu import ensemble  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import readers  # pylint: disable=g-import-not-at-top
  sweep_name, runs, members = seed_members(corpus, runs_root, attempt)
  predictor = ensemble.EnsemblePredictor(members)
  data_dir = os.path.join(data_root, corpus)
  splits = readers.read_seq_corpus(data_dir, splits=("dev", "test"))
  start = time.time()
  scored = {split: ensemble.evaluate(predictor, list(splits[split].examples))
            for split in ("dev", "test")}
  evaluation_seconds = time.time() - start
  texts = [" ".join(e.words) for e in splits["dev"].examples[:latency_utterances]]
  latency = ({"ensemble": ensemble.latency_ms(predictor, texts),
              "single_member": ensemble.latency_ms(members[0], texts)} if texts else {})
  seeds_path = nlu_accuracy.seeds_result_path(corpus, attempt)
  seeds_report = io_utils.read_json(seeds_path) if os.path.exists(seeds_path) else {}
  result = {
      "benchmark": "nlu_ensemble", "corpus": corpus,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": " ".join([sys.executable, "bench/nlu_ensemble.py", f"--corpora={corpus}"]
                          + ([f"--attempt={attempt}"] if attempt else [])),
      "git": provenance.git_state(), "machine": provenance.machine(),
      "seeds_sweep": sweep_name, "seeds": [seed for seed, _ in runs],
      "num_members": len(members),
      "combination": ("intent: averaged softmax; slots: averaged CRF potentials + Viterbi"
                      if members[0].takes_first_piece_mask else
                      "intent: averaged softmax; slots: averaged per-word distributions"),
      "splits": scored,
      "evaluation_seconds_dev_and_test": round(evaluation_seconds, 1),
      "latency_ms": latency,
      "seeds_results": os.path.relpath(seeds_path, REPO) if seeds_report else None,
  }
  result["comparison_percent"] = [
      {"model": label, "split": split, **{k: round(v, 2) for k, v in values.items()}}
      for label, split, values in compare_rows(result, seeds_report)]
  return result


def constrained_result(corpus: str, runs_root: str, attempt: str, data_root: str) -> dict:
  """Each seed alone and the ensemble, decoded without and with the intent constraint."""
  from bert_nlu import ensemble, slot_constraints  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import readers  # pylint: disable=g-import-not-at-top
  sweep_name, runs, members = seed_members(corpus, runs_root, attempt)
  splits = readers.read_seq_corpus(os.path.join(data_root, corpus))
  allowed = slot_constraints.allowed_tags(splits["train"].examples, members[0].label_maps)
  start = time.time()

  def scores(predictors, allowed_tags):
    predictor = ensemble.EnsemblePredictor(predictors, allowed_tags)
    return {split: {k: v for k, v in ensemble.evaluate(
        predictor, list(splits[split].examples)).items() if k in nlu_accuracy.HEADLINE}
            for split in ("dev", "test")}

  free = np.ones_like(allowed)  # explicitly none (None would take a mask the exports recorded)
  per_seed = [{"seed": seed, "run_dir": directory, "unconstrained": scores([member], free),
               "constrained": scores([member], allowed)}
              for (seed, directory), member in zip(runs, members)]
  summary = {variant: {split: nlu_accuracy.mean_and_std(
      [{split: row[variant][split]} for row in per_seed], split, HEADLINE)
                       for split in ("dev", "test")}
             for variant in ("unconstrained", "constrained")}
  return {
      "benchmark": "nlu_constrained_decoding", "corpus": corpus,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": " ".join([sys.executable, "bench/nlu_ensemble.py", f"--corpora={corpus}",
                           "--constrain_slots_to_intent"]
                          + ([f"--attempt={attempt}"] if attempt else [])),
      "git": provenance.git_state(), "machine": provenance.machine(),
      "seeds_sweep": sweep_name, "seeds": [seed for seed, _ in runs],
      "allowed_tags_per_intent": {
          intent: int(row.sum()) for intent, row in zip(members[0].label_maps.intents, allowed)},
      "num_tags": len(members[0].label_maps.slot_tags),
      "per_seed": per_seed, "over_seeds": summary,
      "ensemble": {"unconstrained": scores(members, free), "constrained": scores(members, allowed)},
      "evaluation_seconds": round(time.time() - start, 1),
  }


def format_constrained_table(corpus: str, result: dict) -> str:
  lines = [f"{corpus.upper()}: slots decoded without / with the intent constraint "
           "(intent acc / slot F1 / whole frame, %)",
           f"{'split':6s} {'model':34s} {'intent':>7s} {'slot F1':>8s} {'frame':>7s}"]

  def row(split, label, values):
    lines.append(f"{split:6s} {label:34s} " + " ".join(f"{100 * values[k]:7.2f}" for k in HEADLINE))

  for split in ("dev", "test"):
    for variant in ("unconstrained", "constrained"):
      for seed_row in result["per_seed"]:
        row(split, f"seed {seed_row['seed']}, {variant}", seed_row[variant][split])
      means = result["over_seeds"][variant][split]
      row(split, f"mean of seeds, {variant}", {k: means[k]["mean"] for k in HEADLINE})
      row(split, f"ensemble, {variant}", result["ensemble"][variant][split])
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpora", default="snips,atis")
  parser.add_argument("--runs_root", default="runs/bench")
  parser.add_argument("--attempt", default="", help="the seeds of an --attempt of nlu_accuracy")
  parser.add_argument("--data_root", default=os.environ.get(
      "BERT_NLU_DATA_DIR", os.path.join(os.path.dirname(REPO), "shared", "data")))
  parser.add_argument("--latency_utterances", type=int, default=100)
  parser.add_argument("--constrain_slots_to_intent", action="store_true",
                      help="score intent-constrained slot decoding per seed and ensemble instead")
  args = parser.parse_args()
  for corpus in args.corpora.split(","):
    if args.constrain_slots_to_intent:
      result = constrained_result(corpus, args.runs_root, args.attempt, args.data_root)
      name = f"{corpus}_{args.attempt}_constrained.json" if args.attempt else (
          f"{corpus}_constrained.json")
      folder = ("bench", "results", "attempts") if args.attempt else ("bench", "results")
      io_utils.atomic_write_json(os.path.join(REPO, *folder, name), result)
      print(format_constrained_table(corpus, result), flush=True)
      continue
    result = run_corpus(corpus, args.runs_root, args.attempt, args.data_root,
                        args.latency_utterances)
    name = (f"{corpus}_{args.attempt}_ensemble.json" if args.attempt
            else f"{corpus}_ensemble.json")
    folder = ("bench", "results", "attempts") if args.attempt else ("bench", "results")
    io_utils.atomic_write_json(os.path.join(REPO, *folder, name), result)
    rows = [(r["model"], r["split"], r) for r in result["comparison_percent"]]
    print(format_table(corpus, rows, result["latency_ms"]), flush=True)


if __name__ == "__main__":
  main()
