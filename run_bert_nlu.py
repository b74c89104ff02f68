#!/usr/bin/env python
"""Fine-tune BERT for joint intent classification + slot filling or a GLUE task, evaluate,
export, predict.

  python run_bert_nlu.py --flagfile=configs/snips.cfg --output_dir=runs/snips
  python run_bert_nlu.py --flagfile=configs/glue_mrpc.cfg --output_dir=runs/mrpc

Flags live here only: they are validated, turned into a frozen `bert_nlu.config.RunConfig` and
handed to `bert_nlu.train.run`. Defaults work with the bundled all-MiniLM-L6-v2 weights
(`python -m bert_nlu.convert --minilm`) and the SNIPS corpus.
"""

import math
import os
import re
import sys
import threading

from absl import app, flags

REPO_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR_ENV = "BERT_NLU_DATA_DIR"

# ---- task
flags.DEFINE_enum("task", "nlu", ["nlu", "glue"], "nlu: joint intent classification + slot "
                  "filling; glue: the GLUE task named by --glue_task.")
flags.DEFINE_string("glue_task", "", "With --task=glue: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, "
                    "QNLI, RTE, WNLI or SNLI (any case). Its data is --data_dir, else "
                    "<data root>/glue/<task>.")
# ---- data
flags.DEFINE_string("corpus", "snips", "Corpus folder name under the data root "
                    f"(${DATA_DIR_ENV}, else ../shared/data next to the repository).")
flags.DEFINE_string("data_dir", "", "Corpus directory with train/dev/test/{seq.in,seq.out,label} "
                    "(or the SNIPS raw JSON folder); overrides --corpus.")
flags.DEFINE_enum("corpus_format", "seq", ["seq", "snips_json"], "Layout of --data_dir.")
flags.DEFINE_enum("multi_intent_policy", "atomic", ["atomic", "first", "multilabel"],
                  "'a#b' intent labels: one class ('atomic', as published results do), the first, "
                  "or the set {a, b} ('multilabel': one sigmoid per atomic intent, decision "
                  "threshold chosen on dev, at least one intent predicted).")
flags.DEFINE_string("max_seq_length", "64", "Word pieces per example incl. [CLS] and [SEP], or "
                   "'auto': the smallest length that truncates no train/dev/test example (at "
                   "most the model's max_position_embeddings), recorded in run_config.json.")
flags.DEFINE_string("cache_dir", "", "TFRecord cache (default <output_dir>/data_cache, which "
                    "the run tidies); a directory given here may be shared by runs (entries are "
                    "keyed by content) and nothing in it is ever deleted.")
flags.DEFINE_bool("bucket_by_length", True, "Length-bucketed dynamic padding for training; "
                  "--nobucket_by_length pads every batch to max_seq_length.")
flags.DEFINE_integer("bucket_width", 8, "--bucket_by_length: width of a length bucket in word "
                     "pieces; a training batch holds examples of one bucket, padded to its longest "
                     "(1: every batch holds examples of one length, no padding; >= max_seq_length: one "
                     "bucket, random batches padded to their longest).", lower_bound=1)
flags.DEFINE_float("augment_slot_substitution", 0.0, "Slot-substitution augmentation: with this "
                   "probability per training example (and copy), add a copy whose slot values are "
                   "replaced by values of the same slot type from other training utterances, "
                   "drawn from --seed; 0 = off.")
flags.DEFINE_integer("augment_copies", 1, "--augment_slot_substitution: times each training "
                     "example is offered for augmentation.")
flags.DEFINE_bool("augment_same_intent", False, "--augment_slot_substitution: draw substitute "
                  "values only from utterances of the same intent.")
flags.DEFINE_multi_string("limit_data", [], "INTENT,COUNT: train on COUNT examples of INTENT, "
                          "chosen reproducibly from --seed (0 drops the intent); repeat the flag "
                          "or list pairs (--limit_data=PlayMusic,10,GetWeather,100). Dev and test "
                          "stay complete.")
flags.DEFINE_bool("resample", True, "With --limit_data: repeat each limited intent's kept "
                  "examples up to its original count, so every intent is seen about as often.")
flags.DEFINE_integer("train_examples", 0, "Train on this many training examples (any task), the "
                     "same ones for every --seed; 0 = all. Dev and test stay complete.",
                     lower_bound=0)
# ---- model
flags.DEFINE_string("bert_dir", "", "Directory with bert_config.json, vocab.txt, bert_model.ckpt; "
                    "default: the converted all-MiniLM-L6-v2 in $BERT_NLU_CACHE "
                    "(~/.cache/bert_nlu).")
flags.DEFINE_string("bert_config_file", "", "Overrides <bert_dir>/bert_config.json.")
flags.DEFINE_string("vocab_file", "", "Overrides <bert_dir>/vocab.txt.")
flags.DEFINE_string("init_checkpoint", "", "Overrides <bert_dir>/bert_model.ckpt. A fine-tuned "
                    "run directory continues from its best checkpoint: the encoder loads, the "
                    "intent and slot heads load by label name (shared labels copied, new ones "
                    "fresh, gone ones dropped); eval_results.json records what was loaded.")
flags.DEFINE_bool("keep_init_labels", False, "With --init_checkpoint=<a fine-tuned run "
                  "directory>: the label maps are that run's intents and slot tags followed by "
                  "the new ones of this training split, none dropped, so a run trained on one new "
                  "intent still predicts and is evaluated on the earlier ones (forgetting).")
flags.DEFINE_string("hub_module", "", "A TF-Hub BERT encoder (local SavedModel directory or "
                    "handle, passed to tensorflow_hub unchanged; e.g. one written by `python -m "
                    "bert_nlu.hub_export`) used as the encoder instead of --bert_dir's "
                    "checkpoint; the tokenizer uses its vocab_file asset and do_lower_case.")
flags.DEFINE_bool("do_lower_case", None, "Tokenizer casing; default from bert_config.json "
                  "(do_lower_case key written by the converter), else True.")
