"""Sweep files: parsing, errors naming file and line, expansion into runs."""

import pytest

from bert_nlu import sweep_spec
from bert_nlu.errors import InputError

EXAMPLE = """\
# A sweep with every section.
name = study
instances = 2
metric = accuracy

[flags]
--flagfile=configs/snips.cfg
--num_train_epochs=3

[grid]
--train_batch_size=16
--train_batch_size=32
--learning_rate=1e-4
--learning_rate=2e-4
--learning_rate=3e-4

[variant plain]

[variant crf]
--slot_crf
--nolayer_norm_fix
"""


def _write(tmp_path, text, name="s.sweep"):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return str(path)


def test_a_sweep_file_is_read_into_its_parts(tmp_path):
  spec = sweep_spec.read_sweep_file(_write(tmp_path, EXAMPLE))
  assert spec.name == "study" and spec.instances == 2 and spec.metric == "accuracy"
  assert spec.flags == ("--flagfile=configs/snips.cfg", "--num_train_epochs=3")
  assert spec.grid == (sweep_spec.GridAxis("train_batch_size", ("16", "32")),
                       sweep_spec.GridAxis("learning_rate", ("1e-4", "2e-4", "3e-4")))
  assert spec.variants == (sweep_spec.Variant("plain", ()),
                           sweep_spec.Variant("crf", ("--slot_crf", "--nolayer_norm_fix")))


def test_expansion_is_variants_x_grid_x_instances_with_readable_names(tmp_path):
  spec = sweep_spec.read_sweep_file(_write(tmp_path, EXAMPLE))
  runs = sweep_spec.expand(spec)
  assert len(runs) == 2 * 2 * 3 * 2
  names = [run.name for run in runs]
  assert len(set(names)) == len(names)
  assert names[:3] == ["plain_bs16_lr1e-4_i0", "plain_bs16_lr1e-4_i1", "plain_bs16_lr2e-4_i0"]
  assert names[-1] == "crf_bs32_lr3e-4_i1"
  last = runs[-1]
  assert last.variant == "crf" and last.instance == 1
  assert last.grid_values == {"train_batch_size": "32", "learning_rate": "3e-4"}
  # Later flags win: the file's flags, then the variant's, then the grid point's.
  assert last.argv == ("--flagfile=configs/snips.cfg", "--num_train_epochs=3", "--slot_crf",
                       "--nolayer_norm_fix", "--train_batch_size=32", "--learning_rate=3e-4")


def test_without_grid_or_variants_there_is_one_point(tmp_path):
  spec = sweep_spec.read_sweep_file(_write(tmp_path, "name = one\n[flags]\n--seed=3\n"))
  runs = sweep_spec.expand(spec)
  assert [(run.name, run.argv) for run in runs] == [("i0", ("--seed=3",))]


def test_flag_lines_parse_like_absl():
  assert sweep_spec.parse_flag_line("--learning_rate=1e-4") == ("learning_rate", "1e-4")
  assert sweep_spec.parse_flag_line("--slot_crf") == ("slot_crf", None)
  assert sweep_spec.parse_flag_line("--noslot_crf") == ("slot_crf", "false")
  assert sweep_spec.parse_flag_line("--predict_input=a=b") == ("predict_input", "a=b")
  with pytest.raises(ValueError, match="not a flag"):
    sweep_spec.parse_flag_line("learning_rate=1")


@pytest.mark.parametrize("text, message", [
    ("instances = 2\n", "needs `name = NAME`"),
    ("name = runs\n", "needs `name = NAME`"),
    ("name = a b\n", "needs `name = NAME`"),
    ("name = x\ncolour = red\n", r"s.sweep:2: expected a header line"),
    ("name = x\ninstances = 0\n", "instances: must be >= 1"),
    ("name = x\ninstances = two\n", "instances: must be an integer"),
    ("name = x\n[flags]\nlearning_rate=1\n", r"s.sweep:3: not a flag"),
    ("name = x\n[grid]\n--slot_crf\n", r"s.sweep:3: a grid line needs a value"),
    ("name = x\n[grid]\n--seed=1\n--seed=1\n", r"s.sweep:4: grid value --seed=1 is listed twice"),
    ("name = x\n[flags]\n--output_dir=/tmp/x\n", r"s.sweep:3: --output_dir is set by the sweep"),
    ("name = x\n[grid]\n--intra_op_threads=1\n", r"--intra_op_threads is set by the sweep"),
    ("name = x\n[stuff]\n", r"s.sweep:2: unknown section \[stuff\]"),
    ("name = x\n[variant a]\n[variant a]\n", r"s.sweep:3: variant 'a' is defined twice"),
    ("name = x\n[variant a/b]\n", "variant name 'a/b'"),
])
def test_bad_sweep_files_are_reported_with_file_and_line(tmp_path, text, message):
  with pytest.raises(InputError, match=message):
    sweep_spec.read_sweep_file(_write(tmp_path, text))


