"""Run identities: resolved like run_bert_nlu.py, stable, and changed by any flag, data or weights."""

import json
import os
import shutil

import pytest

from bert_nlu import io_utils, run_identity
from bert_nlu.errors import InputError
from bert_nlu.testing import corpus_vocabulary, make_tiny_bert


def run_hash(argv):
  return run_identity.identity_hash(run_identity.run_identity(
      run_identity.resolve_run_config(argv)))


def test_hash_is_stable_and_follows_flags_data_and_weights(tmp_path, tiny_bert_dir,
                                                           tiny_corpus_dir):
  base = [f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}"]
  reference = run_hash(base)
  assert len(reference) == run_identity.HASH_CHARS
  assert run_hash(base) == reference
  # Defaults spelled out, execution settings: the same run.
  assert run_hash(base + ["--learning_rate=1e-4", "--train_batch_size=32", "--noslot_crf",
                          "--bucket_width=8"]) == reference
  assert run_hash(base + ["--intra_op_threads=1", "--inter_op_threads=1",
                          f"--cache_dir={tmp_path}"]) == reference
  for flag in ("--learning_rate=2e-4", "--train_batch_size=8", "--seed=43", "--slot_crf",
               "--head_dropout=0.2", "--num_hidden_layers=1", "--eval_on_test",
               "--max_seq_length=32", "--num_train_epochs=3", "--bucket_width=1"):
    assert run_hash(base + [flag]) != reference, flag
  # The same data elsewhere: the same run; one changed label: another run.
  moved = shutil.copytree(tiny_corpus_dir, str(tmp_path / "moved_corpus"))
  assert run_hash([base[0], f"--data_dir={moved}"]) == reference
  label_path = os.path.join(moved, "dev", "label")
  with open(label_path, encoding="utf-8") as f:
    labels = f.read()
  with open(label_path, "w", encoding="utf-8") as f:
    f.write(labels.replace("PlayMusic", "GetWeather", 1))
  assert run_hash([base[0], f"--data_dir={moved}"]) != reference
  # The same weights elsewhere: the same run; other weights (another random init): another run.
  weights = shutil.copytree(tiny_bert_dir, str(tmp_path / "bert_copy"))
  assert run_hash([f"--bert_dir={weights}", base[1]]) == reference
  make_tiny_bert(weights, corpus_vocabulary(), seed=1)
  assert run_hash([f"--bert_dir={weights}", base[1]]) != reference


def test_identity_config_drops_defaults_paths_and_execution_keys(tiny_bert_dir, tiny_corpus_dir):
  config = run_identity.resolve_run_config(
      [f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}", "--learning_rate=3e-4",
       "--intra_op_threads=2", "--slot_crf"])
  identity = run_identity.identity_config(config.to_json_dict())
  assert identity["train.learning_rate"] == 3e-4 and identity["model.slot_crf"] is True
  for key in run_identity.EXECUTION_KEYS + run_identity.PATH_KEYS + ("train.seed",):
    assert key not in identity


def test_bad_flags_are_configuration_errors_and_flags_are_restored(tiny_bert_dir):
  from absl import flags  # pylint: disable=g-import-not-at-top
  with pytest.raises(run_identity.ConfigurationError, match="--train_batch_size must be > 0"):
    run_identity.resolve_run_config([f"--bert_dir={tiny_bert_dir}", "--train_batch_size=0"])
  with pytest.raises(run_identity.ConfigurationError, match="no_such_flag"):
    run_identity.resolve_run_config(["--no_such_flag=1"])
  assert "learning_rate" in run_identity.run_flag_names()
  assert "flagfile" in run_identity.run_flag_names()
  assert flags.FLAGS["learning_rate"].value == 1e-4  # not left at a resolved run's value


