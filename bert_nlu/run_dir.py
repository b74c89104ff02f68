"""Run-directory protection: a manifest of what trains in a directory, and a lock on it.

Two ways to silently ruin a run directory are closed here:

1. Resuming with another configuration. Estimator restores the latest checkpoint of
   `output_dir` whatever the flags say, so a second invocation with another max_seq_length, other
   labels or another learning-rate schedule would continue the old weights under the new
   settings. `check_or_record_manifest` records the run's full resolved configuration in
   `<output_dir>/run_manifest.json` and, when the directory already holds a run, compares it key
   by key:
     - keys in INCOMPATIBLE_KEYS must be equal, else IncompatibleRunError lists every differing
       key (recorded -> requested) and names --overwrite_output_dir as the explicit way out;
     - keys in COMPATIBLE_KEYS may change (e.g. more epochs); the manifest is updated and the
       previous configuration is appended to its "history";
     - a key in neither tuple (a config field added later) counts as incompatible: safe by default.
   Paths may move between machines, so paths are compatible and the CONTENT behind them is
   compared instead: the corpus through "data_fingerprint" (per split), the vocabulary and the
   initial checkpoint through "model_files" (sha256 of vocab.txt and of the checkpoint's .index,
   which records every tensor's shape and CRC32C), bert_config.json through "model_shape".

2. Two trainers writing into one directory. `RunDirectoryLock` holds `<output_dir>/.lock`, which
   names the holder's pid, host, start time and argv; a lock whose holder is dead (or whose content
   is garbage) is taken over, race-free.

Both use only the standard library (no TensorFlow import), so the checks run before any graph is
built. The lock relies on POSIX link() and flock() (Linux, macOS).
"""

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import typing
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import bert_nlu
from bert_nlu import config as config_lib
from bert_nlu import io_utils
from bert_nlu.errors import InputError

_logger = logging.getLogger(__name__)

MANIFEST_FILE = "run_manifest.json"
LOCK_FILE = ".lock"
OVERWRITE_FLAG = "--overwrite_output_dir"

NEW = "new"
RESUMED = "resumed"
OVERWRITTEN = "overwritten"

