"""What produced a benchmark result: the code version and the machine (shared by bench/*.py)."""

import os
import platform
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args) -> str:
  return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                        check=False).stdout.strip()


def git_state() -> dict:
  """HEAD and the tracked files that differ from it. Call it when the run STARTS."""
  modified = _git("diff", "--name-only", "HEAD").splitlines()
  return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(modified),
          "modified_files": modified}


def machine() -> dict:
  """CPU model, core count, Python and TensorFlow versions."""
  cpu = ""
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
          "tensorflow": tf.__version__}
