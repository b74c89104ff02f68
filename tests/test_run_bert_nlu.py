"""run_bert_nlu.py's flags -> RunConfig: aliases, the task flags (--task, --glue_task), validation
with UsageErrors that name the flag."""

import contextlib
import os
import sys

from absl import app, flags
from absl.testing import flagsaver
import numpy as np
import pytest

from bert_nlu import config as config_lib
from bert_nlu import testing

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:
  sys.path.insert(0, REPO_DIR)
import run_bert_nlu  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


@pytest.fixture
def build_config(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  """build_config(*args) -> RunConfig of `run_bert_nlu.py --bert_dir=<tiny> ... *args`."""

  def build(*args):
    return _run_config_of(f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}",
                          f"--output_dir={tmp_path}/run", *args)

  return build


def _run_config_of(*args):
  """The RunConfig `run_bert_nlu.py *args` resolves (flags restored afterwards)."""
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["run_bert_nlu.py", *args])
    return run_bert_nlu.build_run_config()


def test_defaults_keep_the_old_behaviour(build_config):
  config = build_config()
  assert config.model.num_hidden_layers is None
  assert config.model.train_layers_from == 0


def test_train_layers_from_up_to_the_layers_used(build_config):
  assert build_config("--layers=1", "--train_layers_from=1").model.train_layers_from == 1


@pytest.mark.parametrize("flag", ["--layers", "--num_hidden_layers"])
def test_layers_and_its_alias_set_the_same_field(build_config, flag):
  assert build_config(f"{flag}=1").model.num_hidden_layers == 1


@pytest.mark.parametrize("args, message", [
    (["--layers=0"], "--layers (alias --num_hidden_layers) must be >= 1"),
    (["--num_hidden_layers=3"], "--layers (alias --num_hidden_layers) 3 exceeds the model's 2"),
    (["--train_layers_from=-1"], "--train_layers_from must be in [0, 2]"),
    (["--layers=1", "--train_layers_from=2"], "--train_layers_from must be in [0, 1]"),
    (["--focal_gamma=-1"], "--focal_gamma must be finite and >= 0"),
    (["--focal_gamma=nan"], "--focal_gamma must be finite and >= 0"),
    (["--per_intent_slot_heads", "--multi_intent_policy=multilabel"],
     "--per_intent_slot_heads routes each utterance through ONE intent's slot layer"),
    (["--slot_head=bio_type", "--slot_crf"],
     "--slot_head=bio_type cannot be combined with --slot_crf: the CRF runs over the full BIO"),
    (["--slot_head=bio_type", "--per_intent_slot_heads"],
     "--slot_head=bio_type cannot be combined with --per_intent_slot_heads"),
    (["--slot_head=bio_type", "--distill_teachers=/"],
     "--slot_head=bio_type cannot be combined with --distill_teachers"),
    (["--adam_bias_correction", "--optimizer_implementation=bert"],
     "--adam_bias_correction needs --optimizer_implementation=fused"),
    (["--adam_epsilon=0"], "--adam_epsilon must be finite and > 0"),
    (["--constrain_slots_to_intent", "--multi_intent_policy=multilabel"],
     "--constrain_slots_to_intent cannot be combined with --multi_intent_policy=multilabel"),
    (["--constrain_slots_to_intent", "--slot_head=bio_type"],
     "--constrain_slots_to_intent cannot be combined with --slot_head=bio_type"),
    (["--constrain_slots_to_intent", "--per_intent_slot_heads"],
     "--constrain_slots_to_intent cannot be combined with --per_intent_slot_heads=True"),
    (["--adam_epsilon=-1e-8"], "--adam_epsilon must be finite and > 0"),
])
def test_bad_values_are_usage_errors_naming_the_flag(build_config, args, message):
  with pytest.raises(app.UsageError) as error:
    build_config(*args)
  assert message in str(error.value)


@pytest.mark.parametrize("args, expected", [
    ([], ()),
    (["--limit_data=PlayMusic,10"], (("PlayMusic", 10),)),
    (["--limit_data=PlayMusic,10,GetWeather,0"], (("PlayMusic", 10), ("GetWeather", 0))),
    (["--limit_data=PlayMusic 10", "--limit_data=GetWeather,0"],
     (("PlayMusic", 10), ("GetWeather", 0))),
])
def test_limit_data_pairs(build_config, args, expected):
  config = build_config(*args)
  assert config.data.limit_data == expected and config.data.resample


