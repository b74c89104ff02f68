"""Typed, frozen configuration of a run: built once from flags in the entry point, passed down.

A flag's path is one call chain: `run_bert_nlu.py` flag -> a field here -> the one function that
uses it. The whole `RunConfig` is saved as `run_config.json` in the output directory.
"""

import dataclasses
import json
import os
from typing import Optional, Tuple

# Task families (DataConfig.task).
NLU_TASK = "nlu"
GLUE_TASK = "glue"
TASKS = (NLU_TASK, GLUE_TASK)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the corpus is and how it becomes model input.

  Attributes:
    data_dir: corpus directory (train/dev/test subfolders with seq.in, seq.out, label), or the
      SNIPS 2017 raw folder when corpus_format == "snips_json", or a GLUE task's directory of
      TSV files (task == "glue").
    task: "nlu" (joint intent + slots) or "glue" (sentence (pair) classification / regression).
    glue_task: with task == "glue", the GLUE task's canonical name (CoLA, SST-2, MRPC, STS-B,
      QQP, MNLI, QNLI, RTE, WNLI, SNLI).
    corpus_format: "seq" or "snips_json" (NLU).
    multi_intent_policy: "atomic" (ATIS `a#b` is one class), "first", or "multilabel" (the set
      {a, b}: a sigmoid per atomic intent, threshold chosen on dev).
    max_seq_length: word pieces per example including [CLS] and [SEP]. With auto_max_seq_length,
      the upper bound (the model's position limit) until the run resolves it.
    auto_max_seq_length: the run replaces max_seq_length by the smallest length that truncates
      no train/dev/test example (at most the bound above) and records it in run_config.json.
    cache_dir: where TFRecords and their metadata go ("" = <output_dir>/data_cache, whose stale
      entries the run removes; a given directory may be shared by runs and is never tidied).
    bucket_by_length: batch training examples of similar length (dynamic padding); False pads
      every batch to max_seq_length.
    bucket_width: with bucket_by_length, the word-piece width of a length bucket: a training
      batch holds examples whose lengths fall in one bucket and is padded to its longest. 1 =
      every batch holds examples of one length (no padding at all); >= max_seq_length = one
      bucket: batches drawn at random, each padded to its longest.
    augment_slot_substitution: probability, per training example and copy, of adding a copy whose
      slot values are replaced by values of the same slot type from other training utterances
      (bert_nlu/data/augment.py; 0 = off). Drawn once from the run's seed.
    augment_copies: how many times each training example is offered for augmentation.
    augment_same_intent: draw substitute values only from utterances of the same intent.
    limit_data: ((intent, count), ...): train on `count` examples of each named intent, chosen
      reproducibly from TrainConfig.seed (0 drops the intent; see bert_nlu/data/limit.py). The
      label maps are those of the limited data. () = all of train.
    resample: repeat each limited intent's kept examples up to its original count.
    train_examples: train on this many training examples, the same ones for every seed (any task;
      applied before limit_data; bert_nlu/data/limit.py subset_examples). 0 = all of train.
  """
  data_dir: str
  task: str = NLU_TASK
  glue_task: str = ""
  corpus_format: str = "seq"
  multi_intent_policy: str = "atomic"
  max_seq_length: int = 64
  auto_max_seq_length: bool = False
  cache_dir: str = ""
  bucket_by_length: bool = True
  bucket_width: int = 8
  augment_slot_substitution: float = 0.0
  augment_copies: int = 1
  augment_same_intent: bool = False
  limit_data: Tuple[Tuple[str, int], ...] = ()
  resample: bool = True
  train_examples: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The pretrained encoder and the heads on top.

  Attributes:
    bert_config_file, vocab_file, init_checkpoint: Google TF BERT checkpoint files. With
      hub_module: bert_config_file and init_checkpoint are "" and vocab_file is the module's
      vocab_file asset.
    do_lower_case: tokenizer casing (must match the checkpoint; with hub_module, the module's).
    hub_module: a TF-Hub BERT encoder (local SavedModel path or handle, passed to tensorflow_hub
      unchanged) used as the encoder instead of the checkpoint's BertModel ("" = BertModel);
      see bert_nlu/hub_module.py.
    intent_loss_weight: total loss = intent_loss_weight * intent_loss + slot_loss.
    head_dropout: dropout before both heads (training only).
    encoder_dropout: replaces bert_config's hidden and attention dropout rates (None = keep).
    num_hidden_layers: use only the first N encoder layers (None = all).
    init_run_dir: a fine-tuned run directory to continue from ("" = none): init_checkpoint is
      then its best checkpoint, and the heads load by label name (bert_nlu/warm_start.py).
    keep_init_labels: with init_run_dir: the label maps are that run's labels followed by the
      new labels of this run's training split (none dropped), so its intents and slots are still
      predicted and evaluated (sequential fine-tuning that measures forgetting).
    random_init: the same architecture with no pretrained weights: init_checkpoint is not
      loaded (every weight starts from its initializer, seeded by TrainConfig.seed).
    train_layers_from: K: the embeddings and encoder layers < K are frozen (no gradient, no
      optimizer slots, no weight decay); layers >= K, the pooler and the heads train. 0 = all
      train; K = the number of layers used trains the pooler and heads only.
    slot_intent_context: the slot head also sees the pooled utterance vector.
    slot_crf: a linear-chain CRF over the words' first pieces (loss + Viterbi decoding).
    per_intent_slot_heads: one slot layer per intent: the loss through the gold intent's, the
      prediction through the predicted intent's.
    slot_head: "tags" (one softmax, or CRF, over the BIO tags) or "bio_type" (a BIO position
      softmax and a slot-type softmax, decoded back to tags; bert_nlu/tasks/nlu.py).
    constrain_slots_to_intent: decode each utterance's slots with only the slot types the train
      split shows with its predicted intent (bert_nlu/slot_constraints.py); evaluation, selection,
      the export and predict all decode so.
    focal_gamma: focal loss exponent of the intent and softmax slot losses (0 = cross-entropy).
    slot_loss_normalization: "token" (mean over the batch's words) or "sentence" (mean of each
      sentence's per-word mean).
    fp16: mixed precision: TensorFlow's automatic mixed-precision graph rewrite (float16 compute
      on GPUs, float32 master weights) with dynamic loss scaling. Without a GPU the rewrite
      leaves the graph alone and only the loss scaling runs.
    bf16: mixed precision on CPUs: TensorFlow's oneDNN bfloat16 rewrite (matrix products and the
      element-wise ops between them in bfloat16; variables, optimizer update, loss, softmax/CRF
      and metrics float32) for training, evaluation and the export. Active only on a CPU with
      bfloat16 instructions and oneDNN on (`bert_nlu.cpu_features`); elsewhere float32.
  """
  bert_config_file: str
  vocab_file: str
  init_checkpoint: str
  do_lower_case: bool = True
  hub_module: str = ""
  intent_loss_weight: float = 1.0
  head_dropout: float = 0.1
  encoder_dropout: Optional[float] = None
  num_hidden_layers: Optional[int] = None
  train_layers_from: int = 0
  random_init: bool = False
  init_run_dir: str = ""
  keep_init_labels: bool = False
  slot_intent_context: bool = False
  slot_crf: bool = False
  per_intent_slot_heads: bool = False
  slot_head: str = "tags"
  constrain_slots_to_intent: bool = False
  focal_gamma: float = 0.0
  slot_loss_normalization: str = "token"
  fp16: bool = False
  bf16: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation and the training loop.

  Attributes:
    train_batch_size, eval_batch_size: examples per batch.
    learning_rate: peak learning rate of AdamWeightDecay (linear warmup, then linear decay to 0).
    warmup_proportion: share of training steps spent warming up.
    lr_schedule: the decay after the warmup: "linear" (bert's), "cosine", or "one_cycle" (warmup
      from 1/25 of the peak, cosine decay to 1/250000 of it); see
      optimization.learning_rate_schedule.
    num_train_epochs: passes over the training set (may be fractional).
    weight_decay: decoupled weight decay (LayerNorm and biases excluded).
    head_learning_rate_multiplier: the task heads learn at this multiple of learning_rate.
    layer_learning_rate_decay: d in (0, 1]: encoder layer i of L learns at d^(L - i) times the
      rate, the embeddings at d^(L + 1) (1 = no layer-wise decay).
    weight_average_decay: evaluate, select, export and predict with an exponential moving average
      of the weights updated every step with this decay (0 = the raw weights).
    optimizer_implementation: "fused" (fast) or "bert" (bert.optimization's own op-by-op
      AdamWeightDecayOptimizer); both compute the same update.
    adam_bias_correction: divide Adam's moments by (1 - beta^t) as Adam and PyTorch's AdamW do
      (False: bert's rule, no correction; update t is then (1 - 0.9^t) / sqrt(1 - 0.999^t) times
      AdamW's at the same rate). Needs optimizer_implementation "fused".
    adam_epsilon: Adam's epsilon (bert: 1e-6; PyTorch's AdamW and the HF Trainer: 1e-8).
    gradient_accumulation_steps: K: update the weights every K batches of train_batch_size with
      their mean gradient (a K-times larger effective batch); steps count batches, the schedule
      counts updates (1 = an update every batch).
    initial_loss_scale, loss_scale_growth_steps: dynamic loss scaling under fp16 (start value;
      the scale doubles after this many finite steps in a row and halves on an overflow).
    clip_norm: global gradient-norm clipping.
    distribution: "none", "mirrored" (local devices) or "multi_worker" (TF_CONFIG cluster); see
      bert_nlu/distribute.py. train_batch_size is then the GLOBAL batch of a step. Replicated
      runs are evaluated by the checkpoint evaluator (evaluator must be "checkpoint").
    num_gpus, devices: mirrored: mirror over this many GPUs, or over these device names
      (e.g. ("/cpu:0", "/cpu:1")); neither = every visible GPU.
    save_checkpoints_steps: a checkpoint every N steps (what a killed run resumes from); with
      evaluator="checkpoint" every new checkpoint is evaluated on dev.
    eval_every_steps: dev evaluation every N steps (None = every save_checkpoints_steps); with
      evaluator="checkpoint" it must equal save_checkpoints_steps.
    evaluator: "in_process" (the dev graph is built once and reads the training session's
      weights; a checkpoint is written for a new best only: bert_nlu/evaluation.py) or
      "checkpoint" (Estimator train_and_evaluate: every checkpoint is restored into a new graph).
    save_summary_steps: TensorBoard training scalars every N steps.
    keep_checkpoint_max: recent checkpoints kept (the best one is kept separately).
    eval_steps: dev batches per periodic evaluation (None = the whole dev set).
    early_stopping_evals: stop when dev whole-frame accuracy has not improved for this many
      evaluations (0 = never stop early).
    seed: graph-level seed; with explicit initializers, runs with one seed are repeatable.
    distill_teachers: run directories whose best exports, as an ensemble, give soft training
      targets (bert_nlu/distill.py); empty = no distillation.
    distill_temperature: T of the soft targets and of the student's soft term.
    distill_alpha: weight of the teacher term in each loss (0 = gold labels only).
  """
  train_batch_size: int = 32
  eval_batch_size: int = 64
  learning_rate: float = 1e-4
  warmup_proportion: float = 0.1
  lr_schedule: str = "linear"
  num_train_epochs: float = 10.0
  weight_decay: float = 0.01
  head_learning_rate_multiplier: float = 1.0
  layer_learning_rate_decay: float = 1.0
  weight_average_decay: float = 0.0
  optimizer_implementation: str = "fused"
  adam_bias_correction: bool = False
  adam_epsilon: float = 1e-6
  gradient_accumulation_steps: int = 1
  initial_loss_scale: float = 2.0 ** 15
  loss_scale_growth_steps: int = 2000
  clip_norm: float = 1.0
  distribution: str = "none"
  num_gpus: int = 0
  devices: Tuple[str, ...] = ()
  save_checkpoints_steps: int = 1000
  eval_every_steps: Optional[int] = None
  evaluator: str = "in_process"
  save_summary_steps: int = 100
  keep_checkpoint_max: int = 3
  eval_steps: Optional[int] = None
  early_stopping_evals: int = 0
  seed: int = 42
  distill_teachers: Tuple[str, ...] = ()
  distill_temperature: float = 2.0
  distill_alpha: float = 0.5

  @property
  def evaluation_interval(self) -> int:
    """Global steps between dev evaluations."""
    return self.eval_every_steps or self.save_checkpoints_steps


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
  """Step profiling (off unless `steps` is set).

  Attributes:
    steps: (first, last) global steps to trace, inclusive; None = no profiling (no hooks built).
    profile_dir: where profile_N dumps, timelines and TensorBoard traces go
      ("" = <output_dir>/profile).
    tensorboard_trace: also capture a TensorBoard profile-plugin trace of those steps.
  """
  steps: Optional[Tuple[int, int]] = None
  profile_dir: str = ""
  tensorboard_trace: bool = False


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Everything one invocation of run_bert_nlu.py does.

  Attributes:
    output_dir: checkpoints, TensorBoard events, exports and results.
    run_train / run_eval / run_predict: which phases to run.
    eval_on_test: also evaluate the best checkpoint on the test split.
    predict_input: file of utterances (one per line) for run_predict; "-" reads stdin.
    intra_op_threads, inter_op_threads: TensorFlow's thread pools for one op and across ops
      (0 = TensorFlow's choice, all cores). A sweep running N trainings at once divides the
      cores between them. Execution only: they do not change what is computed.
  """
  output_dir: str
  data: DataConfig
  model: ModelConfig
  train: TrainConfig = TrainConfig()
  profile: ProfileConfig = ProfileConfig()
  run_train: bool = True
  run_eval: bool = True
  run_predict: bool = False
  eval_on_test: bool = False
  predict_input: str = ""
  intra_op_threads: int = 0
  inter_op_threads: int = 0

  @property
  def cache_dir(self) -> str:
    return self.data.cache_dir or os.path.join(self.output_dir, "data_cache")

  @property
  def profile_dir(self) -> str:
    return self.profile.profile_dir or os.path.join(self.output_dir, "profile")

  def to_json_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json_string(self) -> str:
    return json.dumps(self.to_json_dict(), indent=2, sort_keys=True)