flags.DEFINE_float("intent_loss_weight", 1.0, "loss = w * intent_loss + slot_loss.")
flags.DEFINE_float("head_dropout", 0.1, "Dropout before the intent and slot heads.")
flags.DEFINE_float("encoder_dropout", None, "Replaces bert_config.json's hidden and attention "
                   "dropout rates (unset = keep the checkpoint's).")
flags.DEFINE_integer("layers", None, "Use only the encoder's first N layers; the heads read "
                     "layer N's output (unset = all layers).")
flags.DEFINE_alias("num_hidden_layers", "layers")
flags.DEFINE_integer("train_layers_from", 0, "K: freeze the embeddings and the encoder layers "
                     "below K (no gradient, no optimizer slots, no weight decay); layers >= K, "
                     "the pooler and the heads train. 0 = all train; K = --layers trains the "
                     "pooler and heads only.")
flags.DEFINE_bool("random_init", False, "The same architecture with no pretrained weights: "
                  "--init_checkpoint is not loaded (the control that shows what pretraining "
                  "buys).")
flags.DEFINE_bool("slot_intent_context", False, "The slot head also sees the pooled utterance "
                  "vector (concatenated to every token).")
flags.DEFINE_bool("slot_crf", False, "A linear-chain CRF over the words' first pieces: CRF "
                  "likelihood loss and Viterbi decoding of the slot tags.")
flags.DEFINE_bool("per_intent_slot_heads", False, "One slot layer per intent: at training the "
                  "slot loss goes through the gold intent's layer, at prediction through the "
                  "predicted intent's.")
flags.DEFINE_enum("slot_head", "tags", ["tags", "bio_type"], "Slot outputs: 'tags', one softmax "
                  "(or --slot_crf) over the BIO tags; 'bio_type', a B/I/O position softmax and a "
                  "slot-type softmax (loss: position cross-entropy over words + type "
                  "cross-entropy over non-O words), decoded to the tag <position>-<type>.")
flags.DEFINE_bool("constrain_slots_to_intent", False, "Decode each utterance's slots with only "
                  "the slot types the train split shows with its predicted intent (others' "
                  "scores at -1e4 before Viterbi / argmax; 'O' always allowed): evaluation, "
                  "checkpoint selection, the export and predict.")
flags.DEFINE_float("focal_gamma", 0.0, "Focal loss exponent for the intent and slot losses "
                   "(with --slot_crf, the intent loss only); 0 = cross-entropy.")
flags.DEFINE_enum("slot_loss_normalization", "token", ["token", "sentence"], "Slot loss: the "
                  "mean over the batch's words, or each sentence's per-word mean averaged over "
                  "sentences.")
# ---- training
flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation/prediction batch size.")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate (AdamWeightDecay).")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of steps with linear warmup.")
flags.DEFINE_enum("lr_schedule", "linear", ["linear", "cosine", "one_cycle"], "Learning-rate "
                  "decay after the warmup: linear to 0 (bert's), cosine to 0, or one_cycle "
                  "(warmup from 1/25 of the peak, cosine decay to 1/250000 of it).")
flags.DEFINE_float("num_train_epochs", 10.0, "Training epochs.")
flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay.")
flags.DEFINE_enum("optimizer_implementation", "fused", ["fused", "bert"], "AdamWeightDecay "
                  "update: 'fused' kernels or bert.optimization's optimizer (same math).")
flags.DEFINE_bool("adam_bias_correction", False, "Divide Adam's moments by (1 - beta^t) as Adam "
                  "and PyTorch's AdamW do. Off: bert's AdamWeightDecay rule, whose early updates "
                  "are larger at the same rate (3.2x AdamW's at update 100, 1.35x at 800). Needs "
                  "--optimizer_implementation=fused.")
flags.DEFINE_float("adam_epsilon", 1e-6, "Adam's epsilon, added to sqrt(v) (bert: 1e-6; PyTorch's "
                   "AdamW and the HF Trainer: 1e-8).")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Update the weights every K batches of "
                     "--train_batch_size with their mean gradient: the update of a K-times larger "
                     "batch in the memory of one. Steps (checkpoints, summaries) count batches; "
                     "the learning-rate schedule counts updates.")
flags.DEFINE_bool("fp16", False, "Mixed precision: TensorFlow's automatic mixed-precision rewrite "
                  "(float16 compute on GPUs, float32 weights) with dynamic loss scaling; steps "
                  "whose gradients overflow are skipped, counted and logged.")
flags.DEFINE_bool("bf16", False, "Mixed precision on CPUs: TensorFlow's oneDNN bfloat16 rewrite "
                  "(matrix products in bfloat16, float32 weights, optimizer, loss, softmax/CRF) "
                  "for training, evaluation and the export. Needs a CPU with avx512_bf16 or "
                  "amx_bf16 and oneDNN (TF_ENABLE_ONEDNN_OPTS=1); elsewhere it warns once and "
                  "runs float32.")
flags.DEFINE_float("initial_loss_scale", 2.0 ** 15, "--fp16: initial dynamic loss scale.")
flags.DEFINE_integer("loss_scale_growth_steps", 2000, "--fp16: the loss scale doubles after "
                     "this many steps in a row with finite gradients.")
flags.DEFINE_float("head_learning_rate_multiplier", 1.0, "Intent/slot heads learn at this "
                   "multiple of --learning_rate.")
flags.DEFINE_float("layer_learning_rate_decay", 1.0, "Layer-wise learning-rate decay d in (0, 1]: "
                   "encoder layer i of L learns at d^(L-i) times the rate, the embeddings at "
                   "d^(L+1); 1 = off.")
flags.DEFINE_float("weight_average_decay", 0.0, "Keep an exponential moving average of the "
                   "weights (decay per step, e.g. 0.999) and evaluate, select the best checkpoint, "
                   "export and predict with it; 0 = off (the raw weights).")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint interval (what a killed run "
                     "resumes from).")
