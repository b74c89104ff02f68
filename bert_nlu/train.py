"""The trainer: data -> TFRecords -> Estimator train_and_evaluate -> best checkpoint -> results.

`run(config)` is the whole job of run_bert_nlu.py, for every task (`config.data.task`: NLU joint
intent + slots, or a GLUE task):
  1. read the corpus, build the label maps (NLU: from train; GLUE: the task's fixed labels), build
     or reuse the TFRecord caches;
  2. train with periodic dev evaluation (whole-set metrics): in process, of the training
     session's weights every eval_every_steps (bert_nlu/evaluation.py), or of every new
     checkpoint (Estimator train_and_evaluate); keep the best model by the task's selection
     metric (NLU: dev whole-frame accuracy; GLUE: the GLUE convention,
     `metrics.GLUE_SELECTION_METRICS`) as a SavedModel export + kept checkpoint;
  3. evaluate the BEST checkpoint on the evaluation splits (dev; MNLI also dev_mismatched; test
     when asked) and write eval_results.json;
  4. optionally predict raw text with the exported SavedModel.
What differs between tasks is the task object (`make_task`): reader, labels, feature encoding,
head, losses, metrics collector, selection metric, prediction rows.
"""

import contextlib
import dataclasses
import functools
import json
import math
import os
import signal
import threading
import time
from typing import Dict, List, Optional, Sequence

from bert_nlu import checkpoints, cpu_features, distill, distribute, evaluation
from bert_nlu import hooks, hparams, io_utils, memory, metrics, optimization, run_dir
from bert_nlu import slot_constraints, warm_start
from bert_nlu.compat import make_tokenizer, tf
from bert_nlu.config import GLUE_TASK, RunConfig
from bert_nlu.data import augment, glue, input_pipeline, limit, readers, stats, tfrecords
from bert_nlu.data.examples import Split
from bert_nlu.data.labels import LabelMaps
from bert_nlu.model import LOSS_COLLECTION, encoder_config, model_fn_builder, parameter_counts
from bert_nlu.model import session_config as model_session_config
from bert_nlu.optimization import GRADIENT_NORM_COLLECTION, LOSS_SCALE_COLLECTION
from bert_nlu.tasks.glue import GlueTask
from bert_nlu.tasks.nlu import INTENT_THRESHOLD_METRIC, NluTask

EVAL_NAME = "dev"
RESULTS_FILE = "eval_results.json"
PREDICT_CONFIG_FILE = "predict_config.json"


@dataclasses.dataclass
class PreparedData:
  """Splits, label maps, tokenizer, TFRecord caches and the task of a run.

  Attributes:
    label_maps: `LabelMaps` (NLU) or `glue.GlueLabels`.
    task: `NluTask` or `GlueTask` (see `make_task`).
  """
  splits: Dict[str, Split]
  label_maps: object
  caches: Dict[str, tfrecords.CachedSplit]
  tokenizer: object
  task: object


def read_splits(config: RunConfig, names: Sequence[str]) -> Dict[str, Split]:
  data = config.data
  if data.task == GLUE_TASK:
    return glue.read_glue_splits(data.data_dir, data.glue_task, names)
  if data.corpus_format == "seq":
    return readers.read_seq_corpus(data.data_dir, splits=tuple(names),
                                   multi_intent_policy=data.multi_intent_policy)
  if data.corpus_format == "snips_json":
    return {name: readers.read_snips_json_split(data.data_dir, name) for name in names}
  raise ValueError(f"unknown corpus_format {data.corpus_format!r} (expected seq or snips_json)")


def build_label_maps(config: RunConfig, train_split: Split):
  """NLU: intents and slot tags seen in train (with config.model.keep_init_labels: after those of
  the run it continues from). GLUE: the task's labels as GLUE defines them."""
  if config.data.task == GLUE_TASK:
    return glue.GlueLabels.for_task(glue.canonical_task_name(config.data.glue_task))
  label_maps = LabelMaps.from_labels(
      train_split.intents(), (e.slot_tags for e in train_split.examples),
      multilabel=config.data.multi_intent_policy == "multilabel")
  if config.model.keep_init_labels:
    label_maps = warm_start.kept_label_maps(config.model.init_run_dir, label_maps)
  return label_maps


def evaluation_splits(config: RunConfig) -> List[str]:
  """The splits the best checkpoint is evaluated on: "dev" first (it selects the checkpoint),
  then MNLI's dev_mismatched, then "test" with eval_on_test."""
  names = [EVAL_NAME]
  if config.data.task == GLUE_TASK:
    layout = glue.GLUE_LAYOUTS[glue.canonical_task_name(config.data.glue_task)]
    names = list(layout.evaluation_splits)
  return names + (["test"] if config.eval_on_test else [])