# Dotted key paths into the manifest; a path covers every key below it. Each manifest key is
# classified by the longest path that covers it; keys covered by neither tuple are incompatible.
INCOMPATIBLE_KEYS = (
    # What the model learns from and predicts: the corpus content and its reading.
    "data_fingerprint",
    "label_maps",
    "config.data.task",
    "config.data.glue_task",
    "config.data.corpus_format",
    "config.data.multi_intent_policy",
    "config.data.max_seq_length",
    "config.data.bucket_by_length",  # changes the batch stream of the remaining steps
    "config.data.bucket_width",
    "config.data.limit_data", "config.data.resample",  # the training examples themselves
    "config.data.train_examples",
    # The network and its input: shapes, vocabulary content, initial weights, tokenizer casing.
    "model_shape",
    "model_files",
    "config.model.do_lower_case",
    "config.model.hub_module",  # the encoder itself
    "config.model.num_hidden_layers",
    "config.model.train_layers_from",  # which variables have optimizer slots
    "config.model.random_init",  # the initial weights
    "config.model.keep_init_labels",  # the label maps (and so the heads' shapes)
    "config.model.intent_loss_weight", "config.model.slot_intent_context",
    "config.model.slot_crf",
    "config.model.focal_gamma", "config.model.slot_loss_normalization",  # the objective
    "config.model.per_intent_slot_heads", "config.model.slot_head",
    "config.model.fp16",  # adds the loss-scale variables to the checkpoint
    "config.train.head_learning_rate_multiplier",  # changes the objective
    "config.train.layer_learning_rate_decay",
    "config.train.weight_average_decay",  # adds the averages to the checkpoint
    "config.model.head_dropout", "config.model.encoder_dropout",
    "config.model.constrain_slots_to_intent",  # the decoding that evaluation selects with
    # The optimisation: batch size maps steps to epochs and sets the schedule's length; the peak
    # rate, warmup, decay and clipping are the schedule; the seed fixes the data order.
    "config.train.train_batch_size",
    "config.train.gradient_accumulation_steps",  # the effective batch and the schedule's length
    "config.train.learning_rate",
    "config.train.warmup_proportion",
    "config.train.lr_schedule",
    "config.train.weight_decay",
    "config.train.adam_bias_correction",  # the update rule
    "config.train.adam_epsilon",
    "config.train.clip_norm",
    "config.train.seed",
    # The training data itself (augmented copies) and the objective (distillation targets).
    "config.data.augment_slot_substitution", "config.data.augment_copies",
    "config.data.augment_same_intent",
    "config.train.distill_teachers", "config.train.distill_temperature",
    "config.train.distill_alpha",
)
COMPATIBLE_KEYS = (
    # Paths: their content is compared above (data_fingerprint, model_files, model_shape).
    "config.output_dir",
    "config.data.data_dir",
    "config.data.cache_dir",
    "config.data.auto_max_seq_length",  # how max_seq_length was chosen; its value is compared
    "config.model.bert_config_file",
    "config.model.vocab_file",
    "config.model.init_checkpoint",
    "config.model.init_run_dir",  # its best checkpoint is init_checkpoint (in model_files)
    # How long and how often: resuming with more epochs is the point of resuming. (The linear
    # decay is then stretched to the new end step, so the learning rate steps up at resume.)
    "config.train.num_train_epochs",
    "config.train.save_checkpoints_steps",
    "config.train.eval_every_steps",
    "config.train.evaluator",
    "config.train.save_summary_steps",
    "config.train.keep_checkpoint_max",
    "config.train.eval_steps",
    "config.train.early_stopping_evals",
    "config.train.eval_batch_size", "config.train.optimizer_implementation",
    "config.train.initial_loss_scale",  # read only when the checkpoint has no scale yet
    "config.train.loss_scale_growth_steps",
    "config.model.bf16",  # the arithmetic, not the variables: the checkpoints are the same
    # Where it runs: the global batch and the checkpoint's variables do not depend on it.
    "config.train.distribution", "config.train.num_gpus", "config.train.devices",
    # Which phases run, and observation only.
    "config.run_train",
    "config.run_eval",
    "config.run_predict",
    "config.eval_on_test",
    "config.predict_input",
    "config.profile",
    "config.intra_op_threads", "config.inter_op_threads",  # execution only
    "code_version",
)
# Bookkeeping, never compared.
_UNCOMPARED_KEYS = ("created", "updated", "history")
# A split fingerprinted by only one of two runs (the test split is read only with eval_on_test)
# was simply not read by the other run: not a difference.
_ONE_SIDED_SECTIONS = ("data_fingerprint",)

# Files and directories only a trainer writes; a directory holding none is not a run directory.
RUN_MARKERS = (MANIFEST_FILE, "checkpoint", "run_config.json", "label_maps.json",
               "model.ckpt-*.index", "best_checkpoint", "events.out.tfevents.*", "data_cache")

_REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(bert_nlu.__file__)))
_MAX_VALUE_CHARS = 60  # per value in an error message
_MAX_LISTED_ITEMS = 4  # added/removed list items named in an error message


class _Absent:
  """The value of a key one of two manifests does not have."""

  def __repr__(self) -> str:
    return "<absent>"


_ABSENT = _Absent()


class RunDirectoryError(InputError):
  """A run directory cannot be used as asked; `path` is the directory or the file concerned."""


class IncompatibleRunError(RunDirectoryError):
  """The directory holds a run whose configuration differs in keys that forbid resuming it.

  Attributes:
    differences: the incompatible differences (key, recorded, requested).
    compatible_differences: the differences that alone would have been accepted.
  """

  def __init__(self, output_dir: str, differences: Sequence["Difference"],
               compatible_differences: Sequence["Difference"] = ()):
    self.differences = list(differences)
    self.compatible_differences = list(compatible_differences)
    super().__init__(output_dir, _incompatibility_message(self.differences,
                                                          self.compatible_differences))


class UnsafeOverwriteError(RunDirectoryError):
  """--overwrite_output_dir was asked for a directory whose contents must not be deleted."""


