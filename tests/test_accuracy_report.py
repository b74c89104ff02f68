"""The accuracy benchmark's result JSON and the experiment report read from it.

A tiny run trains end to end; bench/nlu_accuracy.py's `benchmark_result` turns its directory into
the committed result format, and bench/accuracy_report.py must read the same row (metrics, best
step, dev curve, configuration) from that JSON as from the run directory it came from, so reports
can be rebuilt from committed results after the run directories are gone.
"""

import json
import os
import sys

import pytest

from bert_nlu import checkpoints, testing, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import accuracy_report  # noqa: E402  pylint: disable=g-import-not-at-top
import nlu_accuracy  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def finished_run(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp("report_run"))
  config = testing.tiny_training_config(tiny_bert_dir, tiny_corpus_dir, output_dir,
                                        num_train_epochs=8, layer_learning_rate_decay=0.9)
  return output_dir, train.run(config)


def _result_json(output_dir, path):
  result = nlu_accuracy.benchmark_result(
      "snips", output_dir, command="run_bert_nlu.py --flagfile=tiny", code_version={"commit": "x"},
      wall_seconds=1.0, extra_flags=["--layer_learning_rate_decay=0.9"], flagfile_text="")
  with open(path, "w") as f:
    json.dump(result, f)
  return result


def test_result_json_holds_the_selected_checkpoint_and_the_dev_curve(finished_run, tmp_path):
  output_dir, results = finished_run
  result = _result_json(output_dir, str(tmp_path / "snips_try.json"))
  assert result["best_step"] == results["best_step"]
  assert result["test"]["whole_frame_accuracy"] == results["splits"]["test"][
      "whole_frame_accuracy"]
  curve = result["dev_whole_frame_accuracy_by_step"]
  assert len(curve) >= 2  # a checkpoint every 50 steps
  assert max(curve.values()) == pytest.approx(results["splits"]["dev"]["whole_frame_accuracy"])
  assert result["targets_met"]["intent_accuracy"] == (
      100 * results["splits"]["test"]["intent_accuracy"] >= 98.0)


def test_report_reads_the_same_row_from_the_json_as_from_the_run_directory(finished_run,
                                                                            tmp_path):
  output_dir, _ = finished_run
  path = str(tmp_path / "snips_try.json")
  _result_json(output_dir, path)
  from_dir = accuracy_report.read_run("tiny", "run", output_dir)
  from_json = accuracy_report.read_run("tiny", "run", path)
  for key in ("best_step", "num_train_steps", "curve", "variant"):
    assert from_json[key] == from_dir[key], key
  for split in ("dev", "test"):
    for name in accuracy_report.HEADLINE:
      assert from_json[split][name] == from_dir[split][name]
  assert from_json["variant"]["train.layer_learning_rate_decay"] == 0.9
  epochs = [epoch for epoch, _ in from_json["curve"]]
  assert epochs == sorted(epochs) and epochs[-1] == pytest.approx(8.0)


def test_report_rejects_a_json_that_is_not_a_benchmark_result(tmp_path):
  path = tmp_path / "other.json"
  path.write_text(json.dumps({"dev": {}}))
  with pytest.raises(ValueError, match="other.json.*best_step"):
    accuracy_report.read_run("tiny", "run", str(path))


def test_report_writes_table_and_chart_from_results(finished_run, tmp_path):
  output_dir, _ = finished_run
  path = str(tmp_path / "snips_try.json")
  result = _result_json(output_dir, path)
  runs = [accuracy_report.read_run("tiny", "from json", path)]
  text = accuracy_report.markdown(runs, "chart.png")
  frame = f"{100 * result['dev']['whole_frame_accuracy']:.2f}"
  assert f"| tiny | from json | {result['best_step']} / {result['num_train_steps']} | {frame} |" in text
  accuracy_report.write_chart(runs, str(tmp_path / "chart.png"), str(tmp_path / "curves.csv"))
  assert (tmp_path / "chart.png").stat().st_size > 1000
  assert len((tmp_path / "curves.csv").read_text().splitlines()) == 1 + len(runs[0]["curve"])


