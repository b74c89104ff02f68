"""run_bert_nlu.py's flags: aliases, validation with UsageErrors that name the flag, the config."""

import os
import sys

from absl import app, flags
from absl.testing import flagsaver
import numpy as np
import pytest

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:
  sys.path.insert(0, REPO_DIR)
import run_bert_nlu  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


@pytest.fixture
def build_config(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  """build_config(*args) -> RunConfig of `run_bert_nlu.py --bert_dir=<tiny> ... *args`."""

  def build(*args):
    with flagsaver.flagsaver():
      FLAGS.unparse_flags()
      FLAGS(["run_bert_nlu.py", f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}",
             f"--output_dir={tmp_path}/run", *args])
      return run_bert_nlu.build_run_config()

  return build


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


def test_init_checkpoint_may_name_a_fine_tuned_run(build_config, tmp_path):
  from bert_nlu import warm_start  # pylint: disable=g-import-not-at-top
  from bert_nlu.data.labels import LabelMaps  # pylint: disable=g-import-not-at-top
  run_dir = tmp_path / "earlier_run"
  (run_dir / "best_checkpoint").mkdir(parents=True)
  with pytest.raises(app.UsageError, match="--init_checkpoint: .* holds no best checkpoint"):
    build_config(f"--init_checkpoint={run_dir}")
  prefix = str(run_dir / "best_checkpoint" / "step-3" / "model.ckpt-3")
  warm_start.save_checkpoint({"bert/pooler/dense/bias": np.zeros(2, np.float32)}, prefix)
  (run_dir / "best_checkpoint" / "best_metrics.json").write_text(
      f'{{"checkpoint": "{prefix}", "step": 3}}')
  LabelMaps(("a",), ("O",)).save(str(run_dir / "label_maps.json"))
  model = build_config(f"--init_checkpoint={run_dir}").model
  assert (model.init_run_dir, model.init_checkpoint) == (str(run_dir), prefix)
  assert build_config().model.init_run_dir == ""