class RunDirectoryInUseError(RunDirectoryError):
  """Another live process (or one on another host) holds the directory's lock.

  Attributes:
    lock_path: the lock file.
    holder: the lock's record ({pid, hostname, started, argv, ...}), or None.
  """

  def __init__(self, lock_path: str, holder: Optional[Mapping[str, Any]], reason: str):
    self.lock_path = lock_path
    self.holder = dict(holder) if holder else None
    super().__init__(lock_path, f"run directory in use: {reason}. Wait for that run to end or "
                     "stop it, or use another --output_dir; delete the lock file only if you "
                     "are sure that run is gone")


# ---------------------------------------------------------------------------------------------
# The manifest's parts.


def build_manifest(config_dict: Mapping[str, Any], data_fingerprint: Mapping[str, str],
                   label_maps: Mapping[str, Any], model_shape: Mapping[str, Any],
                   model_files: Optional[Mapping[str, Optional[str]]] = None) -> Dict[str, Any]:
  """The manifest of a run, in its JSON form (tuples become lists, as after a save and a load).

  Args:
    config_dict: RunConfig.to_json_dict().
    data_fingerprint: {split name: fingerprint of its files}, see `fingerprint_splits`.
    label_maps: LabelMaps.to_json_dict().
    model_shape: see `model_shape_from_bert_config`.
    model_files: see `fingerprint_model_files`; None computes it from the config's vocab_file
      and init_checkpoint.

  Returns:
    {"config", "data_fingerprint", "model_files", "label_maps", "model_shape", "code_version",
     "created", "updated", "history"}.
  """
  if model_files is None:
    model_files = fingerprint_model_files(config_dict["model"]["vocab_file"],
                                          config_dict["model"]["init_checkpoint"])
  now = _now()
  manifest = {
      "config": config_dict,
      "data_fingerprint": data_fingerprint,
      "model_files": model_files,
      "label_maps": label_maps,
      "model_shape": model_shape,
      "code_version": code_version(),
      "created": now,
      "updated": now,
      "history": [],
  }
  return json.loads(json.dumps(manifest))


def fingerprint_splits(splits: Mapping[str, Any]) -> Dict[str, str]:
  """{split name: fingerprint of the files it was read from}, for NluSplits (or any `.files`)."""
  return {name: io_utils.fingerprint_files(split.files) for name, split in sorted(splits.items())}


def fingerprint_model_files(vocab_file: str, init_checkpoint: str) -> Dict[str, Optional[str]]:
  """Content fingerprints of the vocabulary and the initial checkpoint (None if missing).

  The checkpoint's .index file lists every tensor with its shape and CRC32C, so hashing it
  identifies the weights without reading the (large) data shards.
  """
  return {"vocab_file": _sha256_or_none(vocab_file),
          "init_checkpoint": _sha256_or_none(init_checkpoint + ".index")}


def model_shape_from_bert_config(bert_config: Mapping[str, Any],
                                 num_hidden_layers: Optional[int] = None) -> Dict[str, Any]:
  """The shape-defining fields of bert_config.json (e.g. `BertConfig.to_dict()`).

  Args:
    bert_config: the parsed bert_config.json.
    num_hidden_layers: ModelConfig.num_hidden_layers (None = all layers are used).
  """
  layers = bert_config["num_hidden_layers"]
  return {
      "layers": layers,
      "hidden": bert_config["hidden_size"],
      "heads": bert_config["num_attention_heads"],
      "intermediate": bert_config["intermediate_size"],
      "vocab_size": bert_config["vocab_size"],
      "hidden_act": bert_config["hidden_act"],
      "num_hidden_layers_used": num_hidden_layers or layers,
  }


def code_version() -> Dict[str, Optional[str]]:
  return {"package": bert_nlu.__version__, "git_commit": _git_commit(_REPO_DIR)}


@functools.lru_cache(maxsize=None)
def _git_commit(repo_dir: str) -> Optional[str]:
  """HEAD of the git repository whose top level is `repo_dir`; None without git or repository.

  An installed package may sit inside some other repository (a venv in a checkout): only a
  repository rooted exactly at `repo_dir` counts.
  """
  try:
    result = subprocess.run(["git", "-C", repo_dir, "rev-parse", "--show-toplevel", "HEAD"],
                            capture_output=True, text=True, timeout=10, check=True)
  except (OSError, subprocess.SubprocessError):
    return None
  lines = result.stdout.split()
  if len(lines) != 2 or os.path.realpath(lines[0]) != os.path.realpath(repo_dir):
    return None
  return lines[1]