def test_seeds_sweep_file_trains_the_corpus_config_once_per_seed(tmp_path):
  from bert_nlu import sweep_spec  # pylint: disable=g-import-not-at-top
  path = tmp_path / "atis_seeds.sweep"
  path.write_text(nlu_accuracy.seeds_sweep_text("atis", "atis_try_seeds", [42, 43, 44],
                                                ["--encoder_dropout=0.2"]))
  spec = sweep_spec.read_sweep_file(str(path))
  requests = sweep_spec.expand(spec)
  assert spec.name == "atis_try_seeds"
  assert [r.grid_values for r in requests] == [{"seed": "42"}, {"seed": "43"}, {"seed": "44"}]
  for request in requests:
    argv = list(request.argv)
    # The config file first, the variant's flags after it, the seed last (later flags win, so
    # atis.cfg's own --seed does not apply).
    assert argv.index("--flagfile=configs/atis.cfg") < argv.index("--encoder_dropout=0.2")
    assert argv[-1] == f"--seed={request.grid_values['seed']}"
    assert "--eval_on_test" in argv


def test_seed_summary_is_the_mean_and_sample_standard_deviation():
  values = [0.90, 0.89, 0.915]
  per_seed = [{"dev": {k: v for k in nlu_accuracy.HEADLINE},
               "test": {k: v / 2 for k in nlu_accuracy.HEADLINE}} for v in values]
  summary = nlu_accuracy.mean_and_std(per_seed, "test")
  import numpy as np  # pylint: disable=g-import-not-at-top
  expected = np.array(values) / 2
  assert summary["slot_f1"]["mean"] == pytest.approx(expected.mean())
  assert summary["slot_f1"]["std"] == pytest.approx(expected.std(ddof=1))
  assert summary["whole_frame_accuracy"]["values"] == pytest.approx(list(expected))


def test_seed_summary_skips_missing_values_and_reports_none_when_all_are_missing():
  per_seed = [{"test": {"a": 0.5, "b": None}}, {"test": {"a": 0.7, "b": None}},
              {"test": {"a": None, "b": None}}]
  summary = nlu_accuracy.mean_and_std(per_seed, "test", keys=("a", "b"))
  assert summary["a"]["mean"] == pytest.approx(0.6)
  assert summary["a"]["std"] == pytest.approx(0.1414213, rel=1e-5)
  assert summary["b"] == {"mean": None, "std": None, "values": []}


def test_multi_intent_sweep_crosses_policies_and_seeds_on_the_generated_corpus(tmp_path):
  from bert_nlu import sweep_spec  # pylint: disable=g-import-not-at-top
  import multi_intent  # pylint: disable=g-import-not-at-top  (bench/)
  path = tmp_path / "multi.sweep"
  path.write_text(multi_intent.sweep_text("snips", "multi_intent_snips", "/data/gen", [42, 43],
                                          ["--num_train_epochs=2"]))
  requests = sweep_spec.expand(sweep_spec.read_sweep_file(str(path)))
  assert sorted((r.grid_values["multi_intent_policy"], r.grid_values["seed"])
                for r in requests) == [("atomic", "42"), ("atomic", "43"),
                                       ("multilabel", "42"), ("multilabel", "43")]
  for request in requests:
    argv = list(request.argv)
    assert argv[0] == "--flagfile=configs/snips.cfg" and "--data_dir=/data/gen" in argv
    assert argv.index("--flagfile=configs/snips.cfg") < argv.index("--num_train_epochs=2")
    assert "--max_seq_length=auto" in argv and "--eval_on_test" in argv


def test_the_all_corpora_sweep_trains_the_very_runs_of_the_per_corpus_sweeps(tmp_path):
  """Same flags in the same order per (corpus, seed): the same resolved configuration and hash, so
  the per-corpus sweeps reuse what the one packed sweep trained."""
  from bert_nlu import sweep_spec  # pylint: disable=g-import-not-at-top
  extra = ["--augment_slot_substitution=0.5"]
  (tmp_path / "all.sweep").write_text(nlu_accuracy.all_seeds_sweep_text(
      ["atis", "snips"], "all_try_seeds", [42, 43], extra))
  packed = sweep_spec.expand(sweep_spec.read_sweep_file(str(tmp_path / "all.sweep")))
  assert sorted((r.variant, r.grid_values["seed"]) for r in packed) == [
      ("atis", "42"), ("atis", "43"), ("snips", "42"), ("snips", "43")]
  for corpus in ("atis", "snips"):
    (tmp_path / f"{corpus}.sweep").write_text(nlu_accuracy.seeds_sweep_text(
        corpus, f"{corpus}_try_seeds", [42, 43], extra))
    alone = sweep_spec.expand(sweep_spec.read_sweep_file(str(tmp_path / f"{corpus}.sweep")))
    for request in alone:
      twin = [r for r in packed if r.variant == corpus
              and r.grid_values == request.grid_values]
      assert len(twin) == 1 and list(twin[0].argv) == list(request.argv)


