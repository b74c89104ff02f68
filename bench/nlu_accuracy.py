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
tried; the published result is the committed config's). --resume keeps <runs_root>/<corpus>: a
stopped run continues from its last checkpoint and a finished one is only evaluated again (the
trainer's run manifest refuses a directory trained with another configuration); the result then
says `"resumed": true`, and its wall time and examples/sec are this call's (examples/sec null
when the call trained no step).

Over seeds (the figures the README reports):
  python bench/nlu_accuracy.py --corpora=snips,atis --seeds=42,43,44 [--parallel=2] \
      [--attempt=NAME -- FLAGS]
trains the recipe once per seed through the sweep engine (bert_nlu.sweep: content-addressed runs
in <runs_root>/runs/<hash>, a finished seed is reused, never retrained, a killed one resumes) and
writes bench/results/<corpus>_seeds.json (attempts: attempts/<corpus>_NAME_seeds.json): each
seed's dev and test metrics, their mean and standard deviation, and the best-dev seed. A seed
that file already records (same run hash: trained in an earlier session, its run directory gone)
is not retrained; adding a seed trains only it. With
several corpora and --parallel > 1, every corpus's seeds first train in one sweep (all_seeds), so
no core idles while a corpus's odd last seed trains alone.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import checkpoints, hooks, io_utils, metrics  # noqa: E402  pylint: disable=g-import-not-at-top
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


def run_corpus(corpus: str, runs_root: str, extra_flags, resume: bool = False) -> dict:
  """Fine-tunes configs/<corpus>.cfg (+ extra_flags) in <runs_root>/<corpus>; returns its result.

  resume=False starts from scratch (the directory is removed first); resume=True keeps it, so a
  stopped run continues from its checkpoint and a finished one is evaluated again."""
  output_dir = os.path.join(runs_root, corpus)
  resumed = resume and checkpoints.latest_step(output_dir) > 0
  if not resume:
    shutil.rmtree(output_dir, ignore_errors=True)
  os.makedirs(runs_root, exist_ok=True)
  flagfile = os.path.join("configs", f"{corpus}.cfg")
  command = [sys.executable, "run_bert_nlu.py", f"--flagfile={flagfile}",
             f"--output_dir={output_dir}", *extra_flags]
  log_path = output_dir + ".log"
  code_version = provenance.git_state()
  print(f"[{corpus}] {'resuming ' if resumed else ''}{' '.join(command)}  (log: {log_path})",
        flush=True)
  start = time.time()
  with open(log_path, "a" if resumed else "w") as log:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
  wall_seconds = time.time() - start
  if result.returncode != 0:
    raise RuntimeError(f"{corpus}: training failed (exit {result.returncode}), see {log_path}")
  with open(os.path.join(REPO, flagfile)) as f:
    flagfile_text = f.read()
  report = benchmark_result(corpus, os.path.join(REPO, output_dir), command=" ".join(command),
                            code_version=code_version, wall_seconds=wall_seconds,
                            extra_flags=extra_flags, flagfile_text=flagfile_text)
  report["resumed"] = resumed
  return report


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
      # None when this call trained no step (a finished run evaluated again with --resume).
      "train_examples_per_second": (round(results["training"]["train_examples_per_second"], 1)
                                    if results["training"].get("steps_run_this_session", 1)
                                    else None),
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


def seeds_sweep_text(corpus: str, name: str, seeds, extra_flags) -> str:
  """A sweep file (bert_nlu/sweep_spec.py) training configs/<corpus>.cfg once per seed."""
  lines = [f"# Written by bench/nlu_accuracy.py --seeds: configs/{corpus}.cfg once per seed.",
           f"name = {name}", "instances = 1", "metric = whole_frame_accuracy", "", "[flags]",
           f"--flagfile=configs/{corpus}.cfg", "--eval_on_test", *extra_flags, "", "[grid]"]
  lines += [f"--seed={seed}" for seed in seeds]
  return "\n".join(lines) + "\n"


