"""Studies: the definitions point at real sweep files, and a tiny two-stage study runs end to end
(stage 1, stage 2 continuing from it by @<sweep>/<run>, sweep and forgetting reports)."""

import os

import numpy as np
import pytest

from bert_nlu import io_utils, study, sweep, sweep_results, sweep_spec
from bert_nlu.compat import tf

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_study_names_existing_sweep_files_and_reports_its_own_sweeps():
  assert set(study.STUDIES) == {"limited_data", "layers", "frozen_layers", "sequential",
                                "one_intent", "heads_losses", "lr_schedules"}
  for item in study.STUDIES.values():
    names = [sweep_spec.read_sweep_file(path).name for path in item.sweep_files]
    assert all(name.startswith("study_") for name in names)
    assert {report.sweep_file for report in item.reports} <= set(item.sweep_files)
  sequential = study.STUDIES["sequential"]
  assert sequential.forgetting.after_sweep == "study_seq_stage2"
  assert "configs/sweeps/study_seq_stage2.sweep" in study.describe_studies()


def _write(path, lines):
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return str(path)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, tiny_bert_dir, tiny_corpus_dir):
  """Stage 1 without PlayMusic for "0 epochs" (one step at learning rate 1e-12) and 2 epochs;
  stage 2 on 3 PlayMusic sentences alone from each, old labels kept. Runs it and its reports."""
  root = tmp_path_factory.mktemp("study")
  base = [f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}", "--max_seq_length=16",
          "--train_batch_size=16", "--eval_on_test", "--keep_checkpoint_max=1"]
  stage1 = _write(root / "stage1.sweep", [
      "name = tiny_stage1", "[flags]", *base, "--learning_rate=1e-3", "--limit_data=PlayMusic,0",
      "[variant ep0]", "--num_train_epochs=0.001", "--learning_rate=1e-12",
      "[variant ep2]", "--num_train_epochs=2"])
  stage2 = _write(root / "stage2.sweep", [
      "name = tiny_stage2", "metric = per_intent.PlayMusic.whole_frame_accuracy", "[flags]",
      *base, "--learning_rate=1e-3", "--num_train_epochs=1", "--keep_init_labels",
      "--limit_data=PlayMusic,3,BookRestaurant,0,GetWeather,0",
      "[variant from_ep0]", "--init_checkpoint=@tiny_stage1/ep0_i0",
      "[variant from_ep2]", "--init_checkpoint=@tiny_stage1/ep2_i0"])
  definition = study.Study(
      "tiny", "a tiny sequential study", (stage1, stage2),
      (study.SweepReport(stage2, columns=("whole_frame_accuracy",), speed=True),),
      study.ForgettingReport("tiny_stage2", "tiny_forgetting"))
  runs_root = str(root / "runs")
  lines = []
  dry = study.run_sweeps(definition, runs_root, parallel=2, cores=2, dry_run=True,
                         emit=lines.append)
  assert not dry and "2 runs: 2 wait for runs of other sweeps" in lines
  assert not os.path.exists(runs_root)  # a dry run writes nothing
  assert study.run_sweeps(definition, runs_root, parallel=2, cores=2, dry_run=False,
                          emit=lambda line: None)
  dirs = {name: str(root / "reports") for name in ("reports",)}
  written = study.write_reports(definition, runs_root, results_dir=str(root / "results"),
                                reports_dir=dirs["reports"],
                                forgetting_results_dir=str(root / "results"))
  return definition, runs_root, root, written


def _index(runs_root, sweep_name):
  index = io_utils.read_json(os.path.join(runs_root, sweep_name, sweep.INDEX_FILE))
  return {entry["name"]: os.path.normpath(os.path.join(runs_root, sweep_name, entry["run_dir"]))
          for entry in index["runs"]}


def test_stage_two_continues_from_each_stage_one_run(tiny_study):
  _, runs_root, _, _ = tiny_study
  first, second = _index(runs_root, "tiny_stage1"), _index(runs_root, "tiny_stage2")
  for source, name in (("ep0_i0", "from_ep0_i0"), ("ep2_i0", "from_ep2_i0")):
    results = io_utils.read_json(os.path.join(second[name], "eval_results.json"))
    assert os.path.realpath(results["warm_start"]["source_run_dir"]) == \
        os.path.realpath(first[source])
    assert results["warm_start"]["intents"]["new"] == ["PlayMusic"]
    assert results["warm_start"]["intents"]["dropped"] == []


