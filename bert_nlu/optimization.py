"""The training op: bert's AdamWeightDecayOptimizer with linear warmup and linear decay.

Same schedule and optimizer as `bert.optimization.create_optimizer`, built here so that the learning
rate is visible to TensorBoard and the variable list can be chosen by the caller (frozen layers).
bert's optimizer ignores `global_step`, so the step is incremented explicitly.
"""

from typing import Optional, Sequence, Tuple

from bert_nlu.compat import optimization as bert_optimization
from bert_nlu.compat import tf


def learning_rate_schedule(global_step: tf.Tensor, peak_learning_rate: float,
                           num_train_steps: int, num_warmup_steps: int) -> tf.Tensor:
  """Linear warmup from 0 to the peak over num_warmup_steps, then linear decay to 0.

  Returns: float32 scalar.
  """
  step = tf.cast(global_step, tf.float32)
  decayed = tf.train.polynomial_decay(
      tf.constant(peak_learning_rate, tf.float32), global_step, max(num_train_steps, 1),
      end_learning_rate=0.0, power=1.0, cycle=False)
  if num_warmup_steps <= 0:
    return decayed
  warmup = peak_learning_rate * step / float(num_warmup_steps)
  return tf.where(step < float(num_warmup_steps), warmup, decayed)


def build_train_op(loss: tf.Tensor,
                   peak_learning_rate: float,
                   num_train_steps: int,
                   num_warmup_steps: int,
                   weight_decay: float = 0.01,
                   clip_norm: float = 1.0,
                   variables: Optional[Sequence[tf.Variable]] = None) -> Tuple[tf.Operation,
                                                                                  tf.Tensor]:
  """Builds the update op.

  Args:
    loss: scalar float32.
    peak_learning_rate, num_train_steps, num_warmup_steps: the schedule.
    weight_decay: decoupled weight decay rate (LayerNorm and bias excluded).
    clip_norm: global norm clipping of the gradients.
    variables: variables to train (default: all trainable).

  Returns:
    (train_op that also increments the global step, learning_rate scalar).
  """
  global_step = tf.train.get_or_create_global_step()
  learning_rate = learning_rate_schedule(global_step, peak_learning_rate, num_train_steps,
                                         num_warmup_steps)
  optimizer = bert_optimization.AdamWeightDecayOptimizer(
      learning_rate=learning_rate,
      weight_decay_rate=weight_decay,
      beta_1=0.9,
      beta_2=0.999,
      epsilon=1e-6,
      exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
  variables = list(variables if variables is not None else tf.trainable_variables())
  gradients = tf.gradients(loss, variables)
  gradients, _ = tf.clip_by_global_norm(gradients, clip_norm=clip_norm)
  update = optimizer.apply_gradients(zip(gradients, variables), global_step=global_step)
  train_op = tf.group(update, global_step.assign_add(1))
  return train_op, learning_rate