def all_seeds_sweep_text(corpora, name: str, seeds, extra_flags) -> str:
  """One sweep file training every corpus's recipe once per seed (a variant per corpus).

  Each run resolves to exactly the configuration of its corpus's seeds_sweep_text run (same hash),
  so the per-corpus sweeps then reuse it. Trained in one sweep, `--parallel=2` keeps both cores
  busy to the end instead of leaving one idle for each corpus's odd last seed.
  """
  lines = ["# Written by bench/nlu_accuracy.py --seeds: every corpus's recipe once per seed.",
           f"name = {name}", "instances = 1", "metric = whole_frame_accuracy", ""]
  for corpus in corpora:
    lines += [f"[variant {corpus}]", f"--flagfile=configs/{corpus}.cfg", "--eval_on_test",
              *extra_flags, ""]
  lines += ["[grid]"] + [f"--seed={seed}" for seed in seeds]
  return "\n".join(lines) + "\n"


def mean_and_std(per_seed, split: str, keys=HEADLINE) -> dict:
  """{metric: {"mean", "std", "values"}} over seeds (std: sample standard deviation, n - 1).

  A metric some runs lack a value for (None: e.g. no unseen combination in that split) is
  averaged over the runs that have one; with none, its mean and std are None.
  """
  return {key: metrics.mean_and_std([run[split][key] for run in per_seed
                                     if run[split][key] is not None]) for key in keys}


def seeds_result_path(corpus: str, attempt: str = "") -> str:
  """bench/results/<corpus>_seeds.json, or attempts/<corpus>_<attempt>_seeds.json."""
  if attempt:
    return os.path.join(REPO, "bench", "results", "attempts", f"{corpus}_{attempt}_seeds.json")
  return os.path.join(REPO, "bench", "results", f"{corpus}_seeds.json")


def recorded_seed_runs(path: str) -> dict:
  """{run hash: per-seed entry} of a committed seeds result (entries that name their run's hash).

  A seed trained in an earlier session (its run directory gone with that machine) is taken from
  here instead of being retrained, as the sweep engine does with recorded sweep runs; the hash
  (configuration + data + weights) guarantees it is the run the recipe asks for.
  """
  if not os.path.exists(path):
    return {}
  return {entry["run_hash"]: entry for entry in io_utils.read_json(path).get("per_seed", [])
          if entry.get("run_hash")}


def write_recorded_results(entries, directory: str) -> None:
  """The entries of recorded_seed_runs as a sweep results file in `directory`, which
  `bert_nlu.sweep --recorded_results=<directory>` reads: those runs are not retrained."""
  runs = [{"name": f"seed{entry['seed']}", "hash": run_hash,
           "final": {"dev": entry["dev"], "test": entry["test"]}}
          for run_hash, entry in entries.items()]
  io_utils.atomic_write_json(os.path.join(directory, "recorded_seeds.json"),
                             {"sweep": "recorded_seeds", "runs": runs})


def run_sweep(label: str, name: str, sweep_text: str, runs_root: str, parallel: int = 1,
              recorded_dir: str = "", cores: int = 0):
  """Writes <runs_root>/<name>.sweep and trains (or reuses) its runs through the sweep engine.

  `parallel` runs that many configurations at once on `cores` cores (bert_nlu.sweep --parallel,
  --cores; 0 = all). `recorded_dir`:
  results files of runs not to retrain (bert_nlu.sweep --recorded_results; write_recorded_results);
  "" = every run is trained or reused from its directory.

  Returns:
    (the sweep's index.json, the command that ran it). Raises RuntimeError if the sweep failed.
  """
  os.makedirs(runs_root, exist_ok=True)
  sweep_file = os.path.join(runs_root, f"{name}.sweep")
  io_utils.atomic_write_text(sweep_file, sweep_text)
  # Never the committed sweep results (bench/results/sweeps): a seed's test metrics come from its
  # run directory or from the committed seeds result (recorded_dir), nothing else.
  command = [sys.executable, "-m", "bert_nlu.sweep", sweep_file, f"--runs_root={runs_root}",
             f"--recorded_results={recorded_dir}"]
  if parallel > 1:
    command.append(f"--parallel={parallel}")
  if cores:
    command.append(f"--cores={cores}")
  print(f"[{label}] {' '.join(command)}", flush=True)
  result = subprocess.run(command, cwd=REPO, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"{label}: the sweep {name} failed (exit {result.returncode}); run logs: "
                       f"{runs_root}/runs/<hash>/sweep.log")
  return io_utils.read_json(os.path.join(runs_root, name, "index.json")), command


