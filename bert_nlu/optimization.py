"""The training op: bert's AdamWeightDecay update with warmup and a linear (or cosine) decay.

Same schedule and update rule as `bert.optimization.create_optimizer`, built here so that the
learning rate is visible to TensorBoard and the variable list can be chosen by the caller (frozen
layers). bert's optimizer ignores `global_step`, so the step is incremented explicitly.

Two implementations of the same update (selected by `optimizer_implementation`):
  "bert":  bert.optimization.AdamWeightDecayOptimizer, ~15 small ops per variable.
  "fused": for each variable, one decay multiply and one ResourceApplyAdam kernel with both beta
           powers at 0, which is exactly bert's rule (no bias correction):
             m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
             w = w - lr * (m / (sqrt(v) + eps) + wd * w)
           = (w * (1 - lr * wd)) - lr * m / (sqrt(v) + eps).
           Slot variables keep bert's names (<var>/adam_m, <var>/adam_v), so checkpoints of both
           implementations are interchangeable. The profile of a MiniLM step showed the optimizer
           at ~37% of op time with the "bert" implementation.

Bias correction (`bias_correction=True`, fused only; off by default, bert's rule): the same kernel
is given the beta powers b1^t and b2^t of update t (1-based), which makes it Adam's corrected step
  w = w - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
(TensorFlow's Adam; PyTorch's AdamW puts eps inside the correction, eps * sqrt(1 - b2^t): with
eps = 1e-6 the two differ only where sqrt(v) is near eps). Without it, update t is (1 - b1^t) / sqrt(1 - b2^t)
times the corrected one at the same rate: 3.2x at t = 100, 1.85x at 345, 1.35x at 800, so bert's
rule at a rate r moves the weights of a few-hundred-update fine-tune about as far as AdamW at 2r.

Dynamic loss scaling (`dynamic_loss_scale=True`, used by --fp16): the loss is multiplied by a scale
S before differentiation and the gradients divided by S, so that small fp16 gradients do not
underflow. A step whose gradients are not all finite (an fp16 overflow) changes no weight and no
optimizer slot: the update is skipped, S is halved (not below 1) and `loss_scale/skipped_steps`
counts it; after `loss_scale_growth_steps` finite steps in a row S doubles. The global step still
advances (it counts batches consumed, which the schedule and resumption rely on). The scale and the
counters are checkpointed, so a resumed run continues with them. Only the "fused" implementation
supports it (bert's optimizer creates its slots inside apply_gradients, which cannot sit in the
conditional that skips the step).

Two refinements of the update, both off by default:
  layer_learning_rate_decay d < 1: encoder layer i of L trains at d^(L - i) times the rate, the
    embeddings at d^(L + 1), the pooler at 1 (lower layers hold more general features and move
    less; ELECTRA's and Model Garden's layer-wise decay).
  weight_average_decay a > 0: after every update, an exponential moving average of the weights,
    avg = r * avg + (1 - r) * w with r = min(a, (1 + step) / (10 + step)), is kept in
    `<var>/ExponentialMovingAverage` (checkpointed). `averaged_weights_saver` restores those
    averages INTO the model's variables, so evaluation, checkpoint selection and the export use the
    averaged weights while training continues on the raw ones.

Gradient accumulation (`gradient_accumulation_steps` K > 1): the global step counts BATCHES (of
--train_batch_size examples), as without accumulation, so checkpoints, resumption, summaries and
`save_checkpoints_steps` keep their meaning; the weights are updated every K-th step. Each step adds
g / K to `<var>/gradient_accumulator` (checkpointed, so a run resumed mid-accumulation continues
exactly); on the K-th step the accumulated mean gradient is clipped and applied, and the
accumulators reset. The schedule counts UPDATES (global_step // K) over num_train_steps // K, so the
update sequence is that of a K-times larger batch (exactly so for a loss that is a mean over
examples; the NLU slot loss is a mean over a batch's words, so each micro-batch weighs its own words).
Loss scaling (fp16) checks and adapts once per update. The weight average, if any, is taken every
step (the same weights K times: decay^K per update).

Replication (tf.distribute, e.g. MirroredStrategy under the Estimator): the model_fn runs once per
replica in a replica context, each replica on its own batch. bert's AdamWeightDecayOptimizer
replaces `apply_gradients` wholesale, so TensorFlow's all-reduce inside
`tf.train.Optimizer.apply_gradients` never runs: without care each replica would step with its own
gradients. Here the gradients are all-reduced (mean over replicas) once per step, right after
differentiation (one merge_call + batch_reduce_to); everything after it (clipping, loss-scale
checks, accumulation, the fused update on each replica's copy of the variables and slots) then
computes identical values on every replica. Only the "fused" implementation supports replication
(bert's optimizer assigns mirrored variables in the replica context, which tf.distribute refuses).
"""

