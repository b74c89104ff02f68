"""Estimator metric ops over a Python whole-set collector (shared by every task).

A task records each eval batch's predictions in a collector through one stateful `tf.py_func`
(the update op); each metric's value op asks the collector for that metric, computed once over
everything recorded.
"""

from typing import Dict, Sequence

from bert_nlu.compat import tf


def whole_set_metric_ops(collector, update_op: tf.Tensor,
                         names: Sequence[str]) -> Dict[str, tuple]:
  """{name: (value_op, update_op)}: each value op is a scalar float32 `collector.value(name)`."""
  metric_ops = {}
  for name in names:
    value = tf.py_func(lambda name=name: collector.value(name), [], tf.float32,
                       stateful=True, name=f"whole_set_{name}")
    value.set_shape([])
    metric_ops[name] = (value, update_op)
  return metric_ops