flags.DEFINE_integer("eval_every_steps", 0, "Dev evaluation interval in steps (0 = "
                     "--save_checkpoints_steps). --evaluator=checkpoint evaluates every "
                     "checkpoint, so there it must be 0 or equal to --save_checkpoints_steps.")
flags.DEFINE_enum("evaluator", "in_process", ["in_process", "checkpoint"], "Dev evaluation: "
                  "'in_process' builds the dev graph once and evaluates the training session's "
                  "weights (a checkpoint is written only for a new best); 'checkpoint' restores "
                  "every saved checkpoint into a new graph (Estimator train_and_evaluate).")
flags.DEFINE_integer("save_summary_steps", 100, "TensorBoard training-scalar interval.")
flags.DEFINE_integer("keep_checkpoint_max", 3, "Recent checkpoints kept (best kept apart).")
flags.DEFINE_integer("eval_steps", 0, "Dev batches per periodic evaluation (0 = all of dev).")
flags.DEFINE_integer("early_stopping_evals", 0, "Stop after this many evaluations without a "
                     "better dev selection metric (NLU: whole-frame accuracy; GLUE: the task's "
                     "GLUE metric) (0 = off).")
flags.DEFINE_integer("seed", 42, "Random seed (graph seed; initializers are explicit).")
flags.DEFINE_list("distill_teachers", [], "Distillation: run directories (comma-separated) whose "
                  "best exports, averaged as an ensemble, give soft intent and per-word slot "
                  "targets for training (computed once, cached with the TFRecords).")
flags.DEFINE_float("distill_temperature", 2.0, "--distill_teachers: temperature T of the soft "
                   "targets (the soft term is scaled by T^2).")
flags.DEFINE_float("distill_alpha", 0.5, "--distill_teachers: weight of the teacher term in each "
                   "loss; 1 - alpha goes to the gold labels.")
# ---- devices and machines (bert_nlu/distribute.py, python -m bert_nlu.launch)
flags.DEFINE_enum("distribution", "none", ["none", "mirrored", "multi_worker"], "tf.distribute "
                  "strategy for training: 'mirrored' over local devices (--num_gpus or --devices), "
                  "'multi_worker' over the TF_CONFIG cluster. --train_batch_size is then the "
                  "GLOBAL batch, split evenly over the replicas.")
flags.DEFINE_integer("num_gpus", 0, "--distribution=mirrored: mirror over GPUs 0..N-1 (0 and no "
                     "--devices: every visible GPU).")
flags.DEFINE_list("devices", [], "--distribution=mirrored: explicit devices, e.g. "
                  "/cpu:0,/cpu:1 (two CPU replicas) or /gpu:0,/gpu:2.")
# ---- profiling
flags.DEFINE_string("profile_steps", "", "START:END global steps to trace (inclusive), e.g. "
                    "100:102; writes tfprof profile_N dumps and chrome-trace timelines. Off when "
                    "empty (no hook is built).")
flags.DEFINE_string("profile_dir", "", "Where profiles go (default <output_dir>/profile).")
flags.DEFINE_bool("profile_tensorboard", False, "Also capture a TensorBoard profile-plugin trace "
                  "of as many steps as --profile_steps names, right after them (TF allows one "
                  "profiler session at a time, so it cannot overlap the tfprof window).")
# ---- run
flags.DEFINE_string("output_dir", "runs/default", "Checkpoints, TensorBoard, exports, results.")
flags.DEFINE_bool("overwrite_output_dir", False, "Delete an existing run in --output_dir and "
                  "start afresh (needed when its configuration is incompatible with this one).")
flags.DEFINE_bool("run_train", True, "Train (resumes from output_dir's last checkpoint).")
flags.DEFINE_bool("run_eval", True, "Evaluate the best checkpoint, write eval_results.json.")
flags.DEFINE_bool("run_predict", False, "Predict --predict_input with the best export.")
flags.DEFINE_bool("eval_on_test", False, "Also evaluate the best checkpoint on test.")
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow threads within one op (0 = all cores); "
                     "`python -m bert_nlu.sweep --parallel=N` divides the cores between runs.")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow threads running independent ops at "
                     "once (0 = TensorFlow's default).")
flags.DEFINE_string("predict_input", "-", "Input of --run_predict, one per line ('-' stdin): "
                    "utterances (NLU), or a sentence or tab-separated pair (GLUE).")

FLAGS = flags.FLAGS


def _corpus_dir(corpus: str) -> str:
  root = os.environ.get(DATA_DIR_ENV) or os.path.join(REPO_DIR, "..", "shared", "data")
  return os.path.normpath(os.path.join(root, corpus))


# Flags that only the NLU task reads, with their defaults: set with --task=glue they are refused.
_NLU_ONLY_FLAGS = ("corpus_format", "multi_intent_policy", "intent_loss_weight",
                   "slot_intent_context", "slot_crf", "augment_slot_substitution",
                   "augment_copies", "augment_same_intent", "distill_teachers",
                   "limit_data", "resample", "per_intent_slot_heads", "focal_gamma",
                   "slot_loss_normalization", "slot_head", "keep_init_labels",
                   "constrain_slots_to_intent")


def _glue_task_name() -> str:
  """The canonical --glue_task ("" for --task=nlu); UsageError if it does not fit --task."""
  from bert_nlu.data import glue  # pylint: disable=g-import-not-at-top
  if FLAGS.task != "glue":
    if FLAGS.glue_task:
      raise app.UsageError("--glue_task needs --task=glue")
    return ""
  if not FLAGS.glue_task:
    raise app.UsageError(f"--task=glue needs --glue_task (one of "
                         f"{', '.join(glue.GLUE_TASK_NAMES)})")
  try:
    name = glue.canonical_task_name(FLAGS.glue_task)
  except ValueError as e:
    raise app.UsageError(f"--glue_task: {e}") from None
  for flag_name in _NLU_ONLY_FLAGS:
    if FLAGS[flag_name].value != FLAGS[flag_name].default:
      raise app.UsageError(f"--{flag_name} applies to --task=nlu only")
  if FLAGS.corpus != FLAGS["corpus"].default:
    raise app.UsageError("--corpus names an NLU corpus; give a GLUE task's directory with "
                         "--data_dir")
  if FLAGS.eval_on_test and "test" not in glue.GLUE_LAYOUTS[name].split_names:
    raise app.UsageError(f"--eval_on_test: GLUE keeps the {name} test labels private (only "
                         "SNLI's test split is labelled); dev is the evaluation split")
  return name