import math
import re
from typing import Dict, Optional, Sequence, Tuple

from bert_nlu import mixed_precision
from bert_nlu.compat import optimization as bert_optimization
from bert_nlu.compat import tf

# Graph collection holding the global gradient norm (read by the non-finite guard).
GRADIENT_NORM_COLLECTION = "bert_nlu_gradient_norm"
# Graph collection holding [loss scale this step used, skipped steps including this step] under
# dynamic loss scaling.
LOSS_SCALE_COLLECTION = "bert_nlu_loss_scale"
ENCODER_SCOPE = "bert/"
_ENCODER_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")


LEARNING_RATE_SCHEDULES = ("linear", "cosine", "one_cycle")
# one_cycle: the warmup starts at peak / ONE_CYCLE_DIV and the decay ends at
# peak / (ONE_CYCLE_DIV * ONE_CYCLE_FINAL_DIV) (PyTorch OneCycleLR's default factors).
ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV = 25.0, 1e4


def learning_rate_schedule(global_step: tf.Tensor, peak_learning_rate: float,
                           num_train_steps: int, num_warmup_steps: int,
                           schedule: str = "linear") -> tf.Tensor:
  """The learning rate at `global_step`: warmup over num_warmup_steps, then a decay.

  With s the step, W the warmup steps, T the training steps and p the peak rate:
    linear (bert's):  s < W: p * s / W;  else p * (1 - min(s, T) / T)  (decays from step 0's
                      line, so the rate at W is p * (1 - W / T)).
    cosine:           s < W: p * s / W;  else p * (1 + cos(pi * q)) / 2 with
                      q = min(1, (s - W) / (T - W)).
    one_cycle:        s < W: p0 + (p - p0) * s / W with p0 = p / 25;  else
                      p1 + (p - p1) * (1 + cos(pi * q)) / 2 with p1 = p0 / 1e4.

  Returns: float32 scalar.
  """
  if schedule not in LEARNING_RATE_SCHEDULES:
    raise ValueError(f"learning-rate schedule {schedule!r} not in {LEARNING_RATE_SCHEDULES}")
  step = tf.cast(global_step, tf.float32)
  warmup_start = 0.0
  if schedule == "linear":
    decayed = tf.train.polynomial_decay(
        tf.constant(peak_learning_rate, tf.float32), global_step, max(num_train_steps, 1),
        end_learning_rate=0.0, power=1.0, cycle=False)
  else:
    decay_steps = float(max(num_train_steps - num_warmup_steps, 1))
    progress = tf.minimum(tf.maximum(step - float(num_warmup_steps), 0.0) / decay_steps, 1.0)
    cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))  # 1 -> 0
    end = 0.0
    if schedule == "one_cycle":
      warmup_start = peak_learning_rate / ONE_CYCLE_DIV
      end = warmup_start / ONE_CYCLE_FINAL_DIV
    decayed = end + (peak_learning_rate - end) * cosine
  if num_warmup_steps <= 0:
    return decayed
  warmup = warmup_start + (peak_learning_rate - warmup_start) * step / float(num_warmup_steps)
  return tf.where(step < float(num_warmup_steps), warmup, decayed)


BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-6
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
OPTIMIZER_IMPLEMENTATIONS = ("fused", "bert")


def _variable_name(variable: tf.Variable) -> str:
  return re.sub(r":\d+$", "", variable.name)


def _uses_weight_decay(variable_name: str) -> bool:
  return not any(re.search(pattern, variable_name) for pattern in EXCLUDE_FROM_WEIGHT_DECAY)