def read_corpus(config: RunConfig, split_names: Sequence[str]):
  """Reads train (always, for the label maps) and `split_names`; returns (splits, label_maps).

  With config.data.train_examples, splits["train"] holds that fixed subset of train. With
  config.data.limit_data, splits["train"] holds the limited (and resampled) training data,
  and the label maps are those of the limited data (unless config.model.keep_init_labels adds the
  earlier run's); slot-substitution augmentation, if on, then augments that data.
  """
  names = ["train"] + [n for n in split_names if n != "train"]
  splits = read_splits(config, names)
  for split in splits.values():
    if split.bad_bytes:
      tf.logging.warning("%s: replaced %d undecodable bytes", split.name, split.bad_bytes)
  data = config.data
  if data.train_examples:
    read_size = len(splits["train"])
    splits["train"] = limit.subset_examples(splits["train"], data.train_examples)
    tf.logging.info("--train_examples: training on %d of the %d training examples",
                    len(splits["train"]), read_size)
  if data.limit_data:
    read = splits["train"]
    limits, seed = data.limit_data, config.train.seed
    splits["train"] = (limit.resample_limited(read, limits, seed) if data.resample
                       else limit.limit_intents(read, limits, seed))
    tf.logging.info("--limit_data: training intents %s (read: %s)",
                    limit.intent_counts(splits["train"]), limit.intent_counts(read))
  if data.augment_slot_substitution > 0:
    original_size = len(splits["train"])
    splits["train"] = augment.augment_split(
        splits["train"], data.augment_slot_substitution, config.train.seed,
        copies=data.augment_copies, same_intent=data.augment_same_intent)
    tf.logging.info("train: slot-substitution augmentation added %d copies to %d examples",
                    len(splits["train"]) - original_size, original_size)
  return splits, build_label_maps(config, splits["train"])


def resolve_max_seq_length(config: RunConfig, splits: Dict[str, Split],
                           position_limit: int, tokenizer=None):
  """Reports truncation per split and resolves --max_seq_length=auto.

  With config.data.auto_max_seq_length the length becomes the smallest that truncates no
  train/dev/test example (test is read for this if it is not evaluated), capped at
  `position_limit` and config.data.max_seq_length. A split that still loses words gets a warning
  naming the lengths that cover 100% and 99.9% of the examples. `tokenizer`: the run's (default:
  a new one).

  Returns:
    (config with the resolved max_seq_length, {split: LengthReport at that length}).
  """
  data = config.data
  if data.task == GLUE_TASK:  # pairs are counted as they are truncated (tfrecords.CachedSplit)
    return config, {}
  tokenizer = tokenizer or make_tokenizer(config.model.vocab_file, config.model.do_lower_case)
  length_splits = dict(splits)
  if data.auto_max_seq_length and "test" not in length_splits and data.corpus_format == "seq":
    length_splits.update(read_splits(config, ["test"]))
  reports = {name: stats.length_report(split, tokenizer, data.max_seq_length)
             for name, split in length_splits.items()}
  if data.auto_max_seq_length:
    length = stats.covering_max_seq_length(reports.values(),
                                           min(position_limit, data.max_seq_length))
    config = dataclasses.replace(config, data=dataclasses.replace(data, max_seq_length=length))
    reports = {name: report.at(length) for name, report in reports.items()}
    tf.logging.warning("max_seq_length=auto: %d word pieces (the longest of %s)", length,
                       "/".join(reports))
  warning = stats.truncation_warning(list(reports.values()))
  if warning:
    tf.logging.warning("%s", warning)
  return config, reports


def length_summary(reports) -> Dict[str, Dict]:
  """{split: {examples, truncated, words_lost, longest, covers_99_9}} for eval_results.json."""
  return {name: {"examples": len(r.lengths), "truncated": r.num_truncated,
                 "words_lost": r.words_lost, "longest": r.covering_length(1.0),
                 "covers_99_9": r.covering_length(0.999)} for name, r in reports.items()}


def build_caches(config: RunConfig, splits: Dict[str, Split], label_maps,
                 tokenizer=None) -> PreparedData:
  """Builds or reuses the TFRecord cache of every split (in the task's feature encoding), with
  `tokenizer` (default: a new one; the run's, whose memory of pieces the length report filled)."""
  task = make_task(config, label_maps, splits["train"].examples if "train" in splits else ())
  tokenizer = tokenizer or make_tokenizer(config.model.vocab_file, config.model.do_lower_case)
  caches = {
      name: tfrecords.build_or_load(
          split, tokenizer, label_maps, config.model.vocab_file, config.model.do_lower_case,
          config.data.max_seq_length, config.cache_dir, encoding=task.feature_encoding,
          remove_stale=not config.data.cache_dir)  # only the run's own cache is ours to tidy
      for name, split in splits.items()
  }
  return PreparedData(splits=splits, label_maps=label_maps, caches=caches, tokenizer=tokenizer,
                      task=task)