def _sha256_or_none(path: str) -> Optional[str]:
  if not os.path.isfile(path):
    return None
  return _sha256_of_file(path)


def _sha256_of_file(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Comparing manifests.


class Difference(NamedTuple):
  """One differing manifest key (dotted path) with its recorded and requested leaf values."""
  key: str
  recorded: Any
  requested: Any

  def describe(self) -> str:
    return f"{self.key}: {describe_change(self.recorded, self.requested)}"


def is_compatible_key(key: str) -> bool:
  """Whether a change of manifest key `key` (dotted path) still allows resuming the run."""
  compatible = _longest_cover(key, COMPATIBLE_KEYS)
  return compatible > _longest_cover(key, INCOMPATIBLE_KEYS)


def _longest_cover(key: str, paths: Sequence[str]) -> int:
  """Length of the longest path in `paths` that is `key` or an ancestor of it; -1 if none."""
  return max((len(p) for p in paths if key == p or key.startswith(p + ".")), default=-1)


def flatten(obj: Any, prefix: str = "") -> Dict[str, Any]:
  """{dotted key: leaf value}; dicts are descended (an empty dict is a leaf), lists are leaves."""
  if not isinstance(obj, dict) or (not obj and prefix):
    return {prefix: obj}
  flat = {}
  for key, value in obj.items():
    flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
  return flat


def manifest_differences(recorded: Mapping[str, Any], requested: Mapping[str, Any],
                         only_recorded_keys: bool = False) -> List[Difference]:
  """Every compared key whose value differs, in the requested manifest's key order.

  Args:
    recorded: the manifest in the run directory.
    requested: the manifest of the run about to start.
    only_recorded_keys: compare only keys `recorded` has (for partial records of old runs).
  """
  old = _comparable(recorded)
  new = _comparable(requested)
  defaults = config_field_defaults()
  differences = []
  for key in list(new) + [k for k in old if k not in new]:
    old_value, new_value = old.get(key, _ABSENT), new.get(key, _ABSENT)
    if old_value == new_value:
      continue
    if old_value is _ABSENT and only_recorded_keys:
      continue
    if old_value is _ABSENT and key in defaults and new_value == defaults[key]:
      continue  # a setting added to the code later; its default is the old behaviour
    one_sided = old_value is _ABSENT or new_value is _ABSENT
    if one_sided and key.split(".", 1)[0] in _ONE_SIDED_SECTIONS:
      continue
    differences.append(Difference(key, old_value, new_value))
  return differences


@functools.lru_cache(maxsize=None)
def config_field_defaults() -> Dict[str, Any]:
  """{"config.<section>.<field>": default} for every RunConfig field that has a default.

  A field added to the code after a run was recorded is absent from its manifest. Its default
  must reproduce the behaviour of the code before it existed (e.g. slot_crf=False), so a request
  with the default is no difference; any other value is.
  """
  defaults = {}

  def walk(cls, prefix):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
      key = f"{prefix}.{field.name}"
      if dataclasses.is_dataclass(hints[field.name]):
        walk(hints[field.name], key)
      elif field.default is not dataclasses.MISSING:
        defaults[key] = json.loads(json.dumps(field.default))  # as the manifest stores it

  walk(config_lib.RunConfig, "config")
  return defaults


def _comparable(manifest: Mapping[str, Any]) -> Dict[str, Any]:
  return flatten({k: v for k, v in manifest.items() if k not in _UNCOMPARED_KEYS})


def describe_change(old: Any, new: Any) -> str:
  """A compact "old -> new" for a message; long lists are summarised by what was added/removed."""
  if isinstance(old, list) and isinstance(new, list):
    return _describe_list_change(old, new)
  return f"{_compact(old)} -> {_compact(new)}"


def _describe_list_change(old: List[Any], new: List[Any]) -> str:
  if max(len(json.dumps(old, ensure_ascii=False)),
         len(json.dumps(new, ensure_ascii=False))) <= _MAX_VALUE_CHARS:
    return f"{_compact(old)} -> {_compact(new)}"
  added = [item for item in new if item not in old]
  removed = [item for item in old if item not in new]
  if not added and not removed:
    return f"the same {len(old)} items in another order"
  changes = [f"+{_compact(x)}" for x in added] + [f"-{_compact(x)}" for x in removed]
  listed = ", ".join(changes[:_MAX_LISTED_ITEMS])
  if len(changes) > _MAX_LISTED_ITEMS:
    listed += f", ... {len(changes) - _MAX_LISTED_ITEMS} more"
  return f"{len(old)} items -> {len(new)} items ({listed})"


def _compact(value: Any) -> str:
  if value is _ABSENT:
    return "<absent>"
  if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
    return value[:12] + "..."  # a sha256
  text = json.dumps(value, ensure_ascii=False)
  if len(text) > _MAX_VALUE_CHARS:
    text = text[:_MAX_VALUE_CHARS - 3] + "..."
  return text


def _incompatibility_message(differences: Sequence[Difference],
                             compatible_differences: Sequence[Difference]) -> str:
  lines = ["this directory holds a run made with a configuration that cannot be resumed with "
           "this one (resuming would continue its checkpoints under other settings). "
           "Incompatible differences (recorded -> requested):"]
  lines += [f"  {d.describe()}" for d in differences]
  if compatible_differences:
    lines.append("Compatible differences (accepted on their own): " +
                 ", ".join(d.key for d in compatible_differences))
  lines.append(f"Pass {OVERWRITE_FLAG} to delete this run and start afresh, "
               "or choose another --output_dir.")
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Recording the manifest.


def check_or_record_manifest(output_dir: str, manifest: Mapping[str, Any],
                             overwrite: bool) -> str:
  """Records `manifest` in `output_dir` after checking it against the run already there.

  Call it while holding `RunDirectoryLock(output_dir)`, before anything else is written.

  Args:
    output_dir: the run directory (created if missing).
    manifest: from `build_manifest`.
    overwrite: --overwrite_output_dir: delete the directory's contents (except the lock) and
      start afresh; refused by `check_safe_to_clear` for directories that are not run directories.

  Returns:
    NEW (nothing recorded before), RESUMED (a compatible run is continued; its manifest now holds
    the new configuration and the previous one in "history") or OVERWRITTEN.

  Raises:
    IncompatibleRunError: the recorded run differs in an incompatible key (all are listed).
    UnsafeOverwriteError: overwrite was asked for a directory that must not be cleared.
    RunDirectoryError: the recorded manifest (or an old run's run_config.json/label_maps.json)
      cannot be read.
  """
  manifest = dict(manifest)
  if overwrite and _directory_contents(output_dir):
    check_safe_to_clear(output_dir)
    _remove_contents(output_dir)
    _write_manifest(output_dir, _fresh(manifest))
    return OVERWRITTEN
  recorded, is_partial = _recorded_run(output_dir)
  if recorded is None:
    _write_manifest(output_dir, _fresh(manifest))
    return NEW
  differences = manifest_differences(recorded, manifest, only_recorded_keys=is_partial)
  incompatible = [d for d in differences if not is_compatible_key(d.key)]
  if incompatible:
    raise IncompatibleRunError(output_dir, incompatible,
                               [d for d in differences if is_compatible_key(d.key)])
  _write_manifest(output_dir, resumed_manifest(recorded, manifest, differences, is_partial))
  return RESUMED


def resumed_manifest(recorded: Mapping[str, Any], requested: Mapping[str, Any],
                     differences: Sequence[Difference], recorded_is_partial: bool = False
                     ) -> Dict[str, Any]:
  """`requested`, keeping the recorded creation time, splits and history (+ the replaced config)."""
  history = list(recorded.get("history", []))
  if differences or recorded_is_partial:
    entry = {
        "replaced": _now(),
        "changes": {d.key: {"recorded": _json_value(d.recorded),
                            "requested": _json_value(d.requested)} for d in differences},
        "config": recorded.get("config"),
        "code_version": recorded.get("code_version"),
    }
    if recorded_is_partial:
      entry["note"] = f"adopted a run directory made before {MANIFEST_FILE} existed"
    history.append(entry)
  manifest = dict(requested)
  manifest["data_fingerprint"] = {**recorded.get("data_fingerprint", {}),
                                  **requested.get("data_fingerprint", {})}
  manifest["created"] = recorded.get("created") or requested.get("created")
  manifest["updated"] = _now()
  manifest["history"] = history
  return manifest


def read_manifest(output_dir: str) -> Optional[Dict[str, Any]]:
  """The recorded manifest of `output_dir`, or None if there is none."""
  path = os.path.join(output_dir, MANIFEST_FILE)
  if not os.path.exists(path):
    return None
  manifest = _read_json_object(path)
  if "config" not in manifest:
    raise RunDirectoryError(path, "not a run manifest (no \"config\"); inspect it, or pass "
                            f"{OVERWRITE_FLAG} to start this run afresh")
  return manifest


def _recorded_run(output_dir: str) -> Tuple[Optional[Dict[str, Any]], bool]:
  """(recorded manifest, whether it is partial); (None, False) if no run is recorded.

  A run directory made before manifests existed yields a partial record rebuilt from its
  run_config.json and label_maps.json (whichever exist).
  """
  manifest = read_manifest(output_dir)
  if manifest is not None:
    return manifest, False
  if not has_run_markers(output_dir):
    return None, False
  _logger.warning("%s has no %s (made by an older bert-nlu): checking only what its "
                  "run_config.json and label_maps.json record", output_dir, MANIFEST_FILE)
  partial = {}
  for section, file_name in (("config", "run_config.json"), ("label_maps", "label_maps.json")):
    path = os.path.join(output_dir, file_name)
    if os.path.exists(path):
      partial[section] = _read_json_object(path)
  return partial, True


def _read_json_object(path: str) -> Dict[str, Any]:
  try:
    obj = io_utils.read_json(path)
  except (OSError, ValueError) as e:
    raise RunDirectoryError(path, f"cannot be read ({e}); inspect it, or pass {OVERWRITE_FLAG} "
                            "to start this run afresh") from None
  if not isinstance(obj, dict):
    raise RunDirectoryError(path, f"holds a {type(obj).__name__}, not a JSON object; inspect it, "
                            f"or pass {OVERWRITE_FLAG} to start this run afresh")
  return obj


def _fresh(manifest: Dict[str, Any]) -> Dict[str, Any]:
  now = _now()
  return dict(manifest, created=now, updated=now, history=[])


def _write_manifest(output_dir: str, manifest: Mapping[str, Any]) -> None:
  io_utils.atomic_write_json(os.path.join(output_dir, MANIFEST_FILE), manifest)


def _json_value(value: Any) -> Any:
  return None if value is _ABSENT else value


# ---------------------------------------------------------------------------------------------
# Overwriting.


def has_run_markers(output_dir: str) -> bool:
  """Whether `output_dir` holds a file or directory that only a trainer writes (RUN_MARKERS)."""
  return any(glob.glob(os.path.join(glob.escape(output_dir), marker)) for marker in RUN_MARKERS)


def check_safe_to_clear(output_dir: str) -> None:
  """Raises UnsafeOverwriteError unless deleting the contents of `output_dir` is plainly safe.

  Refused: a directory that is, or contains, the filesystem root, the home directory, the bert-nlu
  repository or the current working directory (after resolving symlinks); and a directory that
  holds no RUN_MARKERS, i.e. whose files a trainer did not write (a mistyped --output_dir).
  """
  real_dir = os.path.realpath(output_dir)
  for name, protected in _protected_directories():
    if _is_same_or_ancestor(real_dir, protected):
      what = "is" if real_dir == protected else "contains"
      raise UnsafeOverwriteError(output_dir, f"refusing to {OVERWRITE_FLAG}: it {what} the {name} "
                                 f"({protected}); choose a dedicated run directory")
  if not has_run_markers(output_dir):
    raise UnsafeOverwriteError(output_dir, f"refusing to {OVERWRITE_FLAG}: it holds files but "
                               f"none a trainer writes ({', '.join(RUN_MARKERS)}), so it is not a "
                               "run directory; choose another --output_dir or empty it yourself")


def _protected_directories() -> List[Tuple[str, str]]:
  return [(name, os.path.realpath(path)) for name, path in (
      ("filesystem root", os.sep), ("home directory", os.path.expanduser("~")),
      ("bert-nlu repository", _REPO_DIR), ("current working directory", os.getcwd()))]


def _is_same_or_ancestor(directory: str, path: str) -> bool:
  return os.path.commonpath([directory, path]) == directory


def _directory_contents(output_dir: str) -> List[str]:
  """Entry names of `output_dir` other than lock files ([] if it does not exist)."""
  if not os.path.isdir(output_dir):
    return []
  return sorted(name for name in os.listdir(output_dir) if not _is_lock_file(name))


def _is_lock_file(name: str) -> bool:
  return name == LOCK_FILE or name.startswith(LOCK_FILE + ".")


def _remove_contents(output_dir: str) -> None:
  """Deletes everything in `output_dir` but the lock files; symlinks are removed, not followed."""
  for name in _directory_contents(output_dir):
    path = os.path.join(output_dir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


# ---------------------------------------------------------------------------------------------
# The lock.


class RunDirectoryLock:
  """Holds `<output_dir>/.lock` for the duration of a `with` block.

  The lock file is created atomically and exclusively (written under a temporary name, then
  hard-linked to `.lock`: link() fails if `.lock` exists, like O_CREAT|O_EXCL, and a reader never
  sees a half-written lock). It records {pid, hostname, started, argv, pid_start_ticks}.

  An existing lock is respected when its holder may be alive:
    - another host: cannot be checked from here, so it counts as alive;
    - this host: os.kill(pid, 0) succeeds (or is not permitted), the process is not a zombie and,
      on Linux, its start time (/proc/<pid>/stat) is the one recorded, so a reused pid is dead.
  A lock of a dead holder, or one whose content is not a lock record (garbage left by a crash or
  an edit), is stale and taken over with a warning. Takeovers are serialised by flock() on
  `.lock.takeover`, and the taker removes `.lock` only if it still holds the very content judged
  stale, so of processes racing for a stale lock exactly one wins. (Renaming the stale file away
  without such a guard could move away a lock a faster racer has just created.)

  On exit, also by an exception, the lock file is removed if it still holds this lock's record.
  """

  def __init__(self, output_dir: str):
    self.output_dir = output_dir
    self.lock_path = os.path.join(output_dir, LOCK_FILE)
    self._record_text: Optional[str] = None

  def __enter__(self) -> "RunDirectoryLock":
    os.makedirs(self.output_dir, exist_ok=True)
    record_text = json.dumps(own_lock_record(), ensure_ascii=False) + "\n"
    acquire_lock(self.lock_path, record_text)
    self._record_text = record_text
    return self

  def __exit__(self, *exc_info) -> bool:
    release_lock(self.lock_path, self._record_text)
    self._record_text = None
    return False


_MAX_ACQUIRE_ATTEMPTS = 10


def own_lock_record() -> Dict[str, Any]:
  pid = os.getpid()
  status = _linux_process_status(pid)
  return {"pid": pid, "hostname": socket.gethostname(), "started": _now(),
          "argv": list(sys.argv), "pid_start_ticks": status[1] if status else None}


def acquire_lock(lock_path: str, record_text: str) -> None:
  """Creates `lock_path` holding `record_text`, taking over a stale lock; see RunDirectoryLock.

  Raises:
    RunDirectoryInUseError: the lock's holder may be alive.
  """
  for _ in range(_MAX_ACQUIRE_ATTEMPTS):
    if _create_exclusively(lock_path, record_text):
      return
    holder_text = _read_text_or_none(lock_path)
    if holder_text is None:
      continue  # released since our attempt
    holder = parse_lock_record(holder_text)
    reason_alive = holder_alive_reason(holder) if holder is not None else None
    if reason_alive:
      raise RunDirectoryInUseError(lock_path, holder, reason_alive)
    if _take_over(lock_path, holder_text, holder, record_text):
      return
  raise RunDirectoryInUseError(lock_path, None, f"the lock changed hands {_MAX_ACQUIRE_ATTEMPTS} "
                               "times while this process tried to take it")


def release_lock(lock_path: str, record_text: Optional[str]) -> None:
  """Removes `lock_path` if it still holds `record_text`; otherwise leaves it with a warning."""
  if record_text is None:
    return
  current = _read_text_or_none(lock_path)
  if current != record_text:
    _logger.warning("not removing %s: it no longer holds this process's lock (pid %d)",
                    lock_path, os.getpid())
    return
  with contextlib.suppress(FileNotFoundError):
    os.remove(lock_path)


def parse_lock_record(text: str) -> Optional[Dict[str, Any]]:
  """The lock record in `text`, or None if it is not one (garbage: the lock is then stale)."""
  try:
    record = json.loads(text)
  except ValueError:
    return None
  if not isinstance(record, dict):
    return None
  pid, hostname = record.get("pid"), record.get("hostname")
  if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(hostname, str):
    return None
  return record


def holder_alive_reason(holder: Mapping[str, Any]) -> Optional[str]:
  """Why the lock's holder may be alive (so the lock must be respected); None if it is dead."""
  pid, hostname = holder["pid"], holder["hostname"]
  described = f"pid {pid} ({_describe_holder(holder)})"
  if hostname != socket.gethostname():
    return (f"held by {described} on host {hostname!r}, which cannot be checked from host "
            f"{socket.gethostname()!r}")
  if not _pid_alive(pid):
    return None
  status = _linux_process_status(pid)
  if status is not None:
    state, start_ticks = status
    if state == "Z":
      return None
    recorded_ticks = holder.get("pid_start_ticks")
    if isinstance(recorded_ticks, int) and recorded_ticks != start_ticks:
      return None  # the pid now belongs to a process started later
  return f"held by live {described} on this host"


def _describe_holder(holder: Mapping[str, Any]) -> str:
  argv = holder.get("argv")
  command = " ".join(str(a) for a in argv) if isinstance(argv, list) else "?"
  if len(command) > 100:
    command = command[:97] + "..."
  return f"started {holder.get('started', '?')}, command: {command}"


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # exists, owned by another user
  except OverflowError:
    return False
  return True


def _linux_process_status(pid: int) -> Optional[Tuple[str, int]]:
  """(state letter, start time in clock ticks since boot) from /proc/<pid>/stat; None elsewhere."""
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
      stat = f.read()
  except OSError:
    return None
  fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
  try:
    return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)
  except (IndexError, ValueError):
    return None


def _create_exclusively(lock_path: str, text: str) -> bool:
  """Creates `lock_path` with `text` if it does not exist; False if it does. Atomic."""
  directory = os.path.dirname(os.path.abspath(lock_path))
  fd, tmp_path = tempfile.mkstemp(prefix=LOCK_FILE + ".", suffix=".tmp", dir=directory)
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp_path, 0o644)
    os.link(tmp_path, lock_path)
    return True
  except FileExistsError:
    return False
  finally:
    os.remove(tmp_path)


def _take_over(lock_path: str, stale_text: str, stale_holder: Optional[Mapping[str, Any]],
               record_text: str) -> bool:
  """Replaces the stale lock `stale_text` by ours; False if the lock changed meanwhile."""
  with _takeover_guard(os.path.dirname(os.path.abspath(lock_path))):
    if _read_text_or_none(lock_path) != stale_text:
      return False
    if stale_holder is not None:
      _logger.warning("%s: taking over stale lock of dead pid %d (%s)", lock_path,
                      stale_holder["pid"], _describe_holder(stale_holder))
    else:
      _logger.warning("%s: taking over a lock file that holds no lock record (left by a crash?): "
                      "%r", lock_path, stale_text[:80])
    os.remove(lock_path)
    return _create_exclusively(lock_path, record_text)


@contextlib.contextmanager
def _takeover_guard(directory: str):
  """Serialises takeovers of the lock in `directory` (flock: released if the holder dies)."""
  fd = os.open(os.path.join(directory, LOCK_FILE + ".takeover"), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)


def _read_text_or_none(path: str) -> Optional[str]:
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return f.read()
  except FileNotFoundError:
    return None