def fused_adam_weight_decay_update(pairs, learning_rate: tf.Tensor, weight_decay: float,
                                   apply_if: Optional[tf.Tensor] = None,
                                   update_number: Optional[tf.Tensor] = None,
                                   epsilon: float = EPSILON) -> tf.Operation:
  """bert's AdamWeightDecay update with fused kernels (see module docstring).

  Args:
    pairs: [(gradient, resource variable)]; IndexedSlices gradients are densified, as bert's
      optimizer does implicitly.
    learning_rate: float32 scalar.
    weight_decay: decoupled weight decay rate.
    apply_if: optional bool scalar; when False the step changes nothing (weights and slots).
    update_number: optional scalar t >= 1, the 1-based number of this update: Adam's bias
      correction with beta powers b1^t, b2^t. None: no correction (bert's rule).
    epsilon: added to sqrt(v) in the denominator (bert: 1e-6).
  """
  zero = tf.constant(0.0, tf.float32)
  beta1_power, beta2_power = zero, zero
  if update_number is not None:
    t = tf.maximum(tf.cast(update_number, tf.float32), 1.0)
    beta1_power, beta2_power = tf.pow(BETA_1, t), tf.pow(BETA_2, t)
  slots = []
  for gradient, variable in pairs:  # slot variables exist outside any conditional
    if gradient is None:
      continue
    name = _variable_name(variable)
    shape = variable.shape.as_list()
    m = tf.get_variable(name + "/adam_m", shape=shape, dtype=tf.float32, trainable=False,
                        initializer=tf.zeros_initializer())
    v = tf.get_variable(name + "/adam_v", shape=shape, dtype=tf.float32, trainable=False,
                        initializer=tf.zeros_initializer())
    # The clipped gradient depends on the global norm, hence on every gradient: once it exists,
    # the forward and backward passes have read all weights, and the in-place updates below
    # cannot race with those reads.
    slots.append((tf.convert_to_tensor(gradient), variable, name, m, v))

  def apply_all() -> tf.Operation:
    updates = []
    for gradient, variable, name, m, v in slots:
      dependencies = [gradient]
      if weight_decay and _uses_weight_decay(name):
        with tf.control_dependencies([gradient]):
          dependencies.append(_assign_local(
              variable, variable.read_value() * (1.0 - learning_rate * weight_decay)))
      with tf.control_dependencies(dependencies):
        updates.append(tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle, beta1_power=beta1_power,
            beta2_power=beta2_power, lr=learning_rate, beta1=tf.constant(BETA_1),
            beta2=tf.constant(BETA_2),
            epsilon=tf.constant(epsilon, tf.float32), grad=gradient))
    return tf.group(*updates)

  if apply_if is None:
    return apply_all()
  return tf.cond(apply_if, apply_all, tf.no_op)


def _replica_context_with_replicas():
  """The replica context when running replicated (more than one replica in sync), else None."""
  if not tf.distribute.has_strategy():
    return None
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync <= 1:
    return None
  return context


def all_reduce_gradients(gradients, variables):
  """Mean of each gradient over the replicas in sync (identity when not replicated).

  One batched cross-replica reduction per call, as `tf.train.Optimizer.apply_gradients` does
  (merge_call + batch_reduce_to onto the variables' devices); the replica context's `all_reduce`
  is not used: its gradient wrapper fails on mirrored variables in graph mode.

  Args:
    gradients: list of gradient tensors, IndexedSlices or None (None stays None).
    variables: the variables of the gradients (their devices receive the means).

  Returns:
    List of dense tensors (or None), equal on every replica.
  """
  context = _replica_context_with_replicas()
  dense = [None if g is None else tf.convert_to_tensor(g) for g in gradients]
  if context is None:
    return dense
  present = [(g, v) for g, v in zip(dense, variables) if g is not None]

  def mean_over_replicas(strategy, pairs):
    return strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.MEAN, pairs)

  reduced = iter(context.merge_call(mean_over_replicas, args=(present,)))
  return [None if g is None else next(reduced) for g in dense]


def _assign_local(variable: tf.Variable, value: tf.Tensor) -> tf.Operation:
  """Assigns `value` to this replica's copy of `variable` (the variable itself if not replicated).

  tf.distribute refuses `assign` on a mirrored variable in a replica context; the values assigned
  here are equal on every replica (they derive from all-reduced gradients), so each replica writes
  its own copy.
  """
  return tf.raw_ops.AssignVariableOp(resource=variable.handle, value=value)


