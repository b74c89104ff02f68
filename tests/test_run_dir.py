"""Run-directory protection: the run manifest (new / resumed / overwritten) and the run lock."""

import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from bert_nlu import config as config_lib
from bert_nlu import run_dir

# Above the largest possible Linux pid_max (2**22): os.kill() reports it as not existing.
DEAD_PID = 2**22 + 1
LABEL_MAPS = {"intents": ["BookRestaurant", "GetWeather", "PlayMusic"],
              "slot_tags": ["O", "B-artist", "B-city", "I-artist"]}
BERT_CONFIG = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
               "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu"}
DATA_FINGERPRINT = {"train": "1" * 64, "dev": "2" * 64}
MODEL_FILES = {"vocab_file": "a" * 64, "init_checkpoint": "b" * 64}


def make_run_config(output_dir, data=None, model=None, **train_fields):
  return config_lib.RunConfig(
      output_dir=output_dir,
      data=data or config_lib.DataConfig(data_dir="/data/snips", max_seq_length=64),
      model=model or config_lib.ModelConfig(bert_config_file="/bert/bert_config.json",
                                            vocab_file="/bert/vocab.txt",
                                            init_checkpoint="/bert/bert_model.ckpt"),
      train=config_lib.TrainConfig(**dict(dict(num_train_epochs=3.0), **train_fields)))


def make_manifest(config, label_maps=None, data_fingerprint=None, model_files=None):
  return run_dir.build_manifest(
      config.to_json_dict(), dict(data_fingerprint or DATA_FINGERPRINT),
      label_maps or LABEL_MAPS, run_dir.model_shape_from_bert_config(BERT_CONFIG),
      model_files=model_files or MODEL_FILES)


def read_manifest_file(output_dir):
  with open(os.path.join(output_dir, run_dir.MANIFEST_FILE), encoding="utf-8") as f:
    return json.load(f)


def touch(path, text=""):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def write_lock(output_dir, **record):
  touch(os.path.join(output_dir, run_dir.LOCK_FILE), json.dumps(record))


@pytest.fixture
def output_dir(tmp_path):
  return str(tmp_path / "run")


# ---------------------------------------------------------------------------------------------
# The manifest.


def test_build_manifest_records_everything_in_json_form(output_dir):
  config = make_run_config(output_dir)
  config = dataclasses.replace(config, profile=config_lib.ProfileConfig(steps=(5, 7)))
  manifest = make_manifest(config)
  assert set(manifest) == {"config", "data_fingerprint", "model_files", "label_maps",
                           "model_shape", "code_version", "created", "updated", "history"}
  assert manifest["config"]["profile"]["steps"] == [5, 7]  # as it reads back from disk
  assert manifest["model_shape"] == {
      "layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab_size": 30522,
      "hidden_act": "gelu", "num_hidden_layers_used": 12}
  assert manifest["code_version"]["package"] == run_dir.bert_nlu.__version__
  commit = manifest["code_version"]["git_commit"]
  assert commit is None or len(commit) == 40


def test_new_then_resumed_with_the_same_configuration(output_dir):
  manifest = make_manifest(make_run_config(output_dir))
  assert run_dir.check_or_record_manifest(output_dir, manifest, overwrite=False) == "new"
  recorded = read_manifest_file(output_dir)
  assert recorded["config"] == manifest["config"]
  assert run_dir.check_or_record_manifest(output_dir, manifest, overwrite=False) == "resumed"
  resumed = read_manifest_file(output_dir)
  assert resumed["created"] == recorded["created"]
  assert resumed["history"] == []


def test_compatible_change_resumes_and_is_recorded_in_history(output_dir):
  first = make_manifest(make_run_config(output_dir, num_train_epochs=3.0))
  run_dir.check_or_record_manifest(output_dir, first, overwrite=False)
  more_epochs = make_manifest(make_run_config(output_dir, num_train_epochs=5.0,
                                              save_checkpoints_steps=500))
  assert run_dir.check_or_record_manifest(output_dir, more_epochs, overwrite=False) == "resumed"
  recorded = read_manifest_file(output_dir)
  assert recorded["config"]["train"]["num_train_epochs"] == 5.0
  [entry] = recorded["history"]
  assert entry["changes"] == {
      "config.train.num_train_epochs": {"recorded": 3.0, "requested": 5.0},
      "config.train.save_checkpoints_steps": {"recorded": 1000, "requested": 500}}
  assert entry["config"]["train"]["num_train_epochs"] == 3.0