def test_a_missing_file_is_an_input_error(tmp_path):
  with pytest.raises(InputError, match="cannot read the sweep file"):
    sweep_spec.read_sweep_file(str(tmp_path / "absent.sweep"))


def test_the_committed_example_sweeps_parse(monkeypatch):
  import glob  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  paths = sorted(glob.glob(os.path.join(repo, "configs", "sweeps", "*.sweep")))
  assert len(paths) >= 3
  expected_runs = {"mrpc_lr_batch": 3 * 5 * 3, "mrpc_batch_size": 5 * 3}
  monkeypatch.chdir(repo)  # their flagfile paths are relative to the repository
  for path in paths:
    spec = sweep_spec.read_sweep_file(path)
    assert os.path.basename(path) == spec.name + ".sweep"
    sweep_spec.check_flagfile_overrides(spec)
    if spec.name in expected_runs:
      assert len(sweep_spec.expand(spec)) == expected_runs[spec.name]


OVERRIDE_SWEEP = """\
name = floor
[flags]
{before}
--warmup_proportion=0
--learning_rate=1e-4
{after}
[variant cola]
{variant}
"""


def _override_files(tmp_path):
  base = tmp_path / "base.cfg"
  base.write_text("# shared\n--warmup_proportion=0.1\n--learning_rate=0.0001\n--slot_crf\n",
                  encoding="utf-8")
  task = tmp_path / "task.cfg"
  task.write_text(f"--flagfile={base}\n--num_train_epochs=3\n", encoding="utf-8")
  return str(task)


def test_a_flagfile_after_a_sweep_line_that_it_undoes_is_refused(tmp_path):
  task = _override_files(tmp_path)
  for where in ({"before": "", "after": f"--flagfile={task}", "variant": ""},
                {"before": "", "after": "", "variant": f"--flagfile={task}"}):
    spec = sweep_spec.read_sweep_file(_write(tmp_path, OVERRIDE_SWEEP.format(**where)))
    with pytest.raises(InputError) as raised:
      sweep_spec.check_flagfile_overrides(spec)
    message = str(raised.value)
    # Names the line without effect, the nested flagfile line that wins and the remedy; the
    # learning rate (same value, other spelling) and --slot_crf (not in the sweep) are no conflict.
    assert "--warmup_proportion=0 has no effect" in message
    assert "--warmup_proportion=0.1 (" + str(tmp_path / "base.cfg") + ":2)" in message
    assert "put the flagfile before" in message


def test_a_flagfile_first_and_lines_after_it_are_accepted(tmp_path):
  task = _override_files(tmp_path)
  spec = sweep_spec.read_sweep_file(_write(tmp_path, OVERRIDE_SWEEP.format(
      before=f"--flagfile={task}", after="", variant="--noslot_crf")))
  sweep_spec.check_flagfile_overrides(spec)


def test_a_missing_flagfile_is_named(tmp_path):
  spec = sweep_spec.read_sweep_file(_write(tmp_path, OVERRIDE_SWEEP.format(
      before="", after="", variant=f"--flagfile={tmp_path / 'absent.cfg'}")))
  with pytest.raises(InputError, match="cannot read --flagfile=.*absent.cfg"):
    sweep_spec.check_flagfile_overrides(spec)


def test_a_malformed_flagfile_line_is_named_with_its_file_and_line(tmp_path):
  bad = tmp_path / "bad.cfg"
  bad.write_text("# fine\n--learning_rate 1e-4\n", encoding="utf-8")
  spec = sweep_spec.read_sweep_file(_write(tmp_path, OVERRIDE_SWEEP.format(
      before=f"--flagfile={bad}", after="", variant="")))
  with pytest.raises(InputError, match=r"bad.cfg:2.*not a flag"):
    sweep_spec.check_flagfile_overrides(spec)