def prepare_data(config: RunConfig, split_names: Sequence[str]) -> PreparedData:
  """Reads the splits and builds/reuses their caches (no run-directory checks)."""
  splits, label_maps = read_corpus(config, split_names)
  return build_caches(config, splits, label_maps)


def make_task(config: RunConfig, label_maps, train_examples=()):
  """The task of `config.data.task`: `GlueTask` over `glue.GlueLabels`, else `NluTask`.

  train_examples: the train split's examples; with --constrain_slots_to_intent they give the slot
  tags each intent may decode (`slot_constraints.allowed_tags`).

  Raises:
    ValueError: --constrain_slots_to_intent without train examples.
  """
  if config.data.task == GLUE_TASK:
    return GlueTask(label_maps)
  allowed_slot_tags = None
  if config.model.constrain_slots_to_intent:
    train_examples = list(train_examples)
    if not train_examples:
      raise ValueError("--constrain_slots_to_intent needs the train split's examples")
    allowed_slot_tags = slot_constraints.allowed_tags(train_examples, label_maps)
  return NluTask(label_maps, config.model.intent_loss_weight, config.model.slot_intent_context,
                 config.model.slot_crf, distill_temperature=config.train.distill_temperature,
                 distill_alpha=config.train.distill_alpha, focal_gamma=config.model.focal_gamma,
                 slot_loss_normalization=config.model.slot_loss_normalization,
                 per_intent_slot_heads=config.model.per_intent_slot_heads,
                 slot_head=config.model.slot_head, allowed_slot_tags=allowed_slot_tags)


def training_steps(num_examples: int, batch_size: int, num_epochs: float,
                   warmup_proportion: float, gradient_accumulation_steps: int = 1):
  """(num_train_steps, num_warmup_steps), both counted in batches of `batch_size`.

  With gradient accumulation K the schedule is that of the effective batch K * batch_size: the
  number of updates and of warmup updates are computed from it, then counted in batches (x K).
  """
  updates = max(1, int(math.ceil(num_examples * num_epochs /
                                 (batch_size * gradient_accumulation_steps))))
  warmup_updates = int(updates * warmup_proportion)
  return updates * gradient_accumulation_steps, warmup_updates * gradient_accumulation_steps


def serving_input_receiver_fn_builder(task):
  def serving_input_receiver_fn():
    features = task.serving_features()
    return tf.estimator.export.ServingInputReceiver(features, features)
  return serving_input_receiver_fn


def make_placement(config: RunConfig,
                   built: Optional[distribute.Placement] = None) -> distribute.Placement:
  """The tf.distribute strategy of the run (bert_nlu/distribute.py), logged with the batch split;
  `built`: the caller's, if it had to build it earlier (see `run`)."""
  train = config.train
  placement = built or distribute.make_placement(train.distribution, train.num_gpus,
                                                 train.devices)
  if placement.strategy is not None:
    tf.logging.info(
        "Distribution %s: %d replicas; --train_batch_size=%d is the GLOBAL batch of a step, "
        "%d examples per replica; steps, warmup and learning rate follow the global batch",
        train.distribution, placement.num_replicas, train.train_batch_size,
        distribute.per_replica_batch_size(train.train_batch_size, placement.num_replicas))
    tf.logging.info("Distribution %s: dev evaluation by the checkpoint evaluator "
                    "(--evaluator=%s), on one device", train.distribution, train.evaluator)
  return placement


def build_estimator(config: RunConfig, task, bert_config, num_train_steps: int,
                    num_warmup_steps: int, eval_gold_examples, bf16_active: bool = False,
                    parameter_counts_out: Optional[Dict[str, int]] = None,
                    placement: Optional[distribute.Placement] = None) -> tf.estimator.Estimator:
  """The Estimator of the run; `bf16_active` turns on the bfloat16 rewrite in its sessions
  (`cpu_features.detect_bf16_support(config.model.bf16).active`); `parameter_counts_out`: see
  `model_fn_builder`; `placement` (training only) distributes training.

  Evaluation and prediction always run on one device: the whole-set metrics collect every
  prediction of the set in one process.
  """
  train = config.train
  placement = placement or distribute.Placement(strategy=None, num_replicas=1)
  run_config = tf.estimator.RunConfig(
      model_dir=config.output_dir,
      tf_random_seed=train.seed,
      save_checkpoints_steps=train.save_checkpoints_steps,
      save_summary_steps=train.save_summary_steps,
      keep_checkpoint_max=train.keep_checkpoint_max,
      log_step_count_steps=train.save_summary_steps,
      train_distribute=placement.strategy,
      session_config=distribute.session_config_with_devices(
          model_session_config(config.model, config.intra_op_threads, config.inter_op_threads,
                               bf16_active),
          placement.cpu_devices))
  model_fn = model_fn_builder(task, bert_config, config.model, train, num_train_steps,
                              num_warmup_steps, eval_gold_examples=eval_gold_examples,
                              profile_config=config.profile, profile_dir=config.profile_dir,
                              parameter_counts_out=parameter_counts_out)
  return tf.estimator.Estimator(model_fn=model_fn, config=run_config)