def _replica_local_variable(name: str, shape, dtype=tf.float32) -> tf.Variable:
  """A non-trainable zero-initialised variable each replica keeps and updates on its own.

  Checkpointed as the mean over replicas (they hold equal values here).
  """
  return tf.get_variable(name, shape=shape, dtype=dtype, trainable=False,
                         initializer=tf.zeros_initializer(),
                         synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.MEAN)


def accumulate_gradients(pairs, accumulation_steps: int, global_step: tf.Tensor):
  """Adds gradient / K to per-variable accumulators and says whether this step applies them.

  Args:
    pairs: [(dense gradient or None, variable)].
    accumulation_steps: K > 1.
    global_step: int64 scalar, batches done before this one.

  Returns:
    (pairs of (accumulated mean gradient, variable) read after this step's addition,
     apply_now bool scalar: True on every K-th step,
     reset(after) -> op that zeroes the accumulators on apply steps once `after` ran).
  """
  apply_now = tf.equal((global_step + 1) % accumulation_steps, 0)
  accumulated, accumulators = [], []
  for gradient, variable in pairs:
    if gradient is None:
      accumulated.append((None, variable))
      continue
    accumulator = _replica_local_variable(_variable_name(variable) + "/gradient_accumulator",
                                          variable.shape.as_list())
    add = _assign_local(accumulator,
                        accumulator.read_value() + gradient / float(accumulation_steps))
    with tf.control_dependencies([add]):
      accumulated.append((tf.identity(accumulator.read_value()), variable))
    accumulators.append(accumulator)

  def reset(after: tf.Operation) -> tf.Operation:
    with tf.control_dependencies([after]):
      return tf.group(*[
          _assign_local(a, tf.where(apply_now, tf.zeros_like(a), a.read_value()))
          for a in accumulators])  # tf.where, not a product: accumulators may hold inf (fp16)

  return accumulated, apply_now, reset


