"""Does this CPU run bfloat16 matrix products in hardware, and will `--bf16` use them?

`--bf16` switches on TensorFlow's oneDNN bfloat16 rewrite. It pays only where the CPU multiplies
bfloat16 in hardware (AVX512_BF16 on recent AMD and Intel server parts, AMX tiles on recent Intel
ones) and TensorFlow runs its oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS=1`, or TensorFlow's default on
CPUs with such features). Anywhere else the rewritten graph would run emulated bfloat16 kernels,
slower than float32: `--bf16` then stays float32 and says so once.

Everything but `read_cpuinfo` and `onednn_enabled` is a pure function of the text of
/proc/cpuinfo, so that tests can describe any CPU.
"""

import dataclasses
from typing import FrozenSet, Tuple

from absl import logging

CPUINFO_PATH = "/proc/cpuinfo"
# The /proc/cpuinfo flags reported for bfloat16 (AMX_TILE: the tile registers AMX_BF16 runs on).
BF16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16", "amx_tile")
# Either of these multiplies bfloat16 in hardware.
BF16_MATMUL_INSTRUCTIONS = ("avx512_bf16", "amx_bf16")

_warned_fallback = False


def cpu_flags(cpuinfo_text: str) -> FrozenSet[str]:
  """The instruction-set flags of the first processor listed in /proc/cpuinfo text (x86 "flags",
  ARM "Features"); empty when there is no such line."""
  for line in cpuinfo_text.splitlines():
    key, _, value = line.partition(":")
    if key.strip() in ("flags", "Features"):
      return frozenset(value.split())
  return frozenset()


def cpu_model(cpuinfo_text: str) -> str:
  """The "model name" of the first processor, "" when absent."""
  for line in cpuinfo_text.splitlines():
    key, _, value = line.partition(":")
    if key.strip() == "model name":
      return value.strip()
  return ""


def bf16_instructions(cpuinfo_text: str) -> Tuple[str, ...]:
  """Which of BF16_INSTRUCTIONS the CPU reports, in that order."""
  flags = cpu_flags(cpuinfo_text)
  return tuple(name for name in BF16_INSTRUCTIONS if name in flags)


@dataclasses.dataclass(frozen=True)
class Bf16Support:
  """What `--bf16` does on this machine (recorded in eval_results.json).

  Attributes:
    requested: --bf16 was given.
    active: the oneDNN bfloat16 rewrite is on (requested, hardware bfloat16, oneDNN on).
    cpu_model: /proc/cpuinfo "model name".
    bf16_instructions: the bfloat16 instructions the CPU reports (subset of BF16_INSTRUCTIONS).
    onednn_enabled: TensorFlow runs its oneDNN kernels in this process.
    reason: why a requested bfloat16 is not active ("" otherwise).
  """
  requested: bool
  active: bool
  cpu_model: str
  bf16_instructions: Tuple[str, ...]
  onednn_enabled: bool
  reason: str = ""

  def to_json_dict(self) -> dict:
    result = dataclasses.asdict(self)
    result["bf16_instructions"] = list(self.bf16_instructions)
    return result


def bf16_support(requested: bool, cpuinfo_text: str, onednn_is_enabled: bool) -> Bf16Support:
  """Decides whether the bfloat16 rewrite runs.

  Args:
    requested: --bf16.
    cpuinfo_text: the text of /proc/cpuinfo ("" when unknown: no hardware bfloat16 assumed).
    onednn_is_enabled: TensorFlow's oneDNN kernels are on (`onednn_enabled()`).

  Returns:
    Bf16Support; active only when requested, the CPU has AVX512_BF16 or AMX_BF16, and oneDNN is on.
  """
  instructions = bf16_instructions(cpuinfo_text)
  reason = ""
  if requested:
    if not any(name in instructions for name in BF16_MATMUL_INSTRUCTIONS):
      reason = ("the CPU reports no bfloat16 instructions (avx512_bf16 or amx_bf16 in "
                f"{CPUINFO_PATH}): bfloat16 would be emulated, slower than float32")
    elif not onednn_is_enabled:
      reason = ("TensorFlow's oneDNN kernels are off (set TF_ENABLE_ONEDNN_OPTS=1 before "
                "TensorFlow starts): the bfloat16 rewrite needs them")
  return Bf16Support(requested=requested, active=requested and not reason,
                     cpu_model=cpu_model(cpuinfo_text), bf16_instructions=instructions,
                     onednn_enabled=onednn_is_enabled, reason=reason)


def read_cpuinfo(path: str = CPUINFO_PATH) -> str:
  """The text of /proc/cpuinfo; "" where there is none (not Linux)."""
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return f.read()
  except OSError:
    return ""


def onednn_enabled() -> bool:
  """Whether TensorFlow runs its oneDNN kernels in this process (fixed when TensorFlow starts:
  TF_ENABLE_ONEDNN_OPTS, else on by default on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or
  AMX)."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  return bool(_pywrap_util_port.IsMklEnabled())


def detect_bf16_support(requested: bool) -> Bf16Support:
  """`bf16_support` for this machine and process; a requested bfloat16 that cannot run is
  logged as a warning once per process (training, evaluation and prediction all ask)."""
  global _warned_fallback
  support = bf16_support(requested, read_cpuinfo(), onednn_enabled())
  if support.reason and not _warned_fallback:
    _warned_fallback = True
    logging.warning("--bf16: running float32: %s", support.reason)
  return support