def seeds_command(corpus: str, seeds, runs_root: str, extra_flags, attempt: str = "",
                  parallel: int = 1, cores: int = 0, retrain_recorded: bool = False) -> str:
  """The bench/nlu_accuracy.py command line that trains (or reuses) these seeds, as recorded in
  the seeds result: every option that decides where the runs are and which are trained, so a
  result naming run directories (e.g. --distill_teachers=<runs_root>/...) explains itself."""
  command = [sys.executable, "bench/nlu_accuracy.py", f"--corpora={corpus}",
             f"--seeds={','.join(str(s) for s in seeds)}", f"--runs_root={runs_root}"]
  if parallel > 1:
    command.append(f"--parallel={parallel}")
  if cores:
    command.append(f"--cores={cores}")
  if retrain_recorded:
    command.append("--retrain_recorded")
  if attempt:
    command.append(f"--attempt={attempt}")
  if extra_flags:
    command += ["--", *extra_flags]
  return " ".join(command)


def run_seeds(corpus: str, seeds, runs_root: str, extra_flags, attempt: str,
              parallel: int = 1, trained=None, use_recorded: bool = True, cores: int = 0) -> dict:
  """Trains (or reuses) one run per seed through the sweep engine; returns the seeds report.

  `parallel` seeds train at once (bert_nlu.sweep --parallel, threads divided between them).
  `trained`: {hash: index entry} of a sweep that trained these runs just before (all corpora at
  once): their state and training seconds are reported instead of "reused". A seed recorded in
  the committed result (recorded_seed_runs, e.g. trained in an earlier session) is not retrained:
  its entry is kept, marked "recorded" (use_recorded=False retrains it: an ensemble or a
  distillation needs its model)."""
  name = f"{corpus}_{attempt}_seeds" if attempt else f"{corpus}_seeds"
  code_version = provenance.git_state()
  start = time.time()
  recorded = recorded_seed_runs(seeds_result_path(corpus, attempt)) if use_recorded else {}
  with tempfile.TemporaryDirectory() as recorded_dir:
    if recorded:
      write_recorded_results(recorded, recorded_dir)
    index, command = run_sweep(corpus, name, seeds_sweep_text(corpus, name, seeds, extra_flags),
                               runs_root, parallel, recorded_dir if recorded else "", cores)
  with open(os.path.join(REPO, "configs", f"{corpus}.cfg")) as f:
    flagfile_text = f.read()
  per_seed = []
  for entry in sorted(index["runs"], key=lambda e: e["seed"]):
    if entry["state"] == "recorded":
      per_seed.append(dict(recorded[entry["hash"]], reused=True, recorded=True))
      continue
    if trained and entry["state"] == "reused" and entry["hash"] in trained:
      entry = dict(entry, state=trained[entry["hash"]]["state"],
                   seconds=trained[entry["hash"]]["seconds"])
    run_dir = os.path.normpath(os.path.join(runs_root, name, entry["run_dir"]))
    report = benchmark_result(corpus, run_dir, command=" ".join(command),
                              code_version=code_version, wall_seconds=entry["seconds"] or 0.0,
                              extra_flags=extra_flags, flagfile_text=flagfile_text)
    report["seed"] = entry["seed"]
    report["run_hash"] = entry["hash"]
    report["reused"] = entry["state"] == "reused"
    per_seed.append(report)
  best = max(per_seed, key=lambda r: r["dev"]["whole_frame_accuracy"])
  return {
      "benchmark": "nlu_accuracy_seeds", "corpus": corpus, "seeds": [r["seed"] for r in per_seed],
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": seeds_command(corpus, seeds, runs_root, extra_flags, attempt, parallel, cores,
                               retrain_recorded=not use_recorded),
      "git": code_version, "machine": provenance.machine(),
      "wall_seconds_this_call": round(time.time() - start, 1),
      "selection": "each seed: checkpoint by dev whole_frame_accuracy; recipes by the dev mean",
      "dev": mean_and_std(per_seed, "dev"), "test": mean_and_std(per_seed, "test"),
      "best_dev_seed": best["seed"],
      "targets_test_percent": TARGETS[corpus],
      "targets_met_by_test_mean": {k: 100 * mean_and_std(per_seed, "test")[k]["mean"] >= v
                                   for k, v in TARGETS[corpus].items()},
      "extra_flags": list(extra_flags),
      "per_seed": per_seed,
  }