def _bert_files():
  """(bert_config_file, vocab_file, init_checkpoint, init_run_dir, do_lower_case,
  max_position_embeddings) from the flags; an --init_checkpoint directory is a fine-tuned run:
  its best checkpoint is taken."""
  from bert_nlu.convert import default_cache_dir  # pylint: disable=g-import-not-at-top
  bert_dir = FLAGS.bert_dir or os.path.join(default_cache_dir(), "all-MiniLM-L6-v2")
  config_file = FLAGS.bert_config_file or os.path.join(bert_dir, "bert_config.json")
  vocab_file = FLAGS.vocab_file or os.path.join(bert_dir, "vocab.txt")
  init_checkpoint = FLAGS.init_checkpoint or os.path.join(bert_dir, "bert_model.ckpt")
  init_run_dir = ""
  if os.path.isdir(init_checkpoint):
    init_run_dir, init_checkpoint = init_checkpoint, _best_checkpoint_of_run(init_checkpoint)
  for flag_name, path in (("bert_config_file", config_file), ("vocab_file", vocab_file),
                          ("init_checkpoint", init_checkpoint + ".index")):
    if flag_name == "init_checkpoint" and FLAGS.random_init:
      continue  # never read
    if not os.path.isfile(path):
      hint = ("" if FLAGS.bert_dir else
              " (run `python -m bert_nlu.convert --minilm` to install the default weights)")
      raise app.UsageError(f"--{flag_name}: {path} does not exist (or is not a file){hint}")
  bert_config = _read_bert_config(config_file)
  do_lower_case = FLAGS.do_lower_case
  if do_lower_case is None:
    do_lower_case = bool(bert_config.get("do_lower_case", True))
  max_positions = bert_config["max_position_embeddings"]
  max_seq_length = _max_seq_length_flag()
  if max_seq_length is not None and max_seq_length > max_positions:
    raise app.UsageError(f"--max_seq_length {max_seq_length} exceeds the model's "
                         f"max_position_embeddings {max_positions} ({config_file})")
  num_layers = bert_config["num_hidden_layers"]
  if FLAGS.layers is not None and FLAGS.layers > num_layers:
    raise app.UsageError(f"--layers (alias --num_hidden_layers) {FLAGS.layers} exceeds the "
                         f"model's {num_layers} layers ({config_file})")
  layers_used = FLAGS.layers or num_layers
  if not 0 <= FLAGS.train_layers_from <= layers_used:
    raise app.UsageError(f"--train_layers_from must be in [0, {layers_used}] (the layers used), "
                         f"got {FLAGS.train_layers_from}")
  return config_file, vocab_file, init_checkpoint, init_run_dir, do_lower_case, max_positions


# Flags that describe or replace the checkpoint encoder, refused with --hub_module (and why).
_HUB_EXCLUDED_FLAGS = {
    "bert_dir": "the module holds the encoder's weights and configuration",
    "bert_config_file": "the module holds the encoder's configuration",
    "vocab_file": "the tokenizer reads the module's vocab_file asset",
    "do_lower_case": "the tokenizer follows the module's do_lower_case",
    "init_checkpoint": "the encoder starts from the module's weights",
    "random_init": "the encoder starts from the module's weights (no re-initialisation)",
    "encoder_dropout": "the module's dropout rates are fixed inside its SavedModel",
}
# Flags that find encoder layers by BertModel's variable names: only for modules whose variables
# carry them (those written by bert_nlu.hub_export).
_HUB_NAME_BASED_FLAGS = ("train_layers_from", "layer_learning_rate_decay")


def _hub_files():
  """_bert_files()' tuple for --hub_module: ("", the module's vocab_file asset, "", "", its
  do_lower_case, 512); UsageErrors for flags that do not apply to a TF-Hub encoder."""
  from bert_nlu import hub_module  # pylint: disable=g-import-not-at-top
  for name, reason in _HUB_EXCLUDED_FLAGS.items():
    if FLAGS[name].present or FLAGS[name].value != FLAGS[name].default:
      raise app.UsageError(f"--{name} does not apply with --hub_module: {reason}")
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  try:
    info = hub_module.describe(FLAGS.hub_module)
  except (OSError, ValueError, tf.errors.OpError) as e:
    raise app.UsageError(f"--hub_module: cannot load {FLAGS.hub_module} as a TF-Hub BERT "
                         f"encoder: {e}") from None
  if not info.google_layout:
    for name in _HUB_NAME_BASED_FLAGS:
      if FLAGS[name].value != FLAGS[name].default:
        raise app.UsageError(
            f"--{name} finds encoder layers by BertModel's variable names, which the variables "
            f"of --hub_module={FLAGS.hub_module} do not carry (modules written by `python -m "
            "bert_nlu.hub_export` do)")
  if FLAGS.weight_average_decay:
    raise app.UsageError("--weight_average_decay does not apply with --hub_module: "
                         "tf.train.ExponentialMovingAverage cannot create averages of a TF-Hub "
                         "module's variables in TF 2.15 graph mode (their initial value is a "
                         "conditional)")
  if FLAGS.layers is not None and FLAGS.layer_learning_rate_decay != 1:
    raise app.UsageError("--layer_learning_rate_decay with --layers and --hub_module: the "
                         "module keeps all its layers, so the decay would count the unused ones")
  max_positions = hub_module.DEFAULT_MAX_POSITION_EMBEDDINGS
  max_seq_length = _max_seq_length_flag()
  if max_seq_length is not None and max_seq_length > max_positions:
    raise app.UsageError(f"--max_seq_length {max_seq_length} exceeds {max_positions}, the "
                         "position limit assumed for a TF-Hub encoder")
  if FLAGS.layers is not None and FLAGS.layers > info.num_hidden_layers:
    raise app.UsageError(f"--layers (alias --num_hidden_layers) {FLAGS.layers} exceeds the "
                         f"module's {info.num_hidden_layers} layers (--hub_module)")
  layers_used = FLAGS.layers or info.num_hidden_layers
  if not 0 <= FLAGS.train_layers_from <= layers_used:
    raise app.UsageError(f"--train_layers_from must be in [0, {layers_used}] (the layers used), "
                         f"got {FLAGS.train_layers_from}")
  return "", info.vocab_file, "", "", info.do_lower_case, max_positions