@pytest.mark.parametrize("args, message", [
    (["--limit_data=PlayMusic"], "--limit_data needs INTENT COUNT pairs"),
    (["--limit_data=PlayMusic,-1"], "--limit_data: COUNT of 'PlayMusic' must be an integer"),
    (["--limit_data=PlayMusic,ten"], "--limit_data: COUNT of 'PlayMusic' must be an integer"),
    (["--limit_data=PlayMusic,1,PlayMusic,2"], "--limit_data names intent 'PlayMusic' twice"),
])
def test_bad_limit_data_is_a_usage_error(build_config, args, message):
  with pytest.raises(app.UsageError, match=message):
    build_config(*args)


def test_constrain_slots_to_intent_reaches_the_config(build_config):
  assert not build_config().model.constrain_slots_to_intent
  assert build_config("--constrain_slots_to_intent", "--slot_crf").model.constrain_slots_to_intent


def test_adam_epsilon_reaches_the_config(build_config):
  assert build_config().train.adam_epsilon == 1e-6  # bert's
  assert build_config("--adam_epsilon=1e-8").train.adam_epsilon == 1e-8


def test_adam_bias_correction_reaches_the_config(build_config):
  assert not build_config().train.adam_bias_correction
  assert build_config("--adam_bias_correction").train.adam_bias_correction


def test_lr_schedule_reaches_the_config(build_config):
  assert build_config().train.lr_schedule == "linear"
  assert build_config("--lr_schedule=one_cycle").train.lr_schedule == "one_cycle"
  with pytest.raises(flags.IllegalFlagValueError):
    build_config("--lr_schedule=step")


def test_random_init_needs_no_checkpoint(build_config, tmp_path):
  assert not build_config().model.random_init
  missing = str(tmp_path / "nowhere" / "bert_model.ckpt")
  with pytest.raises(app.UsageError, match="--init_checkpoint"):
    build_config(f"--init_checkpoint={missing}")
  assert build_config(f"--init_checkpoint={missing}", "--random_init").model.random_init


def test_loss_variants_reach_the_config(build_config):
  model = build_config("--focal_gamma=2", "--slot_loss_normalization=sentence").model
  assert (model.focal_gamma, model.slot_loss_normalization) == (2.0, "sentence")
  assert (build_config().model.focal_gamma, build_config().model.slot_loss_normalization) == (
      0.0, "token")
  assert build_config("--per_intent_slot_heads").model.per_intent_slot_heads
  assert not build_config().model.per_intent_slot_heads
  assert build_config("--slot_head=bio_type").model.slot_head == "bio_type"
  assert build_config().model.slot_head == "tags"
  with pytest.raises(flags.IllegalFlagValueError):
    build_config("--slot_head=bio")


def _fake_fine_tuned_run(run_dir):
  """A run directory with a best checkpoint (one variable) and label maps; returns its prefix."""
  from bert_nlu import warm_start  # pylint: disable=g-import-not-at-top
  from bert_nlu.data.labels import LabelMaps  # pylint: disable=g-import-not-at-top
  prefix = str(run_dir / "best_checkpoint" / "step-3" / "model.ckpt-3")
  warm_start.save_checkpoint({"bert/pooler/dense/bias": np.zeros(2, np.float32)}, prefix)
  (run_dir / "best_checkpoint" / "best_metrics.json").write_text(
      f'{{"checkpoint": "{prefix}", "step": 3}}')
  LabelMaps(("a",), ("O",)).save(str(run_dir / "label_maps.json"))
  return prefix


def test_init_checkpoint_may_name_a_fine_tuned_run(build_config, tmp_path):
  run_dir = tmp_path / "earlier_run"
  (run_dir / "best_checkpoint").mkdir(parents=True)
  with pytest.raises(app.UsageError, match="--init_checkpoint: .* holds no best checkpoint"):
    build_config(f"--init_checkpoint={run_dir}")
  prefix = _fake_fine_tuned_run(run_dir)
  model = build_config(f"--init_checkpoint={run_dir}").model
  assert (model.init_run_dir, model.init_checkpoint) == (str(run_dir), prefix)
  assert build_config().model.init_run_dir == ""


def test_keep_init_labels_needs_a_fine_tuned_run_directory(build_config, tiny_bert_dir, tmp_path):
  assert not build_config().model.keep_init_labels
  checkpoint = os.path.join(tiny_bert_dir, "bert_model.ckpt")
  for args in ([], [f"--init_checkpoint={checkpoint}"]):
    with pytest.raises(app.UsageError, match="--keep_init_labels .* needs --init_checkpoint=<a "
                       "fine-tuned run directory>"):
      build_config("--keep_init_labels", *args)
  run_dir = tmp_path / "earlier_run"
  _fake_fine_tuned_run(run_dir)
  model = build_config(f"--init_checkpoint={run_dir}", "--keep_init_labels").model
  assert model.keep_init_labels and model.init_run_dir == str(run_dir)
  with pytest.raises(app.UsageError, match="--keep_init_labels .* no --random_init"):
    build_config(f"--init_checkpoint={run_dir}", "--keep_init_labels", "--random_init")


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
    (dict(task="glue", glue_task="MRPC", slot_head="bio_type"),
     "--slot_head applies to --task=nlu only"),
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