def test_the_ensemble_table_sets_the_ensemble_beside_the_seeds_mean_and_best_dev_seed():
  import nlu_ensemble  # noqa: E402  pylint: disable=g-import-not-at-top
  def metrics(frame):
    return {"intent_accuracy": 0.98, "slot_f1": 0.95, "whole_frame_accuracy": frame}
  seeds_report = {
      "seeds": [42, 43], "best_dev_seed": 43,
      "dev": {k: {"mean": v} for k, v in metrics(0.90).items()},
      "test": {k: {"mean": v} for k, v in metrics(0.88).items()},
      "per_seed": [{"seed": 42, "dev": metrics(0.89), "test": metrics(0.885)},
                   {"seed": 43, "dev": metrics(0.91), "test": metrics(0.875)}]}
  ensemble = {"num_members": 2, "splits": {"dev": metrics(0.92), "test": metrics(0.895)}}
  rows = nlu_ensemble.compare_rows(ensemble, seeds_report)
  frames = {(label, split): values["whole_frame_accuracy"] for label, split, values in rows}
  assert frames == pytest.approx({
      ("mean of 2 seeds", "dev"): 90.0, ("best-dev seed (43)", "dev"): 91.0,
      ("ensemble of 2", "dev"): 92.0, ("mean of 2 seeds", "test"): 88.0,
      ("best-dev seed (43)", "test"): 87.5, ("ensemble of 2", "test"): 89.5})
  latency = {"ensemble": {"p50": 30.0}, "single_member": {"p50": 10.0}}
  text = nlu_ensemble.format_table("snips", rows, latency)
  assert "ensemble 30.0 ms, one member 10.0 ms (3.00x)" in text
  assert len(nlu_ensemble.compare_rows(ensemble, {})) == 2  # no seeds results: the ensemble only


def test_a_seeds_result_gives_a_row_per_seed_and_a_mean_line_and_an_ensemble_a_line(
    finished_run, tmp_path):
  output_dir, _ = finished_run
  single = _result_json(output_dir, str(tmp_path / "one.json"))
  per_seed = []
  for seed, shift in ((42, 0.0), (43, -0.1)):
    run = json.loads(json.dumps(single))
    run["seed"] = seed
    run["dev"]["whole_frame_accuracy"] += shift
    per_seed.append(run)
  seeds_report = {"benchmark": "nlu_accuracy_seeds", "seeds": [42, 43], "per_seed": per_seed,
                  "dev": nlu_accuracy.mean_and_std(per_seed, "dev"),
                  "test": nlu_accuracy.mean_and_std(per_seed, "test")}
  (tmp_path / "snips_seeds.json").write_text(json.dumps(seeds_report))
  rows, summary = accuracy_report.read_source("tiny", "recipe", str(tmp_path / "snips_seeds.json"))
  assert [row["label"] for row in rows] == ["recipe, seed 42", "recipe, seed 43"]
  assert rows[1]["dev"]["whole_frame_accuracy"] == pytest.approx(
      single["dev"]["whole_frame_accuracy"] - 0.1)
  assert all(row["curve"] for row in rows)
  ensemble = {"benchmark": "nlu_ensemble", "seeds": [42, 43],
              "splits": {split: {k: 0.5 for k in accuracy_report.HEADLINE}
                         for split in ("dev", "test")}}
  (tmp_path / "snips_ensemble.json").write_text(json.dumps(ensemble))
  no_rows, ensemble_line = accuracy_report.read_source("tiny", "ensemble",
                                                       str(tmp_path / "snips_ensemble.json"))
  assert no_rows == []
  text = accuracy_report.markdown(rows, "chart.png", [summary, ensemble_line])
  dev = seeds_report["dev"]["whole_frame_accuracy"]
  assert (f"| tiny | recipe | seeds 42, 43 | {100 * dev['mean']:.2f} +- {100 * dev['std']:.2f} |"
          in text)
  assert "| tiny | ensemble | ensemble of seeds 42, 43 | 50.00 | 50.00 | 50.00 | 50.00 |" in text
  assert dev["std"] == pytest.approx(0.1 / 2 ** 0.5)