def _write_run_files(config: RunConfig, label_maps, allowed_slot_tags=None) -> Dict[str, str]:
  """Saves run_config.json, label_maps.json and predict_config.json; returns export assets.

  predict_config.json names the task, so `bert_nlu.predict` knows how to read an export, and
  with --constrain_slots_to_intent the tags each intent may decode (`allowed_slot_tags`), which
  an ensemble of such runs applies to its averaged scores.
  """
  os.makedirs(config.output_dir, exist_ok=True)
  io_utils.atomic_write_json(os.path.join(config.output_dir, "run_config.json"),
                             config.to_json_dict())
  label_maps_path = os.path.join(config.output_dir, "label_maps.json")
  label_maps.save(label_maps_path)
  predict_config_path = os.path.join(config.output_dir, PREDICT_CONFIG_FILE)
  io_utils.atomic_write_json(predict_config_path, {
      "task": config.data.task,
      "max_seq_length": config.data.max_seq_length,
      "do_lower_case": config.model.do_lower_case,
      "bf16": config.model.bf16,  # the predictor decides again on the machine it runs on
      **({"allowed_slot_tags": slot_constraints.to_json(allowed_slot_tags, label_maps)}
         if allowed_slot_tags is not None else {})})
  return {"label_maps.json": label_maps_path, "vocab.txt": config.model.vocab_file,
          PREDICT_CONFIG_FILE: predict_config_path}


def _evaluate_latest_if_missed(estimator, exporter: hooks.BestModelExporter, dev_input_fn,
                              eval_steps: Optional[int]) -> None:
  """Evaluates (and offers to the exporter) the newest checkpoint if it never was."""
  checkpoint = estimator.latest_checkpoint()
  if checkpoint is None:
    return
  step = checkpoints.step_of(checkpoint)
  if step == 0 or step in exporter.evaluated_steps():
    return
  tf.logging.info("Evaluating checkpoint %s, which was saved but not evaluated", checkpoint)
  result = estimator.evaluate(dev_input_fn, steps=eval_steps, name=EVAL_NAME,
                              checkpoint_path=checkpoint)
  exporter.export(estimator, os.path.join(estimator.model_dir, "export", "best"), checkpoint,
                  result, False)


