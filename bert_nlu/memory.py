"""Peak memory of a phase of the run (training, evaluation): resident memory and GPU memory.

Resident memory: on Linux the kernel keeps the process's high-water mark (VmHWM in
/proc/self/status) and resets it when "5" is written to /proc/self/clear_refs, so each phase
gets its own peak. Where that reset is not possible, the peak is `resource.getrusage`'s
ru_maxrss, the process's peak since it started, and the record says so ("scope": "process").
GPU memory: TensorFlow's allocator peak per visible GPU (`tf.config.experimental`), reset at
the start of the phase; absent without a GPU.
"""

import os
import resource
import sys
from typing import Dict, Optional

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_RESET_PEAK_RSS = "5"


def _high_water_mark_kib() -> Optional[int]:
  """VmHWM of this process in KiB, None where /proc has none."""
  try:
    with open(_STATUS, encoding="ascii") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1])
  except (OSError, ValueError, IndexError):
    return None
  return None


def _reset_high_water_mark() -> bool:
  try:
    with open(_CLEAR_REFS, "w", encoding="ascii") as f:
      f.write(_RESET_PEAK_RSS)
  except OSError:
    return False
  return _high_water_mark_kib() is not None


def _max_rss_kib() -> int:
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _gpu_names():
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  return [f"GPU:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]


class PeakMemory:
  """Context manager measuring the peak memory of the code it wraps.

  After the block, `result()` is
    {"peak_rss_mb": float, "scope": "phase" | "process", "gpu_peak_mb": {"GPU:0": float, ...}}
  (gpu_peak_mb only with GPUs).
  """

  def __init__(self):
    self._phase_scoped = False
    self._peak_kib = None
    self._gpu_peak_bytes: Dict[str, int] = {}

  def __enter__(self) -> "PeakMemory":
    self._phase_scoped = _reset_high_water_mark()
    from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
    for name in _gpu_names():
      try:
        tf.config.experimental.reset_memory_stats(name)
      except (ValueError, RuntimeError):
        pass
    return self

  def __exit__(self, *exc_info) -> bool:
    self._peak_kib = _high_water_mark_kib() if self._phase_scoped else None
    if self._peak_kib is None:
      self._phase_scoped = False
      self._peak_kib = _max_rss_kib()
    from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
    for name in _gpu_names():
      try:
        self._gpu_peak_bytes[name] = tf.config.experimental.get_memory_info(name)["peak"]
      except (ValueError, RuntimeError):
        pass
    return False

  def result(self) -> Dict:
    record = {"peak_rss_mb": round(self._peak_kib / 1024.0, 1),
              "scope": "phase" if self._phase_scoped else "process"}
    if self._gpu_peak_bytes:
      record["gpu_peak_mb"] = {name: round(peak / 2.0 ** 20, 1)
                               for name, peak in self._gpu_peak_bytes.items()}
    return record


def is_linux_proc_available() -> bool:
  return os.path.exists(_CLEAR_REFS)