def test_glue_refuses_a_warm_start_by_label_name(tiny_bert_dir, glue_root, tmp_path,
                                                 monkeypatch):
  run_dir = tmp_path / "earlier_run"
  (run_dir / "best_checkpoint").mkdir(parents=True)
  _fake_fine_tuned_run(run_dir)
  monkeypatch.setenv(run_bert_nlu.DATA_DIR_ENV, glue_root)
  with run_flags(task="glue", glue_task="MRPC", bert_dir=tiny_bert_dir,
                 init_checkpoint=str(run_dir)):
    with pytest.raises(app.UsageError, match="--init_checkpoint: a fine-tuned run directory"):
      run_bert_nlu.build_run_config()


@pytest.fixture
def build_hub_config(plain_keras_hub_module, tiny_corpus_dir, tmp_path):
  """build_hub_config(*args, module=plain Keras module) -> RunConfig of `run_bert_nlu.py
  --hub_module=<module> ... *args`."""

  def build(*args, module=plain_keras_hub_module):
    return _run_config_of(f"--hub_module={module}", f"--data_dir={tiny_corpus_dir}",
                          f"--output_dir={tmp_path}/run", *args)

  return build


def test_hub_module_takes_vocabulary_and_casing_from_the_module(build_hub_config,
                                                                plain_keras_hub_module):
  model = build_hub_config().model
  assert model.hub_module == plain_keras_hub_module  # passed on unchanged
  assert model.vocab_file.startswith(plain_keras_hub_module)
  assert os.path.basename(model.vocab_file) == "plain_vocab.txt"
  assert model.do_lower_case and model.bert_config_file == "" and model.init_checkpoint == ""


@pytest.mark.parametrize("args, message", [
    (["--bert_dir=x"], "--bert_dir does not apply with --hub_module"),
    (["--bert_config_file=x"], "--bert_config_file does not apply with --hub_module"),
    (["--vocab_file=x"], "--vocab_file does not apply with --hub_module"),
    (["--init_checkpoint=x"], "--init_checkpoint does not apply with --hub_module"),
    (["--nodo_lower_case"], "--do_lower_case does not apply with --hub_module"),
    (["--random_init"], "--random_init does not apply with --hub_module"),
    (["--encoder_dropout=0.2"], "--encoder_dropout does not apply with --hub_module"),
    (["--train_layers_from=1"], "--train_layers_from finds encoder layers by BertModel's"),
    (["--layer_learning_rate_decay=0.8"], "--layer_learning_rate_decay finds encoder layers"),
    (["--layers=3"], "--layers (alias --num_hidden_layers) 3 exceeds the module's 2 layers"),
    (["--max_seq_length=513"], "--max_seq_length 513 exceeds 512"),
    (["--weight_average_decay=0.9"], "--weight_average_decay does not apply with --hub_module"),
])
def test_hub_module_refuses_flags_that_need_the_checkpoint_encoder(build_hub_config, args,
                                                                   message):
  with pytest.raises(app.UsageError) as error:
    build_hub_config(*args)
  assert message in str(error.value)


def test_hub_module_that_cannot_be_loaded_is_a_usage_error(build_hub_config, tmp_path):
  with pytest.raises(app.UsageError, match="--hub_module: cannot load"):
    build_hub_config(module=str(tmp_path / "missing"))


def test_hub_module_trains_on_several_replicas(build_hub_config):
  """(Trained on 2 CPU replicas in test_distribute and test_hub_module.)"""
  config = build_hub_config("--distribution=mirrored", "--devices=/cpu:0,/cpu:1")
  assert config.model.hub_module
  assert (config.train.distribution, config.train.devices) == ("mirrored", ("/cpu:0", "/cpu:1"))
  assert config.train.evaluator == "checkpoint"


def test_name_based_flags_work_with_an_exported_checkpoint(build_hub_config, tiny_hub_module):
  config = build_hub_config("--train_layers_from=1", "--layer_learning_rate_decay=0.8",
                            module=tiny_hub_module)
  assert config.model.train_layers_from == 1
  assert config.train.layer_learning_rate_decay == 0.8
  with pytest.raises(app.UsageError, match="--layer_learning_rate_decay with --layers"):
    build_hub_config("--layers=1", "--layer_learning_rate_decay=0.8", module=tiny_hub_module)
  with pytest.raises(app.UsageError, match=r"--train_layers_from must be in \[0, 1\]"):
    build_hub_config("--layers=1", "--train_layers_from=2", module=tiny_hub_module)