def _best_checkpoint_of_run(run_dir: str) -> str:
  """The best checkpoint of a fine-tuned run directory; UsageError if it has none."""
  from bert_nlu import warm_start  # pylint: disable=g-import-not-at-top
  checkpoint = warm_start.best_checkpoint_of_run(run_dir)
  if checkpoint is None:
    raise app.UsageError(f"--init_checkpoint: {run_dir} is a directory but holds no best "
                         "checkpoint (best_checkpoint/best_metrics.json) of a fine-tuned run")
  if not os.path.isfile(os.path.join(run_dir, "label_maps.json")):
    raise app.UsageError(f"--init_checkpoint: {run_dir} has no label_maps.json")
  return checkpoint


def _max_seq_length_flag():
  """--max_seq_length as an int in [3, 2**31 - 1], or None for 'auto'."""
  value = FLAGS.max_seq_length.strip()
  if value == "auto":
    return None
  if not re.fullmatch(r"[+-]?[0-9]+", value):
    raise app.UsageError(f"--max_seq_length must be an integer or 'auto', got {value!r}")
  length = int(value)
  if not 3 <= length <= _MAX_INT_FLAG:
    raise app.UsageError(f"--max_seq_length must be 'auto' or in [3, {_MAX_INT_FLAG}] "
                         f"([CLS] word [SEP]), got {length}")
  return length


def _read_bert_config(config_file: str) -> dict:
  """bert_config.json as a dict; UsageError naming --bert_config_file if it is not one."""
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  try:
    bert_config = io_utils.read_json(config_file)
  except (OSError, ValueError) as e:  # ValueError: malformed JSON or bad UTF-8
    raise app.UsageError(f"--bert_config_file: cannot read {config_file}: {e}") from None
  if not isinstance(bert_config, dict):
    raise app.UsageError(f"--bert_config_file: {config_file} is not a JSON object")
  for key in ("max_position_embeddings", "num_hidden_layers"):
    if not isinstance(bert_config.get(key), int):
      raise app.UsageError(f"--bert_config_file: {config_file} has no integer {key!r}")
  return bert_config


_MAX_INT_FLAG = 2**31 - 1  # TF batch sizes, steps and lengths beyond this only overflow later