def _loss_scale_variables(initial_loss_scale: float):
  """(scale float32, finite steps in a row int64, skipped steps int64), all checkpointed.

  Replicated, each replica keeps its own copy (they take equal values: the gradients they check
  are all-reduced)."""
  local = dict(synchronization=tf.VariableSynchronization.ON_READ,
               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  with tf.variable_scope("loss_scale"):
    scale = tf.get_variable("scale", [], tf.float32, trainable=False,
                            initializer=tf.constant_initializer(initial_loss_scale), **local)
    good_steps = tf.get_variable("good_steps", [], tf.int64, trainable=False,
                                 initializer=tf.zeros_initializer(), **local)
    skipped_steps = tf.get_variable("skipped_steps", [], tf.int64, trainable=False,
                                    initializer=tf.zeros_initializer(), **local)
  return scale, good_steps, skipped_steps


def _update_loss_scale(scale, good_steps, skipped_steps, all_finite: tf.Tensor,
                       growth_steps: int,
                       is_update_step: Optional[tf.Tensor] = None) -> Tuple[tf.Operation, tf.Tensor]:
  """Halves the scale (min 1) and counts a skip on overflow; doubles it after growth_steps.

  is_update_step: bool scalar; when False (an accumulation step) nothing changes.
  Returns (update op, skipped steps after this step int64 scalar)."""
  scale_value, good_value, skipped_value = (
      scale.read_value(), good_steps.read_value(), skipped_steps.read_value())
  grow = tf.logical_and(all_finite, good_value + 1 >= growth_steps)
  new_scale = tf.where(all_finite, tf.where(grow, scale_value * 2.0, scale_value),
                       tf.maximum(scale_value * 0.5, 1.0))
  new_good_steps = tf.where(tf.logical_and(all_finite, tf.logical_not(grow)),
                            good_value + 1, tf.zeros_like(good_value))
  new_skipped = skipped_value + tf.cast(tf.logical_not(all_finite), tf.int64)
  if is_update_step is not None:
    new_scale = tf.where(is_update_step, new_scale, scale_value)
    new_good_steps = tf.where(is_update_step, new_good_steps, good_value)
    new_skipped = tf.where(is_update_step, new_skipped, skipped_value)
  assignments = [_assign_local(scale, new_scale), _assign_local(good_steps, new_good_steps),
                 _assign_local(skipped_steps, new_skipped)]
  with tf.control_dependencies(assignments):
    skipped_after = tf.identity(new_skipped)
  return tf.group(*assignments), skipped_after


def layer_learning_rate_factor(variable_name: str, num_layers: int, decay: float) -> float:
  """The multiple of the encoder's rate for one variable under layer-wise decay.

  Args:
    variable_name: e.g. "bert/encoder/layer_3/attention/self/query/kernel".
    num_layers: encoder layers L.
    decay: d; layer i (0-based) -> d^(L - i), embeddings -> d^(L + 1), anything else in the
      encoder (the pooler) -> 1.
  """
  if decay == 1.0:
    return 1.0
  if variable_name.startswith(ENCODER_SCOPE + "embeddings/"):
    return decay ** (num_layers + 1)
  match = _ENCODER_LAYER.match(variable_name)
  if match:
    return decay ** (num_layers - int(match.group(1)))
  return 1.0


def is_frozen(variable_name: str, train_layers_from: int) -> bool:
  """Whether --train_layers_from=K freezes a variable: the embeddings and encoder layers < K.

  Args:
    variable_name: e.g. "bert/encoder/layer_3/output/dense/kernel".
    train_layers_from: K >= 0; 0 freezes nothing. The pooler and the heads always train.
  """
  if train_layers_from <= 0:
    return False
  if variable_name.startswith(ENCODER_SCOPE + "embeddings/"):
    return True
  match = _ENCODER_LAYER.match(variable_name)
  return bool(match) and int(match.group(1)) < train_layers_from


def _learning_rate_groups(pairs, learning_rate: tf.Tensor, head_learning_rate_multiplier: float,
                          layer_learning_rate_decay: float):
  """Splits (gradient, variable) pairs into [(pairs, rate)], one group per distinct rate."""
  num_layers = 1 + max([int(m.group(1)) for m in
                        (_ENCODER_LAYER.match(_variable_name(v)) for _, v in pairs) if m],
                       default=-1)
  groups = {}
  for gradient, variable in pairs:
    if variable.name.startswith(ENCODER_SCOPE):
      factor = layer_learning_rate_factor(_variable_name(variable), num_layers,
                                          layer_learning_rate_decay)
    else:
      factor = head_learning_rate_multiplier
    groups.setdefault(factor, []).append((gradient, variable))
  return [(group, learning_rate if factor == 1.0 else learning_rate * factor)
          for factor, group in sorted(groups.items())]


def weight_average(decay: float) -> tf.train.ExponentialMovingAverage:
  """The moving average of the weights (module docstring); decay warms up with the global step."""
  return tf.train.ExponentialMovingAverage(decay, num_updates=tf.train.get_or_create_global_step())


def eval_restore_map(weight_average_decay: float) -> Dict[str, tf.Variable]:
  """{name in a training checkpoint: variable of the current EVAL/PREDICT graph it loads into}.

  With weight_average_decay each trainable variable loads its moving average
  (`<var>/ExponentialMovingAverage`); otherwise (and for the global step) every variable loads
  itself.
  """
  if weight_average_decay:
    return weight_average(weight_average_decay).variables_to_restore()
  return {variable.op.name: variable for variable in tf.global_variables()}


def averaged_weights_saver(decay: float) -> tf.train.Saver:
  """A saver whose restore loads each trainable variable from its moving average.

  For EVAL and PREDICT graphs (and so for the export) of a model trained with
  weight_average_decay=decay; other variables (the global step) restore as themselves.
  """
  return tf.train.Saver(eval_restore_map(decay), sharded=True)


def _bert_optimizer_update(pairs, learning_rate: tf.Tensor, weight_decay: float,
                           global_step: tf.Tensor,
                           apply_if: Optional[tf.Tensor] = None,
                           epsilon: float = EPSILON) -> tf.Operation:
  """bert's own AdamWeightDecayOptimizer.apply_gradients on `pairs`.

  With `apply_if`, the update runs inside a conditional; bert's optimizer creates its slots with
  tf.get_variable in apply_gradients, so they are created first, outside it, and reused inside.
  """
  optimizer = _adam_weight_decay(learning_rate, weight_decay, epsilon)
  if apply_if is None:
    return optimizer.apply_gradients(pairs, global_step=global_step)
  for gradient, variable in pairs:
    if gradient is not None:
      for slot in ("adam_m", "adam_v"):
        tf.get_variable(_variable_name(variable) + "/" + slot, shape=variable.shape.as_list(),
                        dtype=tf.float32, trainable=False, initializer=tf.zeros_initializer())

  def apply_all():
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
      return optimizer.apply_gradients(pairs, global_step=global_step)

  return tf.cond(apply_if, apply_all, tf.no_op)


def _adam_weight_decay(learning_rate: tf.Tensor, weight_decay: float, epsilon: float = EPSILON):
  return bert_optimization.AdamWeightDecayOptimizer(
      learning_rate=learning_rate,
      weight_decay_rate=weight_decay,
      beta_1=BETA_1,
      beta_2=BETA_2,
      epsilon=epsilon,
      exclude_from_weight_decay=list(EXCLUDE_FROM_WEIGHT_DECAY))


def build_train_op(loss: tf.Tensor,
                   peak_learning_rate: float,
                   num_train_steps: int,
                   num_warmup_steps: int,
                   weight_decay: float = 0.01,
                   clip_norm: float = 1.0,
                   variables: Optional[Sequence[tf.Variable]] = None,
                   head_learning_rate_multiplier: float = 1.0,
                   implementation: str = "fused",
                   bias_correction: bool = False,
                   adam_epsilon: float = EPSILON,
                   dynamic_loss_scale: bool = False,
                   initial_loss_scale: float = 2.0 ** 15,
                   loss_scale_growth_steps: int = 2000,
                   layer_learning_rate_decay: float = 1.0,
                   weight_average_decay: float = 0.0,
                   learning_rate_schedule_name: str = "linear",
                   gradient_accumulation_steps: int = 1) -> Tuple[tf.Operation, tf.Tensor]:
  """Builds the update op.

  Args:
    loss: scalar float32.
    peak_learning_rate, num_train_steps, num_warmup_steps: the schedule.
    weight_decay: decoupled weight decay rate (LayerNorm and bias excluded).
    clip_norm: global norm clipping of the gradients.
    variables: variables to train (default: all trainable).
    head_learning_rate_multiplier: the task heads (variables outside the `bert/` encoder scope)
      train with this multiple of the schedule's learning rate (a second optimizer instance).
    implementation: "fused" or "bert" (identical updates; see module docstring).
    bias_correction: Adam's bias correction (module docstring); needs implementation="fused".
    adam_epsilon: Adam's epsilon, added to sqrt(v) (bert: 1e-6; PyTorch's AdamW: 1e-8). Where the
      bias correction applies it, TF's fused kernel adds it to the uncorrected sqrt(v), so in
      PyTorch's placement it is adam_epsilon / sqrt(1 - b2^t) (module docstring).
    dynamic_loss_scale, initial_loss_scale, loss_scale_growth_steps: loss scaling for fp16 (see
      module docstring); needs implementation="fused".
    layer_learning_rate_decay: d in (0, 1]; encoder layers deeper from the top learn slower (module
      docstring); 1 = one rate for the whole encoder.
    weight_average_decay: keep a moving average of the weights with this decay (module docstring);
      0 = none.
    learning_rate_schedule_name: "linear", "cosine" or "one_cycle" (`learning_rate_schedule`).
    gradient_accumulation_steps: K; update the weights every K steps with the mean gradient of
      those K batches (module docstring). num_train_steps and num_warmup_steps count batches
      (multiples of K); the schedule advances once per update.

  Under a tf.distribute strategy with several replicas, the gradients are all-reduced (mean) once
  per step before anything else reads them (module docstring); needs implementation="fused".

  Returns:
    (train_op that also increments the global step, learning_rate scalar).
  """
  global_step = tf.train.get_or_create_global_step()
  accumulation_steps = gradient_accumulation_steps
  if accumulation_steps < 1:
    raise ValueError(f"gradient_accumulation_steps={accumulation_steps} must be >= 1")
  update_count = global_step if accumulation_steps == 1 else global_step // accumulation_steps
  learning_rate = learning_rate_schedule(update_count, peak_learning_rate,
                                         num_train_steps // accumulation_steps,
                                         num_warmup_steps // accumulation_steps,
                                         learning_rate_schedule_name)
  if implementation not in OPTIMIZER_IMPLEMENTATIONS:
    raise ValueError(f"optimizer implementation {implementation!r} not in "
                     f"{OPTIMIZER_IMPLEMENTATIONS}")
  if bias_correction and implementation != "fused":
    raise ValueError("Adam bias correction needs optimizer implementation 'fused'")
  if dynamic_loss_scale and implementation != "fused":
    raise ValueError("dynamic loss scaling (fp16) needs optimizer implementation 'fused'")
  if _replica_context_with_replicas() is not None and implementation != "fused":
    raise ValueError("training on several replicas needs optimizer implementation 'fused'")
  variables = list(variables if variables is not None else tf.trainable_variables())
  all_finite = None
  if dynamic_loss_scale:
    scale, good_steps, skipped_steps = _loss_scale_variables(initial_loss_scale)
    scale_used = scale.read_value()  # read before the update: the gradients depend on it
    tf.add_to_collection(LOSS_SCALE_COLLECTION, scale_used)
    tf.summary.scalar("loss_scale", scale_used)
    scaled_gradients = tf.gradients(loss * scale_used, variables)
    gradients = [None if g is None else tf.convert_to_tensor(g) / scale_used
                 for g in scaled_gradients]
  else:
    gradients = tf.gradients(loss, variables)
  # float32 from here on, also under --bf16 (the rewrite would run the clipping in bfloat16).
  gradients = [None if g is None else mixed_precision.float32_boundary(g) for g in gradients]
  gradients = all_reduce_gradients(gradients, variables)
  apply_now, reset_accumulators = None, None
  if accumulation_steps > 1:
    pairs, apply_now, reset_accumulators = accumulate_gradients(
        list(zip(gradients, variables)), accumulation_steps, global_step)
    gradients = [g for g, _ in pairs]
  gradients, gradient_norm = tf.clip_by_global_norm(gradients, clip_norm=clip_norm)
  tf.add_to_collection(GRADIENT_NORM_COLLECTION, gradient_norm)
  tf.summary.scalar("gradient_norm", gradient_norm)
  apply_if = apply_now
  if dynamic_loss_scale:
    all_finite = tf.math.is_finite(gradient_norm)  # NaN/Inf in any gradient makes the norm so
    apply_if = all_finite if apply_now is None else tf.logical_and(apply_now, all_finite)
  groups = _learning_rate_groups(list(zip(gradients, variables)), learning_rate,
                                 head_learning_rate_multiplier, layer_learning_rate_decay)
  if implementation == "fused":
    # Update number t (1-based): batches done including this one, over K. Skipped fp16 steps count
    # (a resumed run recomputes t from the global step alone).
    update_number = (global_step + 1) // accumulation_steps if bias_correction else None
    update = tf.group(*[fused_adam_weight_decay_update(group, rate, weight_decay, apply_if,
                                                       update_number, adam_epsilon)
                        for group, rate in groups if group])
  else:
    update = tf.group(*[_bert_optimizer_update(group, rate, weight_decay, global_step, apply_if,
                                               adam_epsilon)
                        for group, rate in groups if group])
  if dynamic_loss_scale:
    with tf.control_dependencies([update]):
      update, skipped_after = _update_loss_scale(scale, good_steps, skipped_steps, all_finite,
                                                 loss_scale_growth_steps, apply_now)
    tf.add_to_collection(LOSS_SCALE_COLLECTION, skipped_after)
    tf.summary.scalar("skipped_steps", skipped_after)
  if reset_accumulators is not None:
    update = reset_accumulators(update)
  if weight_average_decay:
    with tf.control_dependencies([update]):  # averages the weights this step produced
      update = weight_average(weight_average_decay).apply(
          [v for g, v in zip(gradients, variables) if g is not None])
  with tf.control_dependencies([update]):  # the step counts only after the update is applied
    train_op = global_step.assign_add(1)
  return train_op, learning_rate
