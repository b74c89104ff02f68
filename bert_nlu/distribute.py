"""Training on several devices or machines with TensorFlow's own tf.distribute engine.

`--distribution` picks the strategy handed to `tf.estimator.RunConfig(train_distribute=...)`:
  none:         one device, no strategy (the default).
  mirrored:     `MirroredStrategy` over the local devices: `--num_gpus` GPUs, or an explicit
                device list (`--devices=/cpu:0,/cpu:1` gives two CPU replicas, which is how the
                replication is tested on a machine without GPUs).
  multi_worker: `MultiWorkerMirroredStrategy`, the cluster read from TF_CONFIG (bert_nlu.launch).

Batch semantics: `--train_batch_size` is the GLOBAL batch of one step, the examples all replicas
together consume; each replica gets train_batch_size / replicas of them (it must divide). Steps,
warmup and the learning rate are therefore those of the global batch, and a run on 2 replicas
follows the schedule of a run on 1 replica with the same flags. The Estimator's input_fn yields
per-replica batches: replica r of a step takes the r-th consecutive batch, so replicas always
see different examples.

The update itself (all-reduce of the gradients once per step, the fused AdamWeightDecay update
of each replica's copy) is in `bert_nlu.optimization`.
"""

import dataclasses
import json
import os
from typing import Optional, Sequence, Tuple

from bert_nlu.compat import tf

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where training runs.

  Attributes:
    strategy: the tf.distribute strategy, or None (one device).
    num_replicas: replicas in sync on this worker x workers (1 without a strategy).
    cpu_devices: CPU devices the session must expose (device_count {"CPU": n}); 0 = default.
  """
  strategy: Optional[tf.distribute.Strategy]
  num_replicas: int
  cpu_devices: int = 0


def _cpu_device_count(devices: Sequence[str]) -> int:
  cpus = [d for d in devices if "cpu" in d.lower()]
  return len(cpus)


def local_devices(num_gpus: int, devices: Sequence[str]) -> Tuple[str, ...]:
  """The explicit device list, else /gpu:0..N-1 (num_gpus > 0), else () (all visible GPUs)."""
  if devices:
    return tuple(devices)
  return tuple(f"/gpu:{i}" for i in range(num_gpus))


def make_placement(distribution: str, num_gpus: int = 0,
                   devices: Sequence[str] = ()) -> Placement:
  """Builds the strategy of `distribution` (see module docstring).

  Args:
    distribution: one of DISTRIBUTIONS.
    num_gpus: mirrored: GPUs to mirror over (0 and no devices = every visible GPU, else the CPU).
    devices: mirrored: explicit device names, e.g. ("/cpu:0", "/cpu:1").

  Returns:
    A Placement.
  """
  if distribution not in DISTRIBUTIONS:
    raise ValueError(f"distribution {distribution!r} not in {DISTRIBUTIONS}")
  if distribution == "none":
    return Placement(strategy=None, num_replicas=1)
  if distribution == "mirrored":
    device_list = local_devices(num_gpus, devices)
    # Built for graph mode, as the Estimator uses it: created eagerly, the strategy would set up
    # eager collectives on devices that only the session config (device_count) creates.
    with tf.Graph().as_default():
      strategy = tf.distribute.MirroredStrategy(devices=list(device_list) or None)
    return Placement(strategy=strategy, num_replicas=strategy.num_replicas_in_sync,
                     cpu_devices=_cpu_device_count(device_list))
  if task_type() == "evaluator":  # evaluates checkpoints on its own, outside the collective
    return Placement(strategy=None, num_replicas=1)
  # The graph-mode (v1) collective strategy the Estimator drives; the cluster comes from TF_CONFIG.
  strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy()
  return Placement(strategy=strategy, num_replicas=strategy.num_replicas_in_sync)


def task_type() -> Optional[str]:
  """This process's task in the TF_CONFIG cluster ("chief", "worker", "evaluator"), else None."""
  config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  return (config.get("task") or {}).get("type")


def is_secondary_task() -> bool:
  """A worker or evaluator of a TF_CONFIG cluster: it shares the chief's output directory, which
  the chief alone locks and records (run manifest)."""
  return task_type() in ("worker", "evaluator")


def per_replica_batch_size(global_batch_size: int, num_replicas: int) -> int:
  """global_batch_size / num_replicas; ValueError if it does not divide."""
  if global_batch_size % num_replicas:
    raise ValueError(f"train_batch_size {global_batch_size} is the global batch and must be a "
                     f"multiple of the {num_replicas} replicas")
  return global_batch_size // num_replicas


def session_config_with_devices(config: Optional[tf.ConfigProto],
                                cpu_devices: int) -> Optional[tf.ConfigProto]:
  """`config` (or a new one) exposing `cpu_devices` CPU devices; unchanged when 0."""
  if not cpu_devices:
    return config
  merged = tf.ConfigProto()
  if config is not None:
    merged.CopyFrom(config)
  merged.device_count["CPU"] = cpu_devices
  return merged
