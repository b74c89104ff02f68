"""A run's identity: its resolved configuration and the content of its data and weights, hashed.

The sweep engine names every run directory by `identity_hash(run_identity(config))`, so a
configuration that was trained once is found again and reused, by any sweep. The identity is:

  - "config": the resolved `RunConfig` (what `run_bert_nlu.build_run_config` makes of the flags),
    flattened to dotted keys, WITHOUT
      * keys equal to their default: spelling a default out changes nothing, and a config field
        added to the code later (its default is the old behaviour, see run_dir) leaves existing
        identities alone;
      * EXECUTION_KEYS (where the run writes, how many threads): how a run executes, not what it
        computes;
      * PATH_KEYS: the files a path names are identified by their content instead (below), so
        moving the data or the weights keeps the identity and changing their bytes changes it;
    and with the run directories of RUN_DIRECTORY_KEYS (distillation teachers, the fine-tuned
    run an --init_checkpoint directory names) replaced by the fingerprints of their checkpoint
    records;
  - "data": the fingerprint of every file under the data directory;
  - "model_files": sha256 of bert_config.json, vocab.txt and the initial checkpoint's .index
    (which lists every tensor with its shape and CRC32C, see run_dir.fingerprint_model_files),
    or of a fine-tuned run directory's checkpoint records when --init_checkpoint names one.

Code changes are not part of the identity (as in the StagedML design the sweeps follow): after a
change that alters results, point the sweep at a new runs root.
"""

import functools
import json
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from bert_nlu import io_utils, run_dir
from bert_nlu.errors import InputError

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds run_bert_nlu.py
IDENTITY_VERSION = 1
HASH_CHARS = 16  # 64 bits of sha256: run directory names stay short, collisions stay impossible
EXECUTION_KEYS = ("output_dir", "data.cache_dir", "intra_op_threads", "inter_op_threads")
PATH_KEYS = ("data.data_dir", "model.bert_config_file", "model.vocab_file",
             "model.init_checkpoint", "profile.profile_dir")
# Keys naming run directories (or a list of them) whose trained content a run depends on:
# identified by their checkpoint records instead of their paths (the fine-tuned run an
# --init_checkpoint directory names: its best checkpoint, model.init_checkpoint, is hashed by
# content in model_files).
RUN_DIRECTORY_KEYS = ("train.distill_teachers", "model.init_run_dir")
LENGTH_KEY, AUTO_LENGTH_KEY = "data.max_seq_length", "data.auto_max_seq_length"
IDENTITY_FILE = "sweep_identity.json"
RESULTS_FILE = "eval_results.json"


class ConfigurationError(InputError):
  """A run's flags do not resolve to a configuration (bad flag, failed validation)."""


def resolve_run_config(argv: Sequence[str]):
  """The RunConfig `run_bert_nlu.py <argv>` would run, resolved in this process.

  Parses `argv` into absl's global FLAGS (where run_bert_nlu.py defines its flags) and calls
  `run_bert_nlu.build_run_config`, which validates them and resolves defaults and paths. The
  flags' previous values and parsed state are restored afterwards. No TensorFlow graph is built.

  Raises:
    ConfigurationError: a flag is unknown or malformed, or fails validation.
  """
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  run_bert_nlu = _run_script_module()
  flag_values = flags.FLAGS
  was_parsed = flag_values.is_parsed()
  saved = {name: flag_values[name].value for name in flag_values}
  flag_values.unparse_flags()
  try:
    flag_values(["run_bert_nlu.py", *argv, "--output_dir=<sweep run>"])
    return run_bert_nlu.build_run_config()
  except (flags.Error, app.UsageError) as e:
    raise ConfigurationError(" ".join(argv), str(e)) from None
  finally:
    flag_values.unparse_flags()
    if was_parsed:
      flag_values.mark_as_parsed()
      for name, value in saved.items():
        flag_values[name].value = value


def _run_script_module():
  """run_bert_nlu.py as a module (importing it defines its flags), from the repository root."""
  if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)
  import run_bert_nlu  # pylint: disable=g-import-not-at-top
  return run_bert_nlu