def format_seeds_table(report: dict) -> str:
  lines = [f"{report['corpus'].upper()} over seeds {report['seeds']}: mean +- std (%)",
           f"{'split':8s} {'intent':>14s} {'slot F1':>14s} {'frame':>14s}"]
  for split in ("dev", "test"):
    cells = [f"{100 * report[split][k]['mean']:6.2f} +- {100 * report[split][k]['std']:4.2f}"
             for k in ("intent_accuracy", "slot_f1", "whole_frame_accuracy")]
    lines.append(f"{split:8s} " + " ".join(f"{c:>14s}" for c in cells))
  for run in report["per_seed"]:
    lines.append(f"  seed {run['seed']}: dev frame {100 * run['dev']['whole_frame_accuracy']:.2f}, "
                 f"test {100 * run['test']['intent_accuracy']:.2f} / "
                 f"{100 * run['test']['slot_f1']:.2f} / "
                 f"{100 * run['test']['whole_frame_accuracy']:.2f}"
                 + (" (reused)" if run["reused"] else ""))
  return "\n".join(lines)


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
  speed = report["train_examples_per_second"] or "-"
  lines.append(f"best dev step {report['best_step']} of {report['num_train_steps']}; wall "
               f"{report['wall_seconds'] / 60:.1f} min; train {speed} examples/s")
  return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
  """The command line of this script (main; seeds_command writes lines it parses)."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpora", default="snips,atis")
  parser.add_argument("--runs_root", default="runs/bench")
  parser.add_argument("--attempt", default="",
                      help="write bench/results/attempts/<corpus>_<attempt>.json instead")
  parser.add_argument("--seeds", default="",
                      help="comma-separated seeds: one run per seed through the sweep engine, "
                      "mean and std written to bench/results/<corpus>_seeds.json")
  parser.add_argument("--parallel", type=int, default=1,
                      help="with --seeds: train this many seeds at once (bert_nlu.sweep "
                      "--parallel; 2 on a 2-core machine)")
  parser.add_argument("--cores", type=int, default=0,
                      help="with --seeds: cores the runs may use (bert_nlu.sweep --cores; 0 = all), "
                      "e.g. 1 to train beside another job on a 2-core machine")
  parser.add_argument("--retrain_recorded", action="store_true",
                      help="with --seeds: retrain seeds the committed result records but whose run "
                      "directory is gone (bench/nlu_ensemble.py and distillation need the models)")
  parser.add_argument("--resume", action="store_true",
                      help="without --seeds: keep <runs_root>/<corpus> (continue a stopped run, "
                      "evaluate a finished one again) instead of starting from scratch")
  parser.add_argument("extra_flags", nargs="*", help="passed to run_bert_nlu.py after --")
  return parser


def main():
  parser = build_parser()
  args = parser.parse_args()
  if args.seeds and args.resume:
    parser.error("--resume is for single runs (--seeds always reuses or resumes its runs)")
  if args.seeds:
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
      parser.error("--seeds needs at least 2 distinct seeds")
    corpora = args.corpora.split(",")
    trained = None
    if len(corpora) > 1 and args.parallel > 1:
      name = f"all_{args.attempt}_seeds" if args.attempt else "all_seeds"
      recorded = {}
      for corpus in corpora if not args.retrain_recorded else ():
        recorded.update(recorded_seed_runs(seeds_result_path(corpus, args.attempt)))
      with tempfile.TemporaryDirectory() as recorded_dir:
        if recorded:
          write_recorded_results(recorded, recorded_dir)
        index, _ = run_sweep("all corpora", name, all_seeds_sweep_text(
            corpora, name, seeds, args.extra_flags), args.runs_root, args.parallel,
                             recorded_dir if recorded else "", args.cores)
      trained = {entry["hash"]: entry for entry in index["runs"]}
    for corpus in corpora:
      report = run_seeds(corpus, seeds, args.runs_root, args.extra_flags, args.attempt,
                         args.parallel, trained, use_recorded=not args.retrain_recorded,
                         cores=args.cores)
      io_utils.atomic_write_json(seeds_result_path(corpus, args.attempt), report)
      print(format_seeds_table(report), flush=True)
    return
  for corpus in args.corpora.split(","):
    report = run_corpus(corpus, args.runs_root, args.extra_flags, resume=args.resume)
    if args.attempt:
      path = os.path.join(REPO, "bench", "results", "attempts", f"{corpus}_{args.attempt}.json")
    else:
      path = os.path.join(REPO, "bench", "results", f"{corpus}.json")
    io_utils.atomic_write_json(path, report)
    print(format_table(report), flush=True)


if __name__ == "__main__":
  main()