def _validate_flags() -> None:
  _max_seq_length_flag()
  positive = ("train_batch_size", "eval_batch_size", "save_checkpoints_steps",
              "save_summary_steps", "keep_checkpoint_max", "loss_scale_growth_steps",
              "gradient_accumulation_steps")
  for name in positive:
    if getattr(FLAGS, name) <= 0:
      raise app.UsageError(f"--{name} must be > 0, got {getattr(FLAGS, name)}")
  for name in positive + ("eval_steps", "early_stopping_evals", "layers"):
    if getattr(FLAGS, name) is not None and getattr(FLAGS, name) > _MAX_INT_FLAG:
      raise app.UsageError(f"--{name} must be <= {_MAX_INT_FLAG}, got {getattr(FLAGS, name)}")
  if FLAGS.layers is not None and FLAGS.layers < 1:
    raise app.UsageError(f"--layers (alias --num_hidden_layers) must be >= 1, got {FLAGS.layers}")
  if not 1 <= FLAGS.initial_loss_scale <= 2.0 ** 64:
    raise app.UsageError(f"--initial_loss_scale must be in [1, 2**64], got "
                         f"{FLAGS.initial_loss_scale}")
  if FLAGS.fp16 and FLAGS.optimizer_implementation != "fused":
    raise app.UsageError("--fp16 needs --optimizer_implementation=fused (dynamic loss scaling "
                         "skips overflowing steps inside the fused update)")
  if FLAGS.adam_bias_correction and FLAGS.optimizer_implementation != "fused":
    raise app.UsageError("--adam_bias_correction needs --optimizer_implementation=fused (bert's "
                         "optimizer has no bias correction)")
  if not (math.isfinite(FLAGS.adam_epsilon) and FLAGS.adam_epsilon > 0):
    raise app.UsageError(f"--adam_epsilon must be finite and > 0 (a parameter whose gradients are "
                         f"all zero has v = 0), got {FLAGS.adam_epsilon}")
  if FLAGS.fp16 and FLAGS.bf16:
    raise app.UsageError("--fp16 and --bf16 are two mixed-precision modes (float16 on GPUs, "
                         "bfloat16 on CPUs): give at most one")
  if FLAGS.per_intent_slot_heads and FLAGS.multi_intent_policy == "multilabel":
    raise app.UsageError("--per_intent_slot_heads routes each utterance through ONE intent's slot "
                         "layer; --multi_intent_policy=multilabel predicts a set of intents")
  if FLAGS.constrain_slots_to_intent:
    for name, value, why in (
        ("multi_intent_policy", "multilabel", "it predicts a set of intents, not one"),
        ("slot_head", "bio_type", "the constraint masks full BIO tags"),
        ("per_intent_slot_heads", True, "each intent's layer already decodes its own slots")):
      if FLAGS[name].value == value:
        raise app.UsageError(f"--constrain_slots_to_intent cannot be combined with "
                             f"--{name}={value}: {why}")
  if FLAGS.slot_head == "bio_type":
    for name, why in (("slot_crf", "the CRF runs over the full BIO tags"),
                      ("per_intent_slot_heads", "the per-intent layers output full BIO tags"),
                      ("distill_teachers", "the teachers' slot targets are full-tag "
                       "distributions")):
      if FLAGS[name].value != FLAGS[name].default:
        raise app.UsageError(f"--slot_head=bio_type cannot be combined with --{name}: {why}")
  for name in ("learning_rate", "num_train_epochs", "head_learning_rate_multiplier"):
    if not 0 < getattr(FLAGS, name) < math.inf:  # also rejects nan
      raise app.UsageError(f"--{name} must be finite and > 0, got {getattr(FLAGS, name)}")
  for name in ("weight_decay", "intent_loss_weight", "focal_gamma"):
    if not 0 <= getattr(FLAGS, name) < math.inf:
      raise app.UsageError(f"--{name} must be finite and >= 0, got {getattr(FLAGS, name)}")
  if not 0 < FLAGS.layer_learning_rate_decay <= 1:
    raise app.UsageError(f"--layer_learning_rate_decay must be in (0, 1], got "
                         f"{FLAGS.layer_learning_rate_decay}")
  if not 0 <= FLAGS.weight_average_decay < 1:
    raise app.UsageError(f"--weight_average_decay must be in [0, 1), got "
                         f"{FLAGS.weight_average_decay}")
  if not 0 <= FLAGS.warmup_proportion < 1:
    raise app.UsageError("--warmup_proportion must be in [0, 1)")
  if not 0 <= FLAGS.head_dropout < 1:
    raise app.UsageError("--head_dropout must be in [0, 1)")
  if FLAGS.encoder_dropout is not None and not 0 <= FLAGS.encoder_dropout < 1:
    raise app.UsageError("--encoder_dropout must be in [0, 1)")
  if not 0 <= FLAGS.augment_slot_substitution <= 1:
    raise app.UsageError(f"--augment_slot_substitution must be in [0, 1], got "
                         f"{FLAGS.augment_slot_substitution}")
  if not 1 <= FLAGS.augment_copies <= 100:
    raise app.UsageError(f"--augment_copies must be in [1, 100], got {FLAGS.augment_copies}")
  if not 0 < FLAGS.distill_temperature < math.inf:
    raise app.UsageError(f"--distill_temperature must be finite and > 0, got "
                         f"{FLAGS.distill_temperature}")
  if not 0 <= FLAGS.distill_alpha <= 1:
    raise app.UsageError(f"--distill_alpha must be in [0, 1], got {FLAGS.distill_alpha}")
  for teacher in FLAGS.distill_teachers:
    if not os.path.isdir(teacher):
      raise app.UsageError(f"--distill_teachers: {teacher} is not a run directory")
  for name in ("intra_op_threads", "inter_op_threads"):
    if not 0 <= getattr(FLAGS, name) <= 1024:
      raise app.UsageError(f"--{name} must be in [0, 1024] (0 = TensorFlow's default), got "
                           f"{getattr(FLAGS, name)}")
  if FLAGS.eval_steps < 0 or FLAGS.early_stopping_evals < 0:
    raise app.UsageError("--eval_steps and --early_stopping_evals must be >= 0")
  if not 0 <= FLAGS.eval_every_steps <= _MAX_INT_FLAG:
    raise app.UsageError(f"--eval_every_steps must be in [0, {_MAX_INT_FLAG}], got "
                         f"{FLAGS.eval_every_steps}")
  if (_evaluator_flag() == "checkpoint" and FLAGS.eval_every_steps
      and FLAGS.eval_every_steps != FLAGS.save_checkpoints_steps):
    raise app.UsageError(f"--eval_every_steps={FLAGS.eval_every_steps} needs --evaluator="
                         "in_process: the checkpoint evaluator evaluates every checkpoint "
                         f"(--save_checkpoints_steps={FLAGS.save_checkpoints_steps})")
  if not (FLAGS.run_train or FLAGS.run_eval or FLAGS.run_predict):
    raise app.UsageError("nothing to do: all of --run_train, --run_eval, --run_predict are off")
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir must not be empty")
  _validate_distribution_flags()


def _evaluator_flag() -> str:
  """--evaluator, except that replicated training (--distribution) is evaluated by the checkpoint
  evaluator: the in-process one would build its dev graph inside the replicated training session,
  and evaluation stays on one device. An explicit --evaluator=in_process there is a usage error."""
  if FLAGS.distribution == "none":
    return FLAGS.evaluator
  if FLAGS.evaluator == "in_process" and not FLAGS["evaluator"].using_default_value:
    raise app.UsageError(f"--evaluator=in_process cannot evaluate --distribution="
                         f"{FLAGS.distribution} training: use --evaluator=checkpoint (the default "
                         "there)")
  return "checkpoint"


def _validate_distribution_flags() -> None:
  if FLAGS.num_gpus < 0:
    raise app.UsageError(f"--num_gpus must be >= 0, got {FLAGS.num_gpus}")
  if FLAGS.distribution != "mirrored" and (FLAGS.num_gpus or FLAGS.devices):
    raise app.UsageError("--num_gpus and --devices need --distribution=mirrored")
  if FLAGS.num_gpus and FLAGS.devices:
    raise app.UsageError("--num_gpus and --devices are alternatives: give one")
  if FLAGS.distribution == "none":
    return
  if FLAGS.optimizer_implementation != "fused":
    raise app.UsageError("--distribution needs --optimizer_implementation=fused (bert's optimizer "
                         "assigns mirrored variables in the replica context, which tf.distribute "
                         "refuses)")
  replicas = len(FLAGS.devices) or FLAGS.num_gpus
  if replicas and FLAGS.train_batch_size % replicas:
    raise app.UsageError(f"--train_batch_size={FLAGS.train_batch_size} is the global batch and "
                         f"must be a multiple of the {replicas} replicas")
  if FLAGS.distribution == "multi_worker" and "TF_CONFIG" not in os.environ:
    raise app.UsageError("--distribution=multi_worker reads the cluster from $TF_CONFIG, which is "
                         "not set (python -m bert_nlu.launch sets it for a local cluster)")