def test_zero_epochs_is_the_pretrained_encoder(tiny_study, tiny_bert_dir):
  _, runs_root, _, _ = tiny_study
  run_dir = _index(runs_root, "tiny_stage1")["ep0_i0"]
  results = io_utils.read_json(os.path.join(run_dir, "eval_results.json"))
  assert results["training"]["num_train_steps"] == 1
  trained = tf.train.load_checkpoint(results["checkpoint"])
  pretrained = tf.train.load_checkpoint(os.path.join(tiny_bert_dir, "bert_model.ckpt"))
  for name in ("bert/embeddings/word_embeddings", "bert/encoder/layer_1/output/dense/kernel"):
    np.testing.assert_allclose(trained.get_tensor(name), pretrained.get_tensor(name), atol=1e-9)


def test_the_reports_and_a_rebuild_from_the_committed_results(tiny_study):
  definition, runs_root, root, written = tiny_study
  sweep_files = written["tiny_stage2"]
  for chart in ("configurations", "training_speed", "prediction_speed"):
    with open(sweep_files[chart], "rb") as f:
      assert f.read(8) == PNG_MAGIC
  text = open(sweep_files["md"], encoding="utf-8").read()
  assert "metric: dev `per_intent.PlayMusic.whole_frame_accuracy`" in text
  assert "| from_ep0 | 1 |" in text and "| from_ep2 | 1 |" in text
  forgetting = written["tiny_forgetting"]
  pairs = io_utils.read_json(forgetting["results"])["pairs"]
  assert [pair["before"]["label"] for pair in pairs] == ["ep0_i0", "ep2_i0"]
  with open(forgetting["png"], "rb") as f:
    assert f.read(8) == PNG_MAGIC
  forgetting_text = open(forgetting["md"], encoding="utf-8").read()
  assert "| from_ep2_i0 | dev | PlayMusic | new |" in forgetting_text
  # Without the runs (another runs root), the reports come back from the results JSONs.
  again = study.write_reports(definition, str(root / "elsewhere"),
                              results_dir=str(root / "results"),
                              reports_dir=str(root / "rebuilt"),
                              forgetting_results_dir=str(root / "results"))
  for name in ("tiny_stage2", "tiny_forgetting"):
    rebuilt = open(again[name]["md"], encoding="utf-8").read()
    assert rebuilt == open(written[name]["md"], encoding="utf-8").read().replace(
        str(root / "reports"), str(root / "rebuilt"))


def test_a_second_call_trains_nothing_and_pruning_keeps_what_matters(tiny_study):
  definition, runs_root, _, _ = tiny_study
  lines = []
  assert study.run_sweeps(definition, runs_root, parallel=1, cores=2, dry_run=False,
                          emit=lines.append)
  assert sum("2 reused" in line for line in lines if line.startswith("sweep ")) == 2
  files, freed = study.prune_checkpoints(definition, runs_root)
  assert files > 0 and freed > 0
  for run_dir in list(_index(runs_root, "tiny_stage1").values()):
    assert not [n for n in os.listdir(run_dir) if n.startswith("model.ckpt-")]
    assert os.path.isdir(os.path.join(run_dir, "best_checkpoint"))
  # The runs are still reused: stage 2's identity reads stage 1's best checkpoint.
  for sweep_file in definition.sweep_files:
    plan = sweep.plan_sweep(sweep_spec.read_sweep_file(sweep_file), runs_root)
    assert {run.state for run in plan} == {sweep.REUSED}


def test_runs_recorded_in_committed_results_are_not_retrained_by_a_study(tiny_study, tmp_path):
  """A study resumed on a new machine: stage 1's runs, recorded in a results file, are reused
  from it (no directory under the new runs root), not retrained."""
  definition, runs_root, _, _ = tiny_study
  results_dir = str(tmp_path / "results")
  collected = sweep_results.collect_sweep(os.path.join(runs_root, "tiny_stage1"))
  sweep_results.save_results(collected, os.path.join(results_dir, "tiny_stage1.json"))
  recorded = sweep_results.recorded_runs(results_dir)
  stage_one = study.Study("tiny_one", "stage 1 alone", definition.sweep_files[:1], ())
  new_root = str(tmp_path / "new_runs")
  lines = []
  assert study.run_sweeps(stage_one, new_root, parallel=1, cores=2, dry_run=False,
                          emit=lines.append, recorded=recorded)
  assert "sweep tiny_stage1: 0 done, 2 recorded, 0 left" in lines, lines
  assert not os.path.exists(os.path.join(new_root, sweep.RUNS_SUBDIR))
  # Without the results file the same study would train both runs.
  plan = sweep.plan_sweep(sweep_spec.read_sweep_file(definition.sweep_files[0]), new_root)
  assert [run.state for run in plan] == [sweep.LEFT, sweep.LEFT]