def test_finished_results_must_match_the_identity(tmp_path, tiny_bert_dir, tiny_corpus_dir):
  config = run_identity.resolve_run_config(
      [f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}"])
  identity = run_identity.run_identity(config)
  directory = str(tmp_path / "run")
  assert run_identity.finished_results(directory, identity) is None
  results = {"config": config.to_json_dict(), "splits": {}}
  io_utils.atomic_write_json(os.path.join(directory, "eval_results.json"), results)
  assert run_identity.finished_results(directory, identity) == json.loads(json.dumps(results))
  results["config"]["train"]["learning_rate"] = 5e-4
  io_utils.atomic_write_json(os.path.join(directory, "eval_results.json"), results)
  with pytest.raises(InputError, match=r"another configuration .*train.learning_rate"):
    run_identity.finished_results(directory, identity)


def test_an_init_checkpoint_directory_is_identified_by_its_best_checkpoint(tmp_path, tiny_bert_dir,
                                                                          tiny_corpus_dir):
  import dataclasses  # pylint: disable=g-import-not-at-top
  config = run_identity.resolve_run_config(
      [f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}"])
  upstream = tmp_path / "upstream_run"
  (upstream / "best_checkpoint" / "step-10").mkdir(parents=True)
  index = upstream / "best_checkpoint" / "step-10" / "model.ckpt-10.index"
  index.write_bytes(b"tensor crcs A")

  def identity():
    model = dataclasses.replace(config.model, init_checkpoint=str(upstream))
    return run_identity.run_identity(dataclasses.replace(config, model=model))

  first = identity()
  assert first["model_files"]["init_run"] is not None
  assert run_identity.identity_hash(identity()) == run_identity.identity_hash(first)
  index.write_bytes(b"tensor crcs B")  # the upstream run was retrained differently
  assert run_identity.identity_hash(identity()) != run_identity.identity_hash(first)


def test_a_resolved_init_run_directory_is_identified_by_content(tmp_path, tiny_bert_dir,
                                                                 tiny_corpus_dir):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from bert_nlu import warm_start  # pylint: disable=g-import-not-at-top
  from bert_nlu.data.labels import LabelMaps  # pylint: disable=g-import-not-at-top

  def fine_tuned_run(directory, bias):
    prefix = os.path.join(directory, "best_checkpoint", "step-3", "model.ckpt-3")
    warm_start.save_checkpoint({"bert/pooler/dense/bias": np.full(2, bias, np.float32)}, prefix)
    io_utils.atomic_write_json(os.path.join(directory, "best_checkpoint", "best_metrics.json"),
                               {"checkpoint": prefix, "step": 3})
    LabelMaps(("a",), ("O",)).save(os.path.join(directory, "label_maps.json"))

  def init_hash(directory):
    return run_hash([f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}",
                     f"--init_checkpoint={directory}"])

  fine_tuned_run(str(tmp_path / "a"), 0.0)
  fine_tuned_run(str(tmp_path / "c"), 1.0)  # other weights
  assert init_hash(str(tmp_path / "a")) == init_hash(str(tmp_path / "a"))
  assert init_hash(str(tmp_path / "a")) != init_hash(str(tmp_path / "c"))
  assert init_hash(str(tmp_path / "a")) != run_hash([f"--bert_dir={tiny_bert_dir}",
                                                      f"--data_dir={tiny_corpus_dir}"])


def test_distillation_teachers_are_identified_by_their_checkpoints_not_their_paths(tmp_path):
  teachers = []
  for name in ("a", "b"):
    (tmp_path / name / "best_checkpoint").mkdir(parents=True)
    (tmp_path / name / "best_checkpoint" / "model.ckpt-5.index").write_bytes(b"crcs " + name.encode())
    teachers.append(str(tmp_path / name))
  config = {"train": {"distill_teachers": teachers}}
  fingerprints = run_identity.identity_config(config)["train.distill_teachers"]
  assert len(fingerprints) == 2 and fingerprints[0] != fingerprints[1]
  moved = shutil.copytree(teachers[0], str(tmp_path / "moved"))
  assert run_identity.identity_config({"train": {"distill_teachers": [moved, teachers[1]]}}) == \
      run_identity.identity_config(config)