def _parse_limit_data(values) -> tuple:
  """--limit_data values -> ((intent, count), ...); pairs separated by commas or spaces."""
  tokens = [token for value in values for token in value.replace(",", " ").split()]
  if len(tokens) % 2:
    raise app.UsageError(f"--limit_data needs INTENT COUNT pairs, got {' '.join(tokens)!r}")
  limits = []
  for intent, count in zip(tokens[::2], tokens[1::2]):
    if not re.fullmatch(r"[0-9]+", count) or int(count) > _MAX_INT_FLAG:
      raise app.UsageError(f"--limit_data: COUNT of {intent!r} must be an integer in "
                           f"[0, {_MAX_INT_FLAG}], got {count!r}")
    if intent in dict(limits):
      raise app.UsageError(f"--limit_data names intent {intent!r} twice")
    limits.append((intent, int(count)))
  return tuple(limits)


def _parse_profile_steps(value: str):
  if not value:
    return None
  try:
    first, last = (int(part) for part in value.split(":"))
  except ValueError:
    raise app.UsageError(f"--profile_steps must be START:END integers, got {value!r}") from None
  if not 1 <= first <= last:
    raise app.UsageError(f"--profile_steps needs 1 <= START <= END, got {value!r}")
  return (first, last)


def build_run_config():
  """Flags -> frozen RunConfig."""
  from bert_nlu import config  # pylint: disable=g-import-not-at-top
  _validate_flags()
  glue_task = _glue_task_name()
  default_corpus = os.path.join("glue", glue_task) if glue_task else FLAGS.corpus
  data_dir = FLAGS.data_dir or _corpus_dir(default_corpus)
  if not os.path.isdir(data_dir):
    flag_name = "data_dir" if FLAGS.data_dir else ("glue_task" if glue_task else "corpus")
    raise app.UsageError(f"--{flag_name}: {data_dir} is not a directory")
  (config_file, vocab_file, init_checkpoint, init_run_dir, do_lower_case,
   max_positions) = _hub_files() if FLAGS.hub_module else _bert_files()
  if glue_task and init_run_dir:
    raise app.UsageError("--init_checkpoint: a fine-tuned run directory (warm start by label "
                         "name) applies to --task=nlu only; give GLUE a checkpoint file prefix")
  if FLAGS.keep_init_labels and (not init_run_dir or FLAGS.random_init):
    raise app.UsageError("--keep_init_labels keeps the labels of the fine-tuned run it continues "
                         "from: it needs --init_checkpoint=<a fine-tuned run directory> (got "
                         f"{FLAGS.init_checkpoint or 'none'}) and no --random_init")
  max_seq_length = _max_seq_length_flag()
  if glue_task and max_seq_length is None:
    raise app.UsageError("--max_seq_length=auto is for NLU corpora; give GLUE tasks a length "
                         "(e.g. 128)")
  return config.RunConfig(
      output_dir=FLAGS.output_dir,
      data=config.DataConfig(
          data_dir=data_dir, task=FLAGS.task, glue_task=glue_task,
          corpus_format=FLAGS.corpus_format,
          multi_intent_policy=FLAGS.multi_intent_policy,
          max_seq_length=max_positions if max_seq_length is None else max_seq_length,
          auto_max_seq_length=max_seq_length is None,
          cache_dir=FLAGS.cache_dir, bucket_by_length=FLAGS.bucket_by_length,
          bucket_width=FLAGS.bucket_width,
          augment_slot_substitution=FLAGS.augment_slot_substitution,
          augment_copies=FLAGS.augment_copies, augment_same_intent=FLAGS.augment_same_intent,
          limit_data=_parse_limit_data(FLAGS.limit_data), resample=FLAGS.resample,
          train_examples=FLAGS.train_examples),
      model=config.ModelConfig(
          bert_config_file=config_file, vocab_file=vocab_file, init_checkpoint=init_checkpoint,
          do_lower_case=do_lower_case, hub_module=FLAGS.hub_module,
          intent_loss_weight=FLAGS.intent_loss_weight,
          head_dropout=FLAGS.head_dropout, encoder_dropout=FLAGS.encoder_dropout,
          num_hidden_layers=FLAGS.layers, train_layers_from=FLAGS.train_layers_from,
          random_init=FLAGS.random_init, init_run_dir=init_run_dir,
          keep_init_labels=FLAGS.keep_init_labels,
          slot_intent_context=FLAGS.slot_intent_context, slot_crf=FLAGS.slot_crf,
          per_intent_slot_heads=FLAGS.per_intent_slot_heads, slot_head=FLAGS.slot_head,
          constrain_slots_to_intent=FLAGS.constrain_slots_to_intent,
          focal_gamma=FLAGS.focal_gamma,
          slot_loss_normalization=FLAGS.slot_loss_normalization,
          fp16=FLAGS.fp16, bf16=FLAGS.bf16),
      train=config.TrainConfig(
          train_batch_size=FLAGS.train_batch_size, eval_batch_size=FLAGS.eval_batch_size,
          learning_rate=FLAGS.learning_rate, warmup_proportion=FLAGS.warmup_proportion,
          lr_schedule=FLAGS.lr_schedule,
          num_train_epochs=FLAGS.num_train_epochs, weight_decay=FLAGS.weight_decay,
          head_learning_rate_multiplier=FLAGS.head_learning_rate_multiplier,
          layer_learning_rate_decay=FLAGS.layer_learning_rate_decay,
          weight_average_decay=FLAGS.weight_average_decay,
          optimizer_implementation=FLAGS.optimizer_implementation,
          adam_bias_correction=FLAGS.adam_bias_correction,
          adam_epsilon=FLAGS.adam_epsilon,
          gradient_accumulation_steps=FLAGS.gradient_accumulation_steps,
          initial_loss_scale=FLAGS.initial_loss_scale,
          loss_scale_growth_steps=FLAGS.loss_scale_growth_steps,
          save_checkpoints_steps=FLAGS.save_checkpoints_steps,
          eval_every_steps=FLAGS.eval_every_steps or None, evaluator=_evaluator_flag(),
          save_summary_steps=FLAGS.save_summary_steps,
          keep_checkpoint_max=FLAGS.keep_checkpoint_max,
          eval_steps=FLAGS.eval_steps or None,
          early_stopping_evals=FLAGS.early_stopping_evals, seed=FLAGS.seed,
          distill_teachers=tuple(FLAGS.distill_teachers),
          distill_temperature=FLAGS.distill_temperature, distill_alpha=FLAGS.distill_alpha,
          distribution=FLAGS.distribution, num_gpus=FLAGS.num_gpus,
          devices=tuple(FLAGS.devices)),
      profile=config.ProfileConfig(
          steps=_parse_profile_steps(FLAGS.profile_steps), profile_dir=FLAGS.profile_dir,
          tensorboard_trace=FLAGS.profile_tensorboard),
      run_train=FLAGS.run_train, run_eval=FLAGS.run_eval, run_predict=FLAGS.run_predict,
      eval_on_test=FLAGS.eval_on_test, predict_input=FLAGS.predict_input,
      intra_op_threads=FLAGS.intra_op_threads, inter_op_threads=FLAGS.inter_op_threads)


