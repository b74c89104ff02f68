"""Checkpoint integrity: read every tensor before trusting a checkpoint.

A checkpoint cut short (disk full, copy interrupted) or with damaged bytes otherwise fails deep
inside a TF graph run with a message about some initializer node. `unreadable_reason` reads every
variable once (a fraction of a second for BERT-small sizes), so the trainer can name the file and
the problem up front, and set a damaged newest run checkpoint aside in favour of the previous one.
"""

import glob
import os
import time
from typing import List, Optional

from bert_nlu.compat import tf
from bert_nlu.errors import InputError


def unreadable_reason(prefix: str) -> Optional[str]:
  """None if every tensor of checkpoint `prefix` reads back, else what went wrong."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in sorted(reader.get_variable_to_shape_map()):
      reader.get_tensor(name)
  # py_checkpoint_reader translates TF statuses into Python errors (OutOfRange -> IndexError).
  except (tf.errors.OpError, ValueError, IndexError, OSError, RuntimeError) as e:
    message = getattr(e, "message", str(e))
    return message.strip().splitlines()[-1] if message.strip() else type(e).__name__
  return None


def check_init_checkpoint(prefix: str) -> None:
  """Raises InputError naming the checkpoint if it cannot be read completely."""
  reason = unreadable_reason(prefix)
  if reason is not None:
    raise InputError(prefix, f"--init_checkpoint cannot be read completely ({reason}); the file "
                     "is missing, truncated or damaged")


def step_of(checkpoint_prefix: str) -> int:
  """Global step of a checkpoint named `<name>-<step>` (e.g. model.ckpt-400 -> 400)."""
  return int(checkpoint_prefix.rsplit("-", 1)[1])


def latest_step(model_dir: str) -> int:
  """Global step of the newest checkpoint in model_dir (0 if none)."""
  checkpoint = tf.train.latest_checkpoint(model_dir)
  return step_of(checkpoint) if checkpoint else 0


def _run_checkpoints(model_dir: str) -> List[str]:
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return []
  return [p if os.path.isabs(p) else os.path.join(model_dir, p)
          for p in state.all_model_checkpoint_paths]


def set_aside_damaged_latest(model_dir: str) -> Optional[str]:
  """If the run's newest checkpoint is unreadable, renames its files to *.damaged-<time> and
  points the checkpoint state at the newest readable one (or none). Returns the new latest."""
  latest = tf.train.latest_checkpoint(model_dir)
  if latest is None or unreadable_reason(latest) is None:
    return latest
  stamp = time.strftime("%Y%m%d-%H%M%S")
  for path in glob.glob(latest + ".*"):
    os.replace(path, f"{path}.damaged-{stamp}")
  remaining = [p for p in _run_checkpoints(model_dir)
               if p != latest and os.path.exists(p + ".index") and unreadable_reason(p) is None]
  tf.logging.warning("Checkpoint %s is damaged; its files were renamed *.damaged-%s. Resuming "
                     "from %s.", latest, stamp, remaining[-1] if remaining else "the start")
  state_path = os.path.join(model_dir, "checkpoint")
  if remaining:
    tf.train.update_checkpoint_state(model_dir, remaining[-1], all_model_checkpoint_paths=remaining)
  elif os.path.exists(state_path):
    os.replace(state_path, f"{state_path}.damaged-{stamp}")
  return remaining[-1] if remaining else None
