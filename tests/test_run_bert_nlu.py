"""run_bert_nlu.py flags -> RunConfig: the task flags (--task, --glue_task) and their checks."""

import contextlib
import os
import sys

import pytest
from absl import app, flags

from bert_nlu import config as config_lib
from bert_nlu import testing

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:
  sys.path.insert(0, REPO_DIR)
import run_bert_nlu  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


@contextlib.contextmanager
def run_flags(**values):
  """Sets run_bert_nlu.py flags for one build_run_config call; restores the defaults after."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  try:
    for name, value in values.items():
      setattr(flags.FLAGS, name, value)
    yield
  finally:
    for flag in flags.FLAGS.get_flags_for_module(run_bert_nlu.__name__):
      flag.unparse()


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory):
  """A data root holding glue/MRPC and glue/SNLI."""
  root = tmp_path_factory.mktemp("data")
  testing.make_glue_corpus(str(root / "glue" / "MRPC"), "MRPC", sizes=(("train", 4), ("dev", 2)))
  testing.make_glue_corpus(str(root / "glue" / "SNLI"), "SNLI",
                           sizes=(("train", 4), ("dev", 2), ("test", 2)))
  return str(root)


def test_glue_task_in_any_case_and_default_data_dir(tiny_bert_dir, glue_root, monkeypatch):
  monkeypatch.setenv(run_bert_nlu.DATA_DIR_ENV, glue_root)
  with run_flags(task="glue", glue_task="mrpc", bert_dir=tiny_bert_dir):
    run_config = run_bert_nlu.build_run_config()
  assert run_config.data.task == config_lib.GLUE_TASK
  assert run_config.data.glue_task == "MRPC"
  assert run_config.data.data_dir == os.path.join(glue_root, "glue", "MRPC")
  with run_flags(bert_dir=tiny_bert_dir, data_dir=glue_root):  # the NLU default is unchanged
    nlu_config = run_bert_nlu.build_run_config()
  assert (nlu_config.data.task, nlu_config.data.glue_task) == ("nlu", "")


@pytest.mark.parametrize("settings,message", [
    (dict(task="glue"), "--task=glue needs --glue_task"),
    (dict(task="glue", glue_task="STSB"), "--glue_task: unknown GLUE task 'STSB'"),
    (dict(glue_task="MRPC"), "--glue_task needs --task=glue"),
    (dict(task="glue", glue_task="MRPC", slot_crf=True), "--slot_crf applies to --task=nlu only"),
    (dict(task="glue", glue_task="MRPC", augment_slot_substitution=0.5),
     "--augment_slot_substitution applies to --task=nlu only"),
    (dict(task="glue", glue_task="MRPC", distill_teachers=["/"]),
     "--distill_teachers applies to --task=nlu only"),
    (dict(task="glue", glue_task="MRPC", corpus="atis"), "--corpus names an NLU corpus"),
    (dict(task="glue", glue_task="MRPC", eval_on_test=True),
     "--eval_on_test: GLUE keeps the MRPC test labels private"),
    (dict(task="glue", glue_task="RTE"), r"--glue_task: .*glue.RTE is not a directory"),
])
def test_glue_flag_errors_name_the_flag(settings, message, tiny_bert_dir, glue_root,
                                        monkeypatch):
  monkeypatch.setenv(run_bert_nlu.DATA_DIR_ENV, glue_root)
  with run_flags(bert_dir=tiny_bert_dir, **settings):
    with pytest.raises(app.UsageError, match=message):
      run_bert_nlu.build_run_config()


def test_snli_test_split_is_labelled_so_eval_on_test_is_allowed(tiny_bert_dir, glue_root,
                                                                monkeypatch):
  monkeypatch.setenv(run_bert_nlu.DATA_DIR_ENV, glue_root)
  with run_flags(task="glue", glue_task="snli", eval_on_test=True, bert_dir=tiny_bert_dir):
    run_config = run_bert_nlu.build_run_config()
  assert run_config.eval_on_test and run_config.data.glue_task == "SNLI"


def test_replicated_training_is_evaluated_by_the_checkpoint_evaluator(tiny_bert_dir, glue_root,
                                                                      monkeypatch):
  monkeypatch.setenv(run_bert_nlu.DATA_DIR_ENV, glue_root)
  common = dict(task="glue", glue_task="MRPC", bert_dir=tiny_bert_dir)
  with run_flags(**common):
    assert run_bert_nlu.build_run_config().train.evaluator == "in_process"  # the default
  with run_flags(distribution="mirrored", devices=["/cpu:0", "/cpu:1"], **common):
    run_config = run_bert_nlu.build_run_config()
  assert (run_config.train.distribution, run_config.train.evaluator) == ("mirrored",
                                                                         "checkpoint")
  with run_flags(distribution="mirrored", devices=["/cpu:0", "/cpu:1"], evaluator="in_process",
                 **common):
    with pytest.raises(app.UsageError, match="--evaluator=in_process cannot evaluate "
                                             "--distribution=mirrored"):
      run_bert_nlu.build_run_config()
  with run_flags(distribution="mirrored", devices=["/cpu:0", "/cpu:1"], eval_every_steps=7,
                 **common):
    with pytest.raises(app.UsageError, match="--eval_every_steps=7 needs"):
      run_bert_nlu.build_run_config()