def test_seeds_recorded_in_the_committed_result_are_what_the_sweep_engine_reuses(tmp_path):
  """A seed the committed seeds result records under its run hash becomes a recorded run of the
  sweep engine (not retrained); entries written before hashes were recorded are ignored."""
  from bert_nlu import sweep_results  # pylint: disable=g-import-not-at-top
  metrics = {k: 0.9 for k in nlu_accuracy.HEADLINE}
  committed = {"per_seed": [
      {"seed": 42, "run_hash": "a" * 16, "dev": metrics, "test": metrics},
      {"seed": 43, "dev": metrics, "test": metrics}]}  # an older entry: no hash
  path = tmp_path / "snips_seeds.json"
  path.write_text(json.dumps(committed))
  recorded = nlu_accuracy.recorded_seed_runs(str(path))
  assert list(recorded) == ["a" * 16] and recorded["a" * 16]["seed"] == 42
  assert nlu_accuracy.recorded_seed_runs(str(tmp_path / "absent.json")) == {}
  recorded_dir = tmp_path / "recorded"
  recorded_dir.mkdir()
  nlu_accuracy.write_recorded_results(recorded, str(recorded_dir))
  engine_view = sweep_results.recorded_runs(str(recorded_dir))
  assert set(engine_view) == {"a" * 16}
  assert engine_view["a" * 16].record["final"]["test"] == metrics
  assert nlu_accuracy.seeds_result_path("atis", "augment05").endswith(
      os.path.join("bench", "results", "attempts", "atis_augment05_seeds.json"))


def test_an_ensemble_of_a_seed_recorded_from_an_earlier_session_asks_for_its_retraining(tmp_path):
  import nlu_ensemble  # noqa: E402  pylint: disable=g-import-not-at-top
  sweep_dir = tmp_path / "snips_seeds"
  sweep_dir.mkdir()
  (sweep_dir / "index.json").write_text(json.dumps({"runs": [
      {"seed": 42, "run_dir": "../runs/" + "a" * 16, "state": "recorded"}]}))
  with pytest.raises(FileNotFoundError, match="--retrain_recorded"):
    nlu_ensemble.seed_run_dirs(str(tmp_path), "snips_seeds")


def test_a_resumed_single_run_is_evaluated_again_not_retrained_and_a_changed_one_refused(
    tiny_bert_dir, tiny_corpus_dir, tmp_path):
  # configs/snips.cfg with the tiny model and corpus: 2 short epochs, a checkpoint every 10 steps.
  tiny = [f"--bert_dir={tiny_bert_dir}", f"--data_dir={tiny_corpus_dir}", "--max_seq_length=16",
          "--num_train_epochs=2", "--train_batch_size=16", "--save_checkpoints_steps=10",
          "--save_summary_steps=5", "--learning_rate=1e-3"]
  runs_root = str(tmp_path)
  first = nlu_accuracy.run_corpus("snips", runs_root, tiny)
  run_dir = os.path.join(runs_root, "snips")
  trained_step = checkpoints.latest_step(run_dir)
  assert not first["resumed"] and trained_step == first["num_train_steps"]

  again = nlu_accuracy.run_corpus("snips", runs_root, tiny, resume=True)
  assert again["resumed"] and again["train_examples_per_second"] is None  # no step this call
  assert checkpoints.latest_step(run_dir) == trained_step  # nothing trained
  assert again["best_step"] == first["best_step"]
  assert again["dev"] == first["dev"] and again["test"] == first["test"]

  results_before = open(os.path.join(run_dir, "eval_results.json"), "rb").read()
  with pytest.raises(RuntimeError, match="training failed"):  # the manifest refuses another rate
    nlu_accuracy.run_corpus("snips", runs_root, tiny[:-1] + ["--learning_rate=2e-3"], resume=True)
  assert open(os.path.join(run_dir, "eval_results.json"), "rb").read() == results_before
  assert "learning_rate" in open(run_dir + ".log").read()  # the log says why, appended


@pytest.mark.parametrize("attempt,parallel,cores,retrain,extra_flags", [
    ("", 1, 0, False, []),
    ("distill_seeds", 2, 1, True, ["--distill_teachers=/r/a,/r/b", "--distill_alpha=0.5"]),
])
def test_the_recorded_seeds_command_parses_back_to_the_options_of_the_call(
    attempt, parallel, cores, retrain, extra_flags):
  command = nlu_accuracy.seeds_command("atis", [42, 43, 44], "/work/runs/bench", extra_flags,
                                       attempt, parallel, cores, retrain_recorded=retrain)
  words = command.split(" ")
  assert words[1] == "bench/nlu_accuracy.py"
  args = nlu_accuracy.build_parser().parse_args(words[2:])
  assert (args.corpora, args.seeds, args.runs_root) == ("atis", "42,43,44", "/work/runs/bench")
  assert (args.attempt, args.parallel, args.cores) == (attempt, parallel, cores)
  assert args.retrain_recorded == retrain
  assert args.extra_flags == extra_flags