def run_flag_names() -> frozenset:
  """Names (and aliases) of the flags run_bert_nlu.py defines, plus absl's --flagfile."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  module_flags = flags.FLAGS.flags_by_module_dict().get(_run_script_module().__name__, [])
  return frozenset([flag.name for flag in module_flags] + ["flagfile"])


def identity_config(config_dict: Mapping[str, Any]) -> Dict[str, Any]:
  """{dotted key: value} of a RunConfig dict that define what a run computes (see module doc)."""
  defaults = run_dir.config_field_defaults()
  flat = run_dir.flatten(json.loads(json.dumps(config_dict)))  # tuples -> lists, as saved
  identity = {key: value for key, value in sorted(flat.items())
              if key not in EXECUTION_KEYS and key not in PATH_KEYS
              and not (f"config.{key}" in defaults and defaults[f"config.{key}"] == value)}
  for key in RUN_DIRECTORY_KEYS:
    if identity.get(key):
      directories = identity[key] if isinstance(identity[key], list) else [identity[key]]
      identity[key] = [_run_directory_fingerprint(d) for d in directories]
  return identity


def run_identity(config) -> Dict[str, Any]:
  """The identity of a RunConfig (module doc): what names its run directory."""
  model = config.model
  return {
      "identity_version": IDENTITY_VERSION,
      "config": identity_config(config.to_json_dict()),
      "data": fingerprint_directory(config.data.data_dir),
      "model_files": model_files_fingerprint(model.bert_config_file, model.vocab_file,
                                             model.init_checkpoint),
  }


def model_files_fingerprint(bert_config_file: str, vocab_file: str,
                            init_checkpoint: str) -> Dict[str, Optional[str]]:
  """Content fingerprints of the weights a run starts from.

  The run manifest's `fingerprint_model_files` (vocab.txt, the checkpoint's .index) plus
  bert_config.json; when `init_checkpoint` names a directory (a fine-tuned run to continue from),
  "init_run": the fingerprint of its checkpoint .index files and JSON records (under
  best_checkpoint/ when it has one), so another upstream run is another identity.
  """
  files = dict(run_dir.fingerprint_model_files(vocab_file, init_checkpoint),
               bert_config_file=_file_fingerprint(bert_config_file))
  if os.path.isdir(init_checkpoint):
    files["init_run"] = _run_directory_fingerprint(init_checkpoint)
  return files


def _run_directory_fingerprint(directory: str) -> Optional[str]:
  best = os.path.join(directory, "best_checkpoint")
  root = best if os.path.isdir(best) else directory
  paths = []
  for parent, dirs, files in os.walk(root):
    dirs.sort()
    paths += [os.path.join(parent, name) for name in sorted(files)
              if name.endswith((".index", ".json")) or name == "checkpoint"]
  if not paths:
    return None
  return io_utils.fingerprint_json({
      "files": [os.path.relpath(p, root) for p in paths],
      "content": io_utils.fingerprint_files(paths)})


def identity_hash(identity: Mapping[str, Any]) -> str:
  """The run directory name of an identity: a prefix of the sha256 of its canonical JSON."""
  return io_utils.fingerprint_json(identity)[:HASH_CHARS]


def fingerprint_directory(directory: str) -> str:
  """sha256 over the relative paths and bytes of every file under `directory` (links followed).

  Memoised per process on the files' (path, size, mtime), so a sweep of many runs on one corpus
  reads it once.
  """
  listing = []
  for root, dirs, files in os.walk(directory, followlinks=True):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      stat = os.stat(path)
      listing.append((os.path.relpath(path, directory), stat.st_size, stat.st_mtime_ns))
  if not listing:
    raise InputError(directory, "the data directory holds no files")
  return _fingerprint_listing(os.path.abspath(directory), tuple(listing))


@functools.lru_cache(maxsize=None)
def _fingerprint_listing(directory: str, listing: Tuple[Tuple[str, int, int], ...]) -> str:
  relative_paths = [entry[0] for entry in listing]
  files_digest = io_utils.fingerprint_files(os.path.join(directory, p) for p in relative_paths)
  return io_utils.fingerprint_json({"files": relative_paths, "content": files_digest})


def _file_fingerprint(path: str) -> Optional[str]:
  if not os.path.isfile(path):
    return None
  stat = os.stat(path)
  return _fingerprint_file_cached(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _fingerprint_file_cached(path: str, size: int, mtime_ns: int) -> str:  # pylint: disable=unused-argument
  return io_utils.fingerprint_files([path])


def identity_differences(recorded: Mapping[str, Any], requested: Mapping[str, Any]) -> List[str]:
  """"key: recorded -> requested" for every differing key of two identities' config sections."""
  old, new = recorded.get("config", {}), requested.get("config", {})
  return [f"{key}: {run_dir.describe_change(old.get(key, '<default>'), new.get(key, '<default>'))}"
          for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def _without(config: Mapping[str, Any], key: str) -> Dict[str, Any]:
  return {k: v for k, v in config.items() if k != key}


def finished_results(directory: str, identity: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
  """The run's eval_results.json if the run in `directory` finished with this identity's config.

  Returns None when the run has not finished (no results yet: it is new, or was stopped and will
  resume).

  Raises:
    InputError: the results were made with another configuration or other weights (a default or
      the identity scheme changed under the directory); the message lists what differs.
  """
  path = os.path.join(directory, RESULTS_FILE)
  if not os.path.exists(path):
    return None
  try:
    results = io_utils.read_json(path)
  except (OSError, ValueError) as e:
    raise InputError(path, f"cannot be read ({e}); delete the run directory to retrain it") from None
  recorded = {"config": identity_config(results.get("config", {}))}
  if recorded["config"].get(AUTO_LENGTH_KEY):
    # --max_seq_length=auto: the run replaced the requested bound (the weights' position limit,
    # fingerprinted with them) by the length it chose from the data (fingerprinted too).
    recorded = {"config": _without(recorded["config"], LENGTH_KEY)}
    identity = {**identity, "config": _without(identity["config"], LENGTH_KEY)}
  differences = identity_differences(recorded, identity)
  manifest = run_dir.read_manifest(directory) or {}
  for key in ("vocab_file", "init_checkpoint"):
    recorded_files = manifest.get("model_files", {})
    if key in recorded_files and recorded_files[key] != identity["model_files"][key]:
      differences.append(f"model_files.{key}: "
                         f"{run_dir.describe_change(recorded_files[key], identity['model_files'][key])}")
  if differences:
    raise InputError(path, "was made with another configuration than the one its directory "
                     "name stands for (did a default change?): " + "; ".join(differences) +
                     ". Delete the run directory to retrain it.")
  return results
