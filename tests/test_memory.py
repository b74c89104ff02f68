"""Peak memory per phase: a phase that allocates more shows a higher peak, the next one resets."""

import numpy as np
import pytest

from bert_nlu import memory

ALLOCATED_MB = 300


def _allocate_and_free():
  block = np.ones(ALLOCATED_MB * 2**20 // 8)  # float64, touched: resident
  del block


@pytest.mark.skipif(not memory.is_linux_proc_available(), reason="needs Linux /proc")
def test_each_phase_has_its_own_peak():
  with memory.PeakMemory() as baseline:
    pass
  with memory.PeakMemory() as allocating:
    _allocate_and_free()
  with memory.PeakMemory() as after:
    pass
  base, peak, later = (m.result() for m in (baseline, allocating, after))
  assert base["scope"] == peak["scope"] == "phase"
  assert peak["peak_rss_mb"] >= base["peak_rss_mb"] + 0.9 * ALLOCATED_MB
  assert later["peak_rss_mb"] < peak["peak_rss_mb"] - 0.5 * ALLOCATED_MB  # reset after the phase
  assert "gpu_peak_mb" not in peak  # this machine has no GPU


def test_without_the_reset_the_peak_is_the_process_peak(monkeypatch):
  monkeypatch.setattr(memory, "_CLEAR_REFS", "/nonexistent/clear_refs")
  with memory.PeakMemory() as phase:
    _allocate_and_free()
  result = phase.result()
  assert result["scope"] == "process"
  assert result["peak_rss_mb"] >= ALLOCATED_MB
