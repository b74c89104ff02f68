"""The Estimator model_fn: BertModel + a task's head, losses, predictions and metrics.

`model_fn_builder` returns a closure; its arguments are everything the model depends on. Tasks
(NLU now, sentence classification later) differ only in the `task` object: head, losses,
predictions, metrics. Model variants (layer truncation, frozen lower layers, CRF, fp16 loss scaling)
are fields of `ModelConfig`; optimisation variants (layer-wise learning-rate decay, weight
averaging) fields of `TrainConfig`. fp16 and bf16 compute are graph rewrites chosen in the
session config (`session_config`).
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
from tensorflow.core.protobuf import rewriter_config_pb2

from bert_nlu import encoder
from bert_nlu import hub_module
from bert_nlu import optimization
from bert_nlu.compat import modeling, tf
from bert_nlu.config import ModelConfig, ProfileConfig, TrainConfig

# Graph collection holding the training loss (read by the non-finite guard).
LOSS_COLLECTION = "bert_nlu_loss"


def session_config(model_config: ModelConfig, intra_op_threads: int = 0,
                   inter_op_threads: int = 0,
                   bf16_active: bool = False) -> Optional[tf.ConfigProto]:
  """The session config of a run: thread pools and a mixed-precision graph rewrite, if any.

  fp16: the grappler rewrite `auto_mixed_precision` runs eligible ops (MatMul, BatchMatMul, ...) in
  float16 on GPUs with float32 variables (casts inserted, fp32 kept where float16 is unsafe:
  softmax cross-entropy, reductions); on a machine without a GPU it leaves the graph alone.
  (Its CPU emulation, `auto_mixed_precision_cpu`, crashes TF 2.15 on this graph: not offered.)

  bf16: the grappler rewrite `auto_mixed_precision_onednn_bfloat16` (oneDNN's lists: MatMul,
  BatchMatMul and Einsum always; element-wise ops such as Add, Mul, Erf, Softmax when they sit
  between or follow those; Exp, Mean, Sum and softmax cross-entropy never). The model keeps the
  optimizer and the heads' outputs out of it with float32 boundaries (`mixed_precision`).
  It converts nothing unless TensorFlow's oneDNN kernels are on.

  Args:
    model_config: the model variant (its fp16 field turns on the float16 rewrite).
    intra_op_threads, inter_op_threads: TensorFlow's thread pool sizes (0 = its default, all
      cores); a sweep running several trainings at once divides the cores between them.
    bf16_active: turn on the bfloat16 rewrite (`cpu_features.detect_bf16_support(...).active`
      for model_config.bf16; True forces it, e.g. to inspect the rewritten graph).

  Returns:
    The ConfigProto, or None when nothing is to be set.
  """
  if not (model_config.fp16 or bf16_active or intra_op_threads or inter_op_threads):
    return None
  config = tf.ConfigProto(intra_op_parallelism_threads=intra_op_threads,
                          inter_op_parallelism_threads=inter_op_threads)
  rewrite_options = config.graph_options.rewrite_options
  if model_config.fp16:
    rewrite_options.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
  if bf16_active:
    rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
  return config


def _warm_start(init_checkpoint: str, variables: Sequence[tf.Variable]) -> None:
  """Initialises each of `variables` that the checkpoint has (by name) from it.

  A head variable (outside the encoder) whose shape differs from the checkpoint's (e.g. a slot
  head that now also reads the utterance vector) keeps its initializer, with a warning; an
  encoder variable of another shape is an error (TensorFlow's).
  """
  assignment_map, _ = modeling.get_assignment_map_from_checkpoint(variables, init_checkpoint)
  shapes = tf.train.load_checkpoint(init_checkpoint).get_variable_to_shape_map()
  by_name = {v.name.split(":")[0]: v for v in variables}
  for name in list(assignment_map):
    if (not name.startswith(optimization.ENCODER_SCOPE)
        and shapes[name] != by_name[name].shape.as_list()):
      tf.logging.warning("Warm start: %s is %s in %s but %s here; it starts fresh", name,
                         shapes[name], init_checkpoint, by_name[name].shape.as_list())
      del assignment_map[name]
  tf.train.init_from_checkpoint(init_checkpoint, assignment_map)


def freeze_lower_encoder(train_layers_from: int) -> List[tf.Variable]:
  """Takes the embeddings and encoder layers below `train_layers_from` out of the graph's
  trainable variables (see `optimization.is_frozen`), so that the optimizer never sees them:
  no gradient, no Adam slots, no weight decay, no moving average. Returns the frozen variables."""
  trainable = tf.get_collection_ref(tf.GraphKeys.TRAINABLE_VARIABLES)
  frozen = [v for v in trainable
            if optimization.is_frozen(v.name.split(":")[0], train_layers_from)]
  frozen_names = {v.name for v in frozen}
  trainable[:] = [v for v in trainable if v.name not in frozen_names]
  return frozen


def encoder_config(model_config: ModelConfig) -> modeling.BertConfig:
  """The encoder's BertConfig: bert_config.json, or the one standing for a TF-Hub module."""
  if model_config.hub_module:
    return hub_module.bert_config_of(model_config.hub_module)
  return encoder.load_bert_config(model_config.bert_config_file)


def build_encoder(bert_config: modeling.BertConfig, model_config: ModelConfig,
                  features: Dict[str, tf.Tensor], is_training: bool):
  """The encoder of the current graph: the TF-Hub module of model_config.hub_module, else the
  checkpoint's BertModel.

  Args:
    bert_config, model_config: as for `model_fn_builder`.
    features: input_ids, input_mask, segment_ids, int32 [batch, seq] each.
    is_training: enables dropout.

  Returns:
    (pooled_output [batch, hidden], sequence_output [batch, seq, hidden]).
  """
  if model_config.hub_module:
    return hub_module.build_hub_encoder(model_config.hub_module, features, is_training,
                                        model_config.num_hidden_layers)
  bert = encoder.build_bert_model(
      bert_config, is_training=is_training,
      input_ids=features["input_ids"],  # [batch, seq]
      input_mask=features["input_mask"],  # [batch, seq]
      segment_ids=features["segment_ids"],  # [batch, seq]
      num_hidden_layers=model_config.num_hidden_layers,
      encoder_dropout=model_config.encoder_dropout)
  return bert.get_pooled_output(), bert.get_sequence_output()


def build_network(task, bert_config: modeling.BertConfig, model_config: ModelConfig,
                  features: Dict[str, tf.Tensor], is_training: bool) -> Dict[str, tf.Tensor]:
  """The encoder and the task's heads in the current graph; returns the task's logits.

  The variables frozen by model_config.train_layers_from are left out of the trainable ones.

  Args:
    task, bert_config, model_config: as for `model_fn_builder`.
    features: input_ids, input_mask, segment_ids, int32 [batch, seq] each.
    is_training: enables dropout.
  """
  pooled_output, sequence_output = build_encoder(bert_config, model_config, features,
                                                 is_training)
  logits = task.build_logits(
      pooled_output=pooled_output,  # [batch, hidden]
      sequence_output=sequence_output,  # [batch, seq, hidden]
      is_training=is_training,
      head_dropout=model_config.head_dropout,
      initializer_range=bert_config.initializer_range)
  freeze_lower_encoder(model_config.train_layers_from)
  return logits


def parameter_counts(task, bert_config: modeling.BertConfig,
                     model_config: ModelConfig) -> Dict[str, int]:
  """Scalars in the model's weights, counted on a graph built apart (no session runs).

  Returns:
    {"parameters": all weights of the encoder layers used and the heads,
     "trainable_parameters": those the optimizer updates}.
  """
  with tf.Graph().as_default():
    features = {name: tf.placeholder(tf.int32, [None, None], name=name)
                for name in ("input_ids", "input_mask", "segment_ids")}
    build_network(task, bert_config, model_config, features, is_training=False)
    return network_parameter_counts(tf.global_variables())


def network_parameter_counts(network_variables: Sequence[tf.Variable]) -> Dict[str, int]:
  """`parameter_counts` of the network whose variables (built by `build_network` in the current
  graph) are `network_variables`; the trainable ones are those in the graph's collection."""
  trainable = {v.name for v in tf.trainable_variables()}
  return {"parameters": _size(network_variables),
          "trainable_parameters": _size([v for v in network_variables if v.name in trainable])}


def _size(variables: Sequence[tf.Variable]) -> int:
  return int(sum(np.prod(v.shape.as_list(), dtype=np.int64) for v in variables))


def model_fn_builder(task,
                     bert_config: modeling.BertConfig,
                     model_config: ModelConfig,
                     train_config: TrainConfig,
                     num_train_steps: int,
                     num_warmup_steps: int,
                     eval_gold_examples: Optional[Sequence] = None,
                     profile_config: Optional[ProfileConfig] = None,
                     profile_dir: str = "",
                     parameter_counts_out: Optional[Dict[str, int]] = None):
  """Returns model_fn(features, labels, mode, params) for tf.estimator.Estimator.

  Args:
    task: e.g. `bert_nlu.tasks.nlu.NluTask`.
    bert_config: the encoder's config (bert_config.json).
    model_config: checkpoint paths and model variants.
    train_config: optimizer settings.
    num_train_steps, num_warmup_steps: learning-rate schedule length.
    eval_gold_examples: the examples evaluated in EVAL mode, indexed by features["example_index"]
      (metrics are computed on their words).
    profile_config, profile_dir: step profiling; hooks are built only when steps are set (they
      must be created inside model_fn, in the training graph).
    parameter_counts_out: if given, filled with the `parameter_counts` of the network each time
      model_fn builds it (the trainer reports them without building the network a second time).
  """

  def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
    is_training = mode == tf.estimator.ModeKeys.TRAIN
    existing = {v.name for v in tf.global_variables()}
    logits = build_network(task, bert_config, model_config, features, is_training)
    network_variables = [v for v in tf.global_variables() if v.name not in existing]
    if parameter_counts_out is not None:
      parameter_counts_out.update(network_parameter_counts(network_variables))
    predictions = task.build_predictions(logits, features)
    # EVAL and PREDICT (hence checkpoint selection and the export) read the averaged weights.
    scaffold = None
    if train_config.weight_average_decay and not is_training:
      scaffold = tf.train.Scaffold(
          saver=optimization.averaged_weights_saver(train_config.weight_average_decay))

    if mode == tf.estimator.ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(
          mode, predictions=predictions, scaffold=scaffold,
          export_outputs={"serving_default": tf.estimator.export.PredictOutput(
              task.export_outputs(predictions))})

    loss, loss_parts = task.build_losses(logits, features)

    if mode == tf.estimator.ModeKeys.TRAIN:
      tf.add_to_collection(LOSS_COLLECTION, loss)
      if model_config.init_checkpoint and not model_config.random_init:
        _warm_start(model_config.init_checkpoint, network_variables)
      train_op, learning_rate = optimization.build_train_op(
          loss, train_config.learning_rate, num_train_steps, num_warmup_steps,
          weight_decay=train_config.weight_decay, clip_norm=train_config.clip_norm,
          head_learning_rate_multiplier=train_config.head_learning_rate_multiplier,
          implementation=train_config.optimizer_implementation,
          bias_correction=train_config.adam_bias_correction,
          adam_epsilon=train_config.adam_epsilon,
          dynamic_loss_scale=model_config.fp16,
          initial_loss_scale=train_config.initial_loss_scale,
          loss_scale_growth_steps=train_config.loss_scale_growth_steps,
          layer_learning_rate_decay=train_config.layer_learning_rate_decay,
          weight_average_decay=train_config.weight_average_decay,
          learning_rate_schedule_name=train_config.lr_schedule,
          gradient_accumulation_steps=train_config.gradient_accumulation_steps)
      tf.summary.scalar("learning_rate", learning_rate)
      for name, value in loss_parts.items():
        tf.summary.scalar(name, value)
      training_hooks = []
      if profile_config is not None and profile_config.steps is not None:
        from profiling import capture  # pylint: disable=g-import-not-at-top
        first_step, last_step = profile_config.steps
        training_hooks = capture.build_profile_hooks(
            profile_dir, first_step, last_step, profile_config.tensorboard_trace)
      return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                        training_hooks=training_hooks)

    eval_metric_ops = task.build_eval_metric_ops(predictions, eval_gold_examples)
    for name, value in loss_parts.items():
      eval_metric_ops[name] = tf.metrics.mean(value)
    return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops=eval_metric_ops,
                                      scaffold=scaffold)

  return model_fn