@pytest.mark.parametrize("requested, compatible", [(None, True), (0.2, False)])
def test_a_setting_added_later_is_compatible_only_at_its_default(output_dir, requested,
                                                                 compatible):
  old = make_manifest(make_run_config(output_dir))
  del old["config"]["model"]["encoder_dropout"]  # recorded by code without the setting
  run_dir.check_or_record_manifest(output_dir, old, overwrite=False)
  model = dataclasses.replace(make_run_config(output_dir).model, encoder_dropout=requested)
  new = make_manifest(make_run_config(output_dir, model=model))
  if compatible:
    assert run_dir.check_or_record_manifest(output_dir, new, overwrite=False) == "resumed"
  else:
    with pytest.raises(run_dir.IncompatibleRunError, match="encoder_dropout: <absent> -> 0.2"):
      run_dir.check_or_record_manifest(output_dir, new, overwrite=False)


def test_incompatible_changes_are_all_listed_and_nothing_is_recorded(output_dir):
  run_dir.check_or_record_manifest(output_dir, make_manifest(make_run_config(output_dir)),
                                   overwrite=False)
  before = read_manifest_file(output_dir)
  longer = config_lib.DataConfig(data_dir="/data/snips", max_seq_length=128)
  more_labels = dict(LABEL_MAPS, intents=LABEL_MAPS["intents"] + ["RateBook"])
  changed = make_manifest(make_run_config(output_dir, data=longer, num_train_epochs=5.0),
                          label_maps=more_labels)
  with pytest.raises(run_dir.IncompatibleRunError) as raised:
    run_dir.check_or_record_manifest(output_dir, changed, overwrite=False)
  error = raised.value
  assert isinstance(error, run_dir.InputError)
  assert [d.key for d in error.differences] == ["config.data.max_seq_length",
                                                "label_maps.intents"]
  assert [d.key for d in error.compatible_differences] == ["config.train.num_train_epochs"]
  message = str(error)
  assert "config.data.max_seq_length: 64 -> 128" in message
  assert "label_maps.intents: " in message and "RateBook" in message
  assert "--overwrite_output_dir" in message
  assert read_manifest_file(output_dir) == before


@pytest.mark.parametrize("train_fields", [dict(train_batch_size=16), dict(learning_rate=5e-5),
                                          dict(warmup_proportion=0.2), dict(seed=1)])
def test_schedule_and_seed_changes_are_incompatible(output_dir, train_fields):
  run_dir.check_or_record_manifest(output_dir, make_manifest(make_run_config(output_dir)),
                                   overwrite=False)
  changed = make_manifest(make_run_config(output_dir, **train_fields))
  with pytest.raises(run_dir.IncompatibleRunError) as raised:
    run_dir.check_or_record_manifest(output_dir, changed, overwrite=False)
  assert [d.key for d in raised.value.differences] == [f"config.train.{next(iter(train_fields))}"]


def test_paths_may_move_but_file_contents_may_not(tmp_path, output_dir):
  bert_dir, moved_dir = tmp_path / "bert", tmp_path / "moved"
  touch(str(bert_dir / "vocab.txt"), "[PAD]\n[UNK]\nhello\n")
  touch(str(bert_dir / "bert_model.ckpt.index"), "index bytes")
  shutil.copytree(bert_dir, moved_dir)

  def manifest_for(directory, data_dir):
    model = config_lib.ModelConfig(bert_config_file=str(directory / "bert_config.json"),
                                   vocab_file=str(directory / "vocab.txt"),
                                   init_checkpoint=str(directory / "bert_model.ckpt"))
    data = config_lib.DataConfig(data_dir=data_dir)
    config = make_run_config(output_dir, data=data, model=model).to_json_dict()
    return run_dir.build_manifest(config, DATA_FINGERPRINT, LABEL_MAPS,
                                  run_dir.model_shape_from_bert_config(BERT_CONFIG))

  assert manifest_for(bert_dir, "/data/a")["model_files"]["vocab_file"] is not None
  run_dir.check_or_record_manifest(output_dir, manifest_for(bert_dir, "/data/a"), overwrite=False)
  assert run_dir.check_or_record_manifest(output_dir, manifest_for(moved_dir, "/data/b"),
                                          overwrite=False) == "resumed"
  touch(str(moved_dir / "vocab.txt"), "[PAD]\n[UNK]\nworld\n")
  with pytest.raises(run_dir.IncompatibleRunError) as raised:
    run_dir.check_or_record_manifest(output_dir, manifest_for(moved_dir, "/data/b"),
                                     overwrite=False)
  assert [d.key for d in raised.value.differences] == ["model_files.vocab_file"]