@contextlib.contextmanager
def _stop_on_signals(stop_request: hooks.StopRequest):
  """SIGTERM/SIGINT ask training to save a checkpoint and stop; a second one stops at once."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):  # pylint: disable=unused-argument
    if stop_request.signal_name is not None:
      raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without saving")
    stop_request.signal_name = signal.Signals(signum).name
    tf.logging.warning("%s received: saving a checkpoint after the current step, then stopping "
                       "(send it again to stop at once)", stop_request.signal_name)

  previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield
  finally:
    for sig, old_handler in previous.items():
      signal.signal(sig, old_handler)


def train_and_evaluate(config: RunConfig, prepared: PreparedData, bert_config,
                       bf16_active: bool = False,
                       parameter_counts_out: Optional[Dict[str, int]] = None,
                       placement: Optional[distribute.Placement] = None) -> Dict:
  """Trains with periodic dev evaluation (in bfloat16 if `bf16_active`); returns a training
  summary. `parameter_counts_out` is filled when the training graph is built (see
  `model_fn_builder`; not if training was already complete).

  placement: from `make_placement` (default: built here); a multi-worker strategy must be built
  before the process runs its first TensorFlow op, so `run` builds it first.
  """
  started = time.time()
  train = config.train
  if train.distribution != "none" and train.evaluator == "in_process":
    raise ValueError(f"distribution={train.distribution!r} needs evaluator='checkpoint': "
                     "replicated training is evaluated from its checkpoints, on one device")
  task = prepared.task
  num_train_steps, num_warmup_steps = training_steps(
      prepared.caches["train"].num_examples, train.train_batch_size, train.num_train_epochs,
      train.warmup_proportion, train.gradient_accumulation_steps)
  dev_gold = prepared.splits["dev"].examples
  placement = placement or make_placement(config)
  estimator = build_estimator(config, task, bert_config, num_train_steps, num_warmup_steps,
                              dev_gold, bf16_active, parameter_counts_out, placement)
  assets = _write_run_files(config, prepared.label_maps,
                            getattr(prepared.task, "allowed_slot_tags", None))
  max_seq_length = config.data.max_seq_length
  train_input_fn = input_pipeline.make_input_fn(
      prepared.caches["train"].tfrecord_path, is_training=True,
      batch_size=distribute.per_replica_batch_size(train.train_batch_size,
                                                   placement.num_replicas),
      max_seq_length=max_seq_length, bucket_by_length=config.data.bucket_by_length,
      pad_to_max_length=not config.data.bucket_by_length, seed=train.seed,
      bucket_width=config.data.bucket_width,
      resume_model_dir=config.output_dir, batches_per_step=placement.num_replicas,
      feature_spec=task.feature_encoding.spec)
  if train.distill_teachers:
    teacher_targets = distill.load_or_compute_teacher_targets(
        train.distill_teachers, prepared.splits["train"].examples, prepared.label_maps,
        max_seq_length, train.distill_temperature, config.cache_dir)
    train_input_fn = distill.with_teacher_targets(train_input_fn, teacher_targets)
  dev_input_fn = input_pipeline.make_input_fn(
      prepared.caches["dev"].tfrecord_path, is_training=False,
      batch_size=train.eval_batch_size, max_seq_length=max_seq_length,
      feature_spec=task.feature_encoding.spec)
  speed_hook = hooks.ExamplesPerSecondHook(train.train_batch_size, train.save_summary_steps,
                                           config.output_dir)
  stop_request = hooks.StopRequest()
  guard_hook = hooks.NonFiniteGuardHook(
      config.output_dir, LOSS_COLLECTION, GRADIENT_NORM_COLLECTION,
      loss_scale_collection=LOSS_SCALE_COLLECTION if config.model.fp16 else None)
  exporter = hooks.BestModelExporter(
      config.output_dir, task.selection_metric, serving_input_receiver_fn_builder(task), assets,
      exported_metrics=task.exported_metrics)
  progress_hook = hooks.ProgressHook(
      num_train_steps, prepared.caches["train"].num_examples / train.train_batch_size,
      train.train_batch_size, train.save_summary_steps, LOSS_COLLECTION, exporter.evaluated_steps,
      dev_metric=task.selection_metric)
  train_hooks = [
      guard_hook,
      hooks.GracefulStopHook(stop_request, config.output_dir),
      speed_hook,
      progress_hook,
  ]
  start = time.time()
  # In a cluster the evaluator evaluates; the chief only when it also does the final evaluation
  # (no evaluator task: the launcher passes --norun_eval to training tasks when there is one).
  cluster_task = distribute.task_type()
  evaluates = cluster_task != "worker" and (cluster_task != "chief" or config.run_eval)
  evaluation_summary = {}
  if train.evaluator == "in_process":
    saved_checkpoints = hooks.SavedCheckpointsListener(config.output_dir)
    evaluator_hook = evaluation.InProcessEvaluatorHook(
        estimator, dev_input_fn,
        functools.partial(optimization.eval_restore_map, train.weight_average_decay),
        every_n_steps=train.evaluation_interval, exporter=exporter,
        early_stopping_evals=train.early_stopping_evals, steps=train.eval_steps, name=EVAL_NAME,
        saved_checkpoint_at=saved_checkpoints.checkpoint_at,
        batches_per_pass=math.ceil(prepared.caches["dev"].num_examples / train.eval_batch_size))
    train_hooks += [
        # The periodic saver runs after the guard: a step with non-finite weights is never
        # saved. (Left to itself the Estimator makes its own saver a chief hook, which runs
        # before every TrainSpec hook and would save the bad state when a save falls due.)
        hooks.PeriodicCheckpointSaverHook(config.output_dir,
                                          save_steps=train.save_checkpoints_steps,
                                          listeners=[saved_checkpoints]),
        evaluator_hook,  # after speed_hook (not training time) and the saver (links its saves)
    ]
    latest_step = checkpoints.latest_step(config.output_dir)
    if latest_step >= num_train_steps or latest_step % train.evaluation_interval == 0:
      # A kill between saving a checkpoint due for evaluation and evaluating it (the hook
      # evaluates only steps it trains), or complete already (no training hook will run).
      _evaluate_latest_if_missed(estimator, exporter, dev_input_fn, train.eval_steps)
    with _stop_on_signals(stop_request):
      estimator.train(train_input_fn, max_steps=num_train_steps, hooks=train_hooks)
    evaluation_summary = {
        "evaluations_this_session": len(evaluator_hook.evaluations),
        "evaluator_build_seconds": evaluator_hook.build_seconds,
        "evaluation_seconds": sum(e["seconds"] for e in evaluator_hook.evaluations),
        "evaluation_parts_seconds": evaluator_hook.evaluations,
        "best_model_io_seconds": evaluator_hook.export_seconds,
    }
  else:
    # The Estimator's own hook: its evaluation listener expects the save before the first step.
    # Under a multi-worker strategy the Estimator's saver already runs after the training hooks,
    # and on every worker (the save may hold collective ops; non-chief workers write to
    # tmp_worker_N).
    if train.distribution != "multi_worker":
      train_hooks.append(tf.estimator.CheckpointSaverHook(
          config.output_dir, save_steps=train.save_checkpoints_steps))
    _train_and_evaluate_checkpoints(estimator, config, num_train_steps, exporter,
                                    task.selection_metric, train_input_fn, dev_input_fn,
                                    train_hooks, stop_request, evaluates)
  wall_seconds = time.time() - start
  # A run killed between saving and evaluating a checkpoint, or resumed when already complete.
  if evaluates:
    _evaluate_latest_if_missed(estimator, exporter, dev_input_fn, train.eval_steps)
  return {
      "num_train_steps": num_train_steps,
      "num_warmup_steps": num_warmup_steps,
      "steps_run_this_session": speed_hook.train_steps,
      "train_examples_per_second": speed_hook.examples_per_second(),
      "bf16_active": bf16_active,
      "train_step_seconds": speed_hook.train_seconds,
      "fp16_skipped_steps": guard_hook.skipped_steps,
      "wall_seconds": wall_seconds,
      # Start-up of this session: graph construction + session creation (initialisation,
      # warm start or restore), then the first step (its graph optimisation included).
      "startup_seconds": _startup_seconds(started, speed_hook),
      "first_step_end_unix_time": speed_hook.first_step_end_time,
      **evaluation_summary,
  }


def _startup_seconds(started: float, speed_hook: hooks.ExamplesPerSecondHook) -> Dict:
  """{"graph_and_session", "first_step"} seconds from `started` (None where not reached)."""
  ready, first = speed_hook.session_ready_time, speed_hook.first_step_end_time
  return {"graph_and_session": None if ready is None else ready - started,
          "first_step": None if first is None or ready is None else first - ready}


class PredictionSpeed:
  """Examples per second of a batched prediction, past its first batch.

  The first batch pays for building the graph and restoring the checkpoint, so the rate counts
  the examples of the later batches over the time from the first batch's arrival to the last's
  (with a single batch, that batch over its whole time).
  """

  def __init__(self):
    self._examples_after_first = 0
    self._seconds_after_first = 0.0
    self._first_examples = 0
    self._first_seconds = 0.0

  def timed(self, batches):
    """Yields `batches` (dicts with "example_index" [batch]) unchanged, timing them."""
    start = time.perf_counter()
    first_arrival = None
    for batch in batches:
      now = time.perf_counter()
      size = len(batch["example_index"])
      if first_arrival is None:
        first_arrival = now
        self._first_examples, self._first_seconds = size, now - start
      else:
        self._examples_after_first += size
        self._seconds_after_first = now - first_arrival
      yield batch

  def examples_per_second(self) -> float:
    if self._examples_after_first and self._seconds_after_first > 0:
      return self._examples_after_first / self._seconds_after_first
    return self._first_examples / self._first_seconds if self._first_seconds > 0 else 0.0


EVALUATOR_POLL_SECONDS = 2  # how often a cluster's evaluator task looks for a new checkpoint


def _train_and_evaluate_checkpoints(estimator, config: RunConfig, num_train_steps: int,
                                    exporter: hooks.BestModelExporter, selection_metric: str,
                                    train_input_fn, dev_input_fn, train_hooks,
                                    stop_request, evaluates: bool = True) -> None:
  """Estimator train_and_evaluate: every new checkpoint is evaluated in a new eval graph (by the
  evaluator task in a multi-worker cluster; `evaluates` is False in tasks that only train)."""
  train = config.train
  train_hooks = list(train_hooks)
  if train.early_stopping_evals > 0:
    os.makedirs(estimator.eval_dir(EVAL_NAME), exist_ok=True)
    train_hooks.append(tf.estimator.experimental.stop_if_no_increase_hook(
        estimator, selection_metric,
        max_steps_without_increase=train.early_stopping_evals * train.save_checkpoints_steps,
        eval_dir=estimator.eval_dir(EVAL_NAME),
        run_every_secs=None, run_every_steps=train.save_checkpoints_steps))
  train_spec = tf.estimator.TrainSpec(train_input_fn, max_steps=num_train_steps,
                                      hooks=train_hooks)
  # A cluster's evaluator task polls for new checkpoints; at throttle_secs=0 it would poll in a busy
  # loop (a core taken from the training tasks, a warning logged per poll). Without a cluster the
  # Estimator evaluates after each checkpoint save, and 0 lets it evaluate every one.
  throttle_secs = EVALUATOR_POLL_SECONDS if distribute.task_type() == "evaluator" else 0
  eval_spec = tf.estimator.EvalSpec(dev_input_fn, steps=train.eval_steps, name=EVAL_NAME,
                                    exporters=[exporter], start_delay_secs=0,
                                    throttle_secs=throttle_secs)
  if evaluates:
    _evaluate_latest_if_missed(estimator, exporter, dev_input_fn, train.eval_steps)
  with _stop_on_signals(stop_request):
    tf.estimator.train_and_evaluate(estimator, train_spec, eval_spec)


def predict_split(estimator: tf.estimator.Estimator, prepared: PreparedData, split_name: str,
                  checkpoint_path: str, batch_size: int, max_seq_length: int,
                  intent_threshold: Optional[float] = None):
  """Predicts a split with one checkpoint; returns (metrics dict, per-example prediction rows).

  Multilabel intents are decided with `intent_threshold`, or (None) with the threshold best on
  this split (dev), reported as the metric "intent_threshold".
  """
  task = prepared.task
  input_fn = input_pipeline.make_input_fn(
      prepared.caches[split_name].tfrecord_path, is_training=False, batch_size=batch_size,
      max_seq_length=max_seq_length, feature_spec=task.feature_encoding.spec)
  collector = task.metrics_collector(prepared.splits[split_name].examples, intent_threshold,
                                     train_split=prepared.splits["train"])
  speed = PredictionSpeed()
  for batch in speed.timed(estimator.predict(input_fn, checkpoint_path=checkpoint_path,
                                             yield_single_examples=False)):
    collector.update_batch(batch)
  result = dict(collector.result())
  result["prediction_examples_per_second"] = speed.examples_per_second()
  return result, collector.prediction_rows()


def evaluate_best(config: RunConfig, prepared: PreparedData, bert_config,
                  split_names: Sequence[str], bf16_active: bool = False) -> Dict:
  """Evaluates the best checkpoint (else the latest) on each split (in bfloat16 if
  `bf16_active`); returns the results."""
  task = prepared.task
  estimator = build_estimator(config, task, bert_config, 1, 0, None, bf16_active)
  best = hooks.read_best(config.output_dir)
  checkpoint = best["checkpoint"] if best else estimator.latest_checkpoint()
  if checkpoint is None:
    raise FileNotFoundError(f"{config.output_dir}: no checkpoint to evaluate; train first")
  results = {"checkpoint": checkpoint, "selected_by": f"{EVAL_NAME} {task.selection_metric}",
             "best_step": best["step"] if best else None, "splits": {}}
  intent_threshold = None  # multilabel: chosen on dev (the first split), then applied to test
  for name in split_names:
    split_metrics, rows = predict_split(estimator, prepared, name, checkpoint,
                                        config.train.eval_batch_size, config.data.max_seq_length,
                                        intent_threshold)
    intent_threshold = split_metrics.get(INTENT_THRESHOLD_METRIC)
    if intent_threshold is not None:
      results[INTENT_THRESHOLD_METRIC] = intent_threshold
    split_metrics["num_truncated"] = prepared.caches[name].num_truncated
    results["splits"][name] = split_metrics
    io_utils.atomic_write_text(
        os.path.join(config.output_dir, f"predictions_{name}.jsonl"),
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
  return results


def run(config: RunConfig, overwrite_output_dir: bool = False,
        placement: Optional[distribute.Placement] = None) -> Dict:
  """Runs the phases named in `config`; returns (and saves) the results.

  The output directory is locked for the duration (a second process refuses to use it) and its
  run_manifest.json must be compatible with `config` (else IncompatibleRunError lists the
  differing keys), unless `overwrite_output_dir` clears it first. `placement`: the strategy of
  config.train when the caller built it before anything started TensorFlow's runtime (a
  multi-worker strategy must; loading a TF-Hub module to read its vocabulary starts it), else
  built here first.
  """
  started_unix_time = time.time()
  eval_splits = evaluation_splits(config)
  # First: a multi-worker strategy configures collectives, which must precede any TF op.
  placement = make_placement(config, placement) if config.run_train else None
  os.makedirs(config.output_dir, exist_ok=True)
  phase_seconds = {}
  clock = time.perf_counter()

  def phase_done(name):
    nonlocal clock
    now = time.perf_counter()
    phase_seconds[name] = now - clock
    clock = now

  secondary = distribute.is_secondary_task()  # a cluster's worker or evaluator: the chief locks
  with contextlib.nullcontext() if secondary else run_dir.RunDirectoryLock(config.output_dir):
    splits, label_maps = read_corpus(config, eval_splits)
    bert_config = encoder_config(config.model)
    tokenizer = make_tokenizer(config.model.vocab_file, config.model.do_lower_case)
    config, length_reports = resolve_max_seq_length(config, splits,
                                                    bert_config.max_position_embeddings, tokenizer)
    manifest = run_dir.build_manifest(
        config.to_json_dict(), run_dir.fingerprint_splits(splits), label_maps.to_json_dict(),
        run_dir.model_shape_from_bert_config(bert_config.to_dict(),
                                             config.model.num_hidden_layers))
    status = ("a task of the chief's run" if secondary else
              run_dir.check_or_record_manifest(config.output_dir, manifest, overwrite_output_dir))
    tf.logging.info("Run directory %s: %s", config.output_dir, status)
    phase_done("read_corpus")
    prepared = build_caches(config, splits, label_maps, tokenizer)
    phase_done("data_cache")
    # Decided once per run: a --bf16 that cannot run here warns once and runs float32.
    precision = cpu_features.detect_bf16_support(config.model.bf16)
    results: Dict = {"max_seq_length": config.data.max_seq_length,
                     "truncation": length_summary(length_reports)}
    counts = {}  # the training graph's, else (no training this time) a network built for them
    if config.data.task != GLUE_TASK:
      results["train_intent_counts"] = limit.intent_counts(splits["train"])
    if config.run_train:
      if config.model.init_checkpoint and not config.model.random_init:
        checkpoints.check_init_checkpoint(config.model.init_checkpoint)
      if not secondary:
        checkpoints.set_aside_damaged_latest(config.output_dir)
      training_config = config
      if config.model.init_run_dir and not config.model.random_init:
        # In a cluster every task writes it (each worker initialises from it); the writes are
        # deterministic (seeded) and each file lands by rename, so tasks sharing the directory
        # write and read the same bytes.
        results["warm_start"] = warm_start.write_remapped_checkpoint(
            config.model.init_run_dir, config.model.init_checkpoint, label_maps,
            config.output_dir, bert_config.initializer_range, config.train.seed)
        tf.logging.info("Warm start from %s: intents %s, slot tags %s",
                        config.model.init_run_dir, results["warm_start"]["intents"],
                        results["warm_start"]["slot_tags"])
        training_config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, init_checkpoint=results["warm_start"]["checkpoint"]))
      with memory.PeakMemory() as training_memory:
        results["training"] = train_and_evaluate(training_config, prepared, bert_config,
                                                 precision.active, counts, placement)
      results["memory"] = {"training": training_memory.result()}
      phase_done("train_and_evaluate")
    results["model"] = counts or parameter_counts(prepared.task, bert_config, config.model)
    if config.run_eval:
      with memory.PeakMemory() as evaluation_memory:
        results.update(evaluate_best(config, prepared, bert_config, eval_splits,
                                     precision.active))
      results.setdefault("memory", {})["evaluation"] = evaluation_memory.result()
      phase_done("evaluate_best")
      # Wall time of each phase of this invocation (the process's imports come before).
      results["phase_seconds"] = phase_seconds
      results["run_started_unix_time"] = started_unix_time  # imports and flags come before
      results["precision"] = precision.to_json_dict()
      results["config"] = config.to_json_dict()
      io_utils.atomic_write_json(os.path.join(config.output_dir, RESULTS_FILE), results)
      hparams.write_hparams_summary(config.output_dir, results["config"], results)
      for name in eval_splits:
        print(prepared.task.format_metrics_table(
            results["splits"][name],
            title=f"{name} (best checkpoint, step {results['best_step']})"))
    summary = final_summary_line(config.output_dir)
    if summary:
      print(summary)
  return results


def final_summary_line(output_dir: str) -> Optional[str]:
  """"best checkpoint ... | export ... | predict: <command>", or None before any best exists."""
  best = hooks.read_best(output_dir)
  if best is None:
    return None
  return (f"best checkpoint: {best['checkpoint']} (dev {best['metric']} "
          f"{metrics.format_percent(best['value'])}, step {best['step']}) | export: "
          f"{best['saved_model']} | predict: python -m bert_nlu.predict "
          f"--model_dir={output_dir} \"your utterance\"")
