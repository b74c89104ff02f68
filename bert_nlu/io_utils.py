"""Atomic file writes and content fingerprints.

Every file the project writes for later reuse (TFRecord caches, label maps, results, converted
checkpoints) goes through `atomic_write_*`: the content lands in a temporary file in the same
directory and is renamed over the target only when complete, so a crash mid-write never leaves a
half file under the real name.
"""

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from typing import Any, Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path next to `path`; renames it onto `path` if the block succeeds.

  On any exception the temporary file is removed and `path` is left untouched.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(
      prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
  os.close(fd)
  os.chmod(tmp_path, 0o666 & ~_current_umask())  # mkstemp makes 0600; use the normal mode
  try:
    yield tmp_path
    with open(tmp_path, "rb") as f:
      os.fsync(f.fileno())
    fault_point("before_rename:" + os.path.basename(path))
    os.replace(tmp_path, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp_path)
    raise


FAULT_POINT_ENV = "BERT_NLU_FAULT_POINT"
FAULT_PAUSE_ENV = "BERT_NLU_FAULT_PAUSE_SECONDS"


def fault_point(name: str) -> None:
  """Fault-injection point for the crash-safety driver (bench/faults.py); a no-op normally.

  When $BERT_NLU_FAULT_POINT is a prefix of `name`, prints "FAULT-POINT <name>" to stderr and
  pauses ($BERT_NLU_FAULT_PAUSE_SECONDS, default 5) so that the driver can SIGKILL the process in
  exactly this state (e.g. a complete temporary file not yet renamed).
  """
  wanted = os.environ.get(FAULT_POINT_ENV)
  if wanted and name.startswith(wanted):
    print(f"FAULT-POINT {name}", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get(FAULT_PAUSE_ENV, "5")))


def _current_umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  with atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      f.write(text)


def atomic_write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON to `path` atomically (non-ASCII kept, user text escaped)."""
  atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def fingerprint_files(paths: Iterable[str]) -> str:
  """SHA-256 over the names' basenames and bytes of `paths` (in the given order)."""
  digest = hashlib.sha256()
  for path in paths:
    digest.update(os.path.basename(path).encode("utf-8") + b"\0")
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    digest.update(b"\0")
  return digest.hexdigest()


def fingerprint_json(obj: Any) -> str:
  """SHA-256 of the canonical JSON form of `obj`."""
  return hashlib.sha256(
      json.dumps(obj, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()
