"""cpu_features: bfloat16 instructions read from /proc/cpuinfo text, and the --bf16 decision."""

from bert_nlu import cpu_features

# Abridged /proc/cpuinfo of three CPUs (first processor; the real files repeat it per core).
EPYC_WITHOUT_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 avx f16c avx2 fma bmi2 sha_ni vaes vpclmulqdq rdpid fsrm
"""
ZEN4_WITH_AVX512_BF16 = """processor\t: 0
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni
"""
SAPPHIRE_RAPIDS_WITH_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8
power management:
"""


def test_reads_flags_model_and_bf16_instructions_in_a_fixed_order():
  assert "avx2" in cpu_features.cpu_flags(EPYC_WITHOUT_BF16)
  assert cpu_features.cpu_model(SAPPHIRE_RAPIDS_WITH_AMX) == "Intel(R) Xeon(R) Platinum 8480+"
  assert cpu_features.bf16_instructions(EPYC_WITHOUT_BF16) == ()
  assert cpu_features.bf16_instructions(ZEN4_WITH_AVX512_BF16) == ("avx512_bf16",)
  assert cpu_features.bf16_instructions(SAPPHIRE_RAPIDS_WITH_AMX) == (
      "avx512_bf16", "amx_bf16", "amx_tile")
  assert cpu_features.cpu_flags("") == frozenset() and cpu_features.cpu_model("") == ""


def test_bf16_is_active_only_with_hardware_bf16_and_onednn():
  for text in (ZEN4_WITH_AVX512_BF16, SAPPHIRE_RAPIDS_WITH_AMX):
    support = cpu_features.bf16_support(True, text, onednn_is_enabled=True)
    assert support.active and support.reason == ""
    off = cpu_features.bf16_support(True, text, onednn_is_enabled=False)
    assert not off.active and "TF_ENABLE_ONEDNN_OPTS=1" in off.reason
  no_hardware = cpu_features.bf16_support(True, EPYC_WITHOUT_BF16, onednn_is_enabled=True)
  assert not no_hardware.active and "avx512_bf16" in no_hardware.reason
  assert no_hardware.to_json_dict() == {
      "requested": True, "active": False, "cpu_model": "AMD EPYC", "bf16_instructions": [],
      "onednn_enabled": True, "reason": no_hardware.reason}
  # amx_tile alone (no bfloat16 arithmetic) is not enough; unknown CPU: no bfloat16.
  tiles_only = "flags\t: avx2 amx_tile\n"
  assert not cpu_features.bf16_support(True, tiles_only, True).active
  assert not cpu_features.bf16_support(True, "", True).active


def test_not_requested_is_never_active_and_never_a_fallback():
  support = cpu_features.bf16_support(False, SAPPHIRE_RAPIDS_WITH_AMX, onednn_is_enabled=True)
  assert not support.active and support.reason == ""
  assert support.bf16_instructions == ("avx512_bf16", "amx_bf16", "amx_tile")


def test_detection_warns_once_per_process(monkeypatch):
  warnings = []
  monkeypatch.setattr(cpu_features, "read_cpuinfo", lambda: EPYC_WITHOUT_BF16)
  monkeypatch.setattr(cpu_features, "onednn_enabled", lambda: True)
  monkeypatch.setattr(cpu_features, "_warned_fallback", False)
  monkeypatch.setattr(cpu_features.logging, "warning",
                      lambda message, *args: warnings.append(message % args))
  assert not cpu_features.detect_bf16_support(False).active
  assert warnings == []
  for _ in range(3):
    assert not cpu_features.detect_bf16_support(True).active
  assert len(warnings) == 1 and warnings[0].startswith("--bf16: running float32: the CPU reports")
  monkeypatch.setattr(cpu_features, "read_cpuinfo", lambda: SAPPHIRE_RAPIDS_WITH_AMX)
  assert cpu_features.detect_bf16_support(True).active


def test_reads_this_machines_cpuinfo_or_nothing(tmp_path):
  assert cpu_features.read_cpuinfo(str(tmp_path / "missing")) == ""
  path = tmp_path / "cpuinfo"
  path.write_text(SAPPHIRE_RAPIDS_WITH_AMX)
  assert cpu_features.bf16_instructions(cpu_features.read_cpuinfo(str(path)))[0] == "avx512_bf16"