def test_a_split_read_by_one_run_only_is_no_difference(output_dir):
  run_dir.check_or_record_manifest(output_dir, make_manifest(make_run_config(output_dir)),
                                   overwrite=False)
  with_test = dict(DATA_FINGERPRINT, test="3" * 64)
  config = make_run_config(output_dir)
  assert run_dir.check_or_record_manifest(
      output_dir, make_manifest(config, data_fingerprint=with_test), overwrite=False) == "resumed"
  assert run_dir.check_or_record_manifest(output_dir, make_manifest(config),
                                          overwrite=False) == "resumed"
  assert read_manifest_file(output_dir)["data_fingerprint"] == with_test  # kept once seen
  changed_test = dict(DATA_FINGERPRINT, test="4" * 64)
  with pytest.raises(run_dir.IncompatibleRunError, match=r"data_fingerprint\.test: 333333333333"):
    run_dir.check_or_record_manifest(
        output_dir, make_manifest(config, data_fingerprint=changed_test), overwrite=False)


def test_every_config_key_is_classified_explicitly_and_unknown_keys_are_incompatible(output_dir):
  manifest = make_manifest(make_run_config(output_dir))
  for key in run_dir.flatten({k: v for k, v in manifest.items()
                              if k not in ("created", "updated", "history")}):
    covered = [p for p in run_dir.INCOMPATIBLE_KEYS + run_dir.COMPATIBLE_KEYS
               if key == p or key.startswith(p + ".")]
    assert len(covered) == 1, f"{key} is classified {len(covered)} times; add it to one tuple"
  assert not set(run_dir.INCOMPATIBLE_KEYS) & set(run_dir.COMPATIBLE_KEYS)
  assert not run_dir.is_compatible_key("config.train.some_future_knob")
  assert run_dir.is_compatible_key("config.profile.steps")


def test_overwrite_clears_the_run_but_keeps_the_lock(output_dir):
  run_dir.check_or_record_manifest(output_dir, make_manifest(make_run_config(output_dir)),
                                   overwrite=False)
  touch(os.path.join(output_dir, "checkpoint"))
  touch(os.path.join(output_dir, "best_checkpoint", "step-5", "model.ckpt-5.index"))
  longer = config_lib.DataConfig(data_dir="/data/snips", max_seq_length=128)
  changed = make_manifest(make_run_config(output_dir, data=longer))
  with run_dir.RunDirectoryLock(output_dir) as lock:
    assert run_dir.check_or_record_manifest(output_dir, changed, overwrite=True) == "overwritten"
    assert sorted(os.listdir(output_dir)) == [run_dir.LOCK_FILE, run_dir.MANIFEST_FILE]
    assert os.path.exists(lock.lock_path)
  recorded = read_manifest_file(output_dir)
  assert recorded["config"]["data"]["max_seq_length"] == 128 and recorded["history"] == []


def test_overwrite_of_a_missing_or_empty_directory_is_new(output_dir):
  manifest = make_manifest(make_run_config(output_dir))
  assert run_dir.check_or_record_manifest(output_dir, manifest, overwrite=True) == "new"


@pytest.fixture
def no_deleting(monkeypatch):
  def refuse(directory):
    raise AssertionError(f"would have deleted the contents of {directory}")
  monkeypatch.setattr(run_dir, "_remove_contents", refuse)


@pytest.mark.parametrize("directory, reason", [("/", "is the filesystem root"),
                                                (run_dir._REPO_DIR, "is the bert-nlu repository")])
def test_overwrite_refuses_root_and_repository(no_deleting, directory, reason):
  manifest = make_manifest(make_run_config(directory))
  with pytest.raises(run_dir.UnsafeOverwriteError, match=reason):
    run_dir.check_or_record_manifest(directory, manifest, overwrite=True)


def test_overwrite_refuses_home_and_its_ancestors(no_deleting, tmp_path, monkeypatch):
  home = tmp_path / "home" / "me"
  touch(str(home / "checkpoint"))  # even with run markers
  monkeypatch.setenv("HOME", str(home))
  for directory, reason in ((home, "is the home directory"),
                            (tmp_path / "home", "contains the home directory")):
    with pytest.raises(run_dir.UnsafeOverwriteError, match=reason):
      run_dir.check_safe_to_clear(str(directory))