def _multi_worker_placement_first():
  """--distribution=multi_worker training with --hub_module: the strategy, built before
  build_run_config loads the module (loading a SavedModel starts TensorFlow's runtime, after which
  MultiWorkerMirroredStrategy cannot configure its collectives: "Collective ops must be
  configured at program startup"); else None (train.run builds the strategy first itself)."""
  if not (FLAGS.distribution == "multi_worker" and FLAGS.hub_module and FLAGS.run_train):
    return None
  _validate_flags()  # e.g. TF_CONFIG must be set
  from bert_nlu import distribute  # pylint: disable=g-import-not-at-top
  return distribute.make_placement(FLAGS.distribution)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # The terminal shows one progress line per interval, warnings and the result tables; absl's
  # --verbosity=1 (or more) also shows TensorFlow's full log, C++ start-up lines included (which
  # must be decided before TensorFlow is imported: bert_nlu.compat hides them by default).
  verbose = FLAGS.verbosity >= 1
  if verbose:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
  from bert_nlu import hooks, train  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  from bert_nlu.errors import InputError  # pylint: disable=g-import-not-at-top
  tf.logging.set_verbosity(tf.logging.INFO if verbose else tf.logging.WARN)
  placement = _multi_worker_placement_first()
  run_config = build_run_config()
  try:
    train.run(run_config, overwrite_output_dir=FLAGS.overwrite_output_dir, placement=placement)
    if run_config.run_predict:
      from bert_nlu import predict  # pylint: disable=g-import-not-at-top
      from bert_nlu.hooks import latest_export  # pylint: disable=g-import-not-at-top
      predictor = predict.predictor_for_export(latest_export(run_config.output_dir))
      predict.predict_lines(predictor, predict.read_utterances(run_config.predict_input))
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except hooks.TrainingInterrupted as e:
    print(f"stopped: {e}", file=sys.stderr)
    return 143 if e.signal_name == "SIGTERM" else 130
  except hooks.NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  except OSError as e:  # unwritable or full disk, missing file: say which path and why
    print(f"error: {e.filename or ''}: {e.strerror or e}".strip(": "), file=sys.stderr)
    return 2
  except (IndexError, RuntimeError) as e:
    # TensorFlow's TensorBoard event writer re-raises a failed write (full disk, file size limit)
    # at its next flush as the error its status maps to (EFBIG: IndexError).
    if _EVENT_WRITE_FAILURE not in str(e):
      raise
    print(f"error: TensorFlow could not write TensorBoard events: {str(e).splitlines()[0]}",
          file=sys.stderr)
    return 2
  except tf.errors.OpError as e:  # e.g. a truncated or corrupt checkpoint, disk full in TF's writer
    lines = [line for line in e.message.splitlines() if line.strip()
             and not line.startswith((" ", "\t", "Detected at", "Node:", "Graph execution"))]
    print(f"error: TensorFlow could not {_describe_op_error(e)}: "
          f"{lines[-1] if lines else e.message}", file=sys.stderr)
    return 2
  return 0


_EVENT_WRITE_FAILURE = "Failed to flush"  # TensorFlow's EventFileWriter, on a failed write


def _quiet_event_writer_errors(default_hook):
  """A threading.excepthook that leaves a failed write of TensorFlow's event writer thread to the
  main thread (which gets the same error at the writer's next flush and reports it as one line);
  every other thread's exception goes to `default_hook`."""
  def hook(args):
    if type(args.thread).__name__ == "_EventLoggerThread" and isinstance(
        args.exc_value, (IndexError, RuntimeError, OSError)):
      return
    default_hook(args)
  return hook


def _describe_op_error(error) -> str:
  """A short phrase for what TensorFlow was doing when `error` happened."""
  if isinstance(error, (_tf_errors().DataLossError, _tf_errors().NotFoundError)):
    return "read a file (missing, truncated or corrupt checkpoint/record?)"
  if isinstance(error, _tf_errors().ResourceExhaustedError):
    return "allocate memory or disk space"
  return "complete an operation"


def _tf_errors():
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  return tf.errors


def run_main():
  threading.excepthook = _quiet_event_writer_errors(threading.excepthook)
  app.run(main)


if __name__ == "__main__":
  run_main()