def test_overwrite_refuses_the_working_directory_and_directories_without_run_markers(
    no_deleting, tmp_path, monkeypatch):
  run = tmp_path / "run"
  touch(str(run / "checkpoint"))
  monkeypatch.chdir(run)
  with pytest.raises(run_dir.UnsafeOverwriteError, match="is the current working directory"):
    run_dir.check_safe_to_clear(".")
  papers = tmp_path / "papers"
  touch(str(papers / "thesis.tex"))
  manifest = make_manifest(make_run_config(str(papers)))
  with pytest.raises(run_dir.UnsafeOverwriteError, match="not a run directory"):
    run_dir.check_or_record_manifest(str(papers), manifest, overwrite=True)
  assert os.listdir(papers) == ["thesis.tex"]


def test_run_directory_made_before_manifests_is_checked_against_its_files(output_dir):
  old_config = make_run_config(output_dir).to_json_dict()
  old_config["train"].pop("early_stopping_evals")  # a field older code did not have
  touch(os.path.join(output_dir, "run_config.json"), json.dumps(old_config))
  touch(os.path.join(output_dir, "label_maps.json"), json.dumps(LABEL_MAPS))
  touch(os.path.join(output_dir, "checkpoint"))
  more_epochs = make_manifest(make_run_config(output_dir, num_train_epochs=5.0))
  assert run_dir.check_or_record_manifest(output_dir, more_epochs, overwrite=False) == "resumed"
  [entry] = read_manifest_file(output_dir)["history"]
  assert list(entry["changes"]) == ["config.train.num_train_epochs"] and "note" in entry

  os.remove(os.path.join(output_dir, run_dir.MANIFEST_FILE))
  with pytest.raises(run_dir.IncompatibleRunError, match="config.train.seed: 42 -> 1"):
    run_dir.check_or_record_manifest(output_dir, make_manifest(make_run_config(output_dir, seed=1)),
                                     overwrite=False)


def test_unreadable_manifest_is_an_error_not_a_new_run(output_dir):
  touch(os.path.join(output_dir, run_dir.MANIFEST_FILE), "{not json")
  with pytest.raises(run_dir.RunDirectoryError, match="--overwrite_output_dir"):
    run_dir.check_or_record_manifest(output_dir, make_manifest(make_run_config(output_dir)),
                                     overwrite=False)


def test_long_lists_are_summarised_by_what_changed():
  old = [f"B-slot{i}" for i in range(40)]
  assert run_dir.describe_change(old, old[1:] + ["B-new"]) == (
      '40 items -> 40 items (+"B-new", -"B-slot0")')
  assert run_dir.describe_change(old, old[::-1]) == "the same 40 items in another order"
  assert run_dir.describe_change(64, 128) == "64 -> 128"


# ---------------------------------------------------------------------------------------------
# The lock.


def read_lock(output_dir):
  with open(os.path.join(output_dir, run_dir.LOCK_FILE), encoding="utf-8") as f:
    return json.load(f)


def test_lock_records_its_holder_and_is_released(output_dir):
  with run_dir.RunDirectoryLock(output_dir) as lock:
    record = read_lock(output_dir)
    assert record["pid"] == os.getpid() and record["hostname"] == socket.gethostname()
    assert record["argv"] == sys.argv and record["started"]
  assert not os.path.exists(lock.lock_path)


def test_lock_is_released_on_exception(output_dir):
  with pytest.raises(KeyError):
    with run_dir.RunDirectoryLock(output_dir):
      raise KeyError("boom")
  assert not os.path.exists(os.path.join(output_dir, run_dir.LOCK_FILE))


def test_lock_taken_by_someone_else_is_not_removed(output_dir):
  with run_dir.RunDirectoryLock(output_dir):
    write_lock(output_dir, pid=12345, hostname="elsewhere")
  assert read_lock(output_dir)["pid"] == 12345


def test_second_lock_in_a_live_process_is_refused(output_dir):
  with run_dir.RunDirectoryLock(output_dir):
    with pytest.raises(run_dir.RunDirectoryInUseError, match=f"live pid {os.getpid()}"):
      with run_dir.RunDirectoryLock(output_dir):
        pass
    assert read_lock(output_dir)["pid"] == os.getpid()


@pytest.fixture
def sleeper():
  process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
  yield process
  process.kill()
  process.wait()


def test_lock_of_a_live_process_is_refused_and_taken_over_once_it_died(output_dir, sleeper,
                                                                       caplog):
  status = run_dir._linux_process_status(sleeper.pid)
  write_lock(output_dir, pid=sleeper.pid, hostname=socket.gethostname(), started="earlier",
             argv=["run_bert_nlu.py"], pid_start_ticks=status[1] if status else None)
  lock_path = os.path.join(output_dir, run_dir.LOCK_FILE)
  with pytest.raises(run_dir.RunDirectoryInUseError) as raised:
    with run_dir.RunDirectoryLock(output_dir):
      pass
  assert f"pid {sleeper.pid}" in str(raised.value) and lock_path in str(raised.value)
  assert read_lock(output_dir)["pid"] == sleeper.pid

  sleeper.send_signal(signal.SIGKILL)
  sleeper.wait()
  with run_dir.RunDirectoryLock(output_dir):
    assert read_lock(output_dir)["pid"] == os.getpid()
  assert f"taking over stale lock of dead pid {sleeper.pid}" in caplog.text


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_lock_whose_pid_was_reused_is_stale(output_dir, sleeper):
  _, start_ticks = run_dir._linux_process_status(sleeper.pid)
  write_lock(output_dir, pid=sleeper.pid, hostname=socket.gethostname(), started="before reboot",
             argv=["run_bert_nlu.py"], pid_start_ticks=start_ticks - 1)
  with run_dir.RunDirectoryLock(output_dir):
    assert read_lock(output_dir)["pid"] == os.getpid()


def test_lock_held_on_another_host_is_refused(output_dir):
  write_lock(output_dir, pid=DEAD_PID, hostname="gpu-box-7", started="now", argv=["x"])
  with pytest.raises(run_dir.RunDirectoryInUseError, match="on host 'gpu-box-7'"):
    with run_dir.RunDirectoryLock(output_dir):
      pass


@pytest.mark.parametrize("garbage", ["", '{"pid": 12', "[1, 2]", '{"pid": -1, "hostname": "h"}',
                                     "\x00\x00\x00"])
def test_corrupt_lock_is_taken_over(output_dir, garbage, caplog):
  touch(os.path.join(output_dir, run_dir.LOCK_FILE), garbage)
  with run_dir.RunDirectoryLock(output_dir):
    assert read_lock(output_dir)["pid"] == os.getpid()
  assert "holds no lock record" in caplog.text


def test_takeover_backs_off_when_the_stale_lock_changed_meanwhile(output_dir):
  write_lock(output_dir, pid=os.getpid(), hostname=socket.gethostname())  # a fresh live lock
  lock_path = os.path.join(output_dir, run_dir.LOCK_FILE)
  before = open(lock_path, encoding="utf-8").read()
  stale_text = json.dumps({"pid": DEAD_PID, "hostname": socket.gethostname()})
  assert not run_dir._take_over(lock_path, stale_text, json.loads(stale_text), "ours\n")
  assert open(lock_path, encoding="utf-8").read() == before


def _race_for_stale_lock(output_dir, racer, rounds, barrier, results):
  """One racer: each round, racer 0 plants a stale lock, then all race for it."""
  for round_index in range(rounds):
    if racer == 0:
      write_lock(output_dir, pid=DEAD_PID, hostname=socket.gethostname(), started="long ago",
                 argv=["crashed"])
    barrier.wait()
    try:
      with run_dir.RunDirectoryLock(output_dir):
        barrier.wait()  # hold the lock until every racer has tried
        results.put((round_index, "won"))
    except run_dir.RunDirectoryInUseError:
      barrier.wait()
      results.put((round_index, "refused"))
    barrier.wait()  # the winner released before the next stale lock is planted


def test_racers_for_a_stale_lock_exactly_one_wins(output_dir):
  os.makedirs(output_dir)
  racers, rounds = 3, 3
  context = multiprocessing.get_context("spawn")  # no fork of a process that may hold TF threads
  barrier = context.Barrier(racers, timeout=60)
  results = context.Queue()
  processes = [context.Process(target=_race_for_stale_lock,
                               args=(output_dir, racer, rounds, barrier, results))
               for racer in range(racers)]
  for process in processes:
    process.start()
  outcomes = [results.get(timeout=120) for _ in range(racers * rounds)]
  for process in processes:
    process.join(timeout=60)
    assert process.exitcode == 0
  for round_index in range(rounds):
    round_outcomes = sorted(o for r, o in outcomes if r == round_index)
    assert round_outcomes == ["refused"] * (racers - 1) + ["won"]
  assert not os.path.exists(os.path.join(output_dir, run_dir.LOCK_FILE))
