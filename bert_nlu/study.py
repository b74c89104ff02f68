"""The research-control studies of issue #17: each one command that runs its sweeps, then reports.

  python -m bert_nlu.study --list
  python -m bert_nlu.study limited_data --runs_root=/work/runs/sweeps [--parallel=1] [--dry_run]
  python -m bert_nlu.study sequential --runs_root=/work/runs/sweeps     # stage 1, stage 2, report
  python -m bert_nlu.study layers --report_only       # the reports from the finished runs alone

A study is a list of sweep files (configs/sweeps/study_*.sweep) run in order through the sweep
engine (bert_nlu.sweep: every configuration in its content-addressed directory, finished runs
reused, so configurations the studies share, such as the plain recipe at seeds 42 and 43, train
once; a later sweep may name runs of an earlier one as @<sweep>/<run>), then its reports:
  - per sweep, bert_nlu.sweep_report: reports/<sweep>.md with its table and PNG charts, the
    collected results in bench/results/sweeps/<sweep>.json (the metric may be per intent, e.g.
    PlayMusic's dev whole-frame accuracy; --speed adds examples per second and parameters);
  - the sequential study also gets bert_nlu.forgetting_report: every stage-2 run against the
    stage-1 run it continued from, per intent (reports/<name>.md, bench/results/studies/).
A sweep that leaves runs failed or unfinished stops the study before its later sweeps and reports.
`reports/notes/<report name>.md`, when it exists, is put under the report's title: the place for
what the numbers show.
"""

import dataclasses
import glob
import os
import sys
from typing import Dict, Optional, Tuple

from absl import app, flags, logging

from bert_nlu import forgetting_report, io_utils, sweep, sweep_report, sweep_results, sweep_spec
from bert_nlu.errors import InputError

flags.DEFINE_bool("list", False, "List the studies with their sweep files and stop.")
flags.DEFINE_bool("report_only", False, "Write the reports from the finished runs (or from the "
                  "committed results JSONs when the runs are not under --runs_root); train nothing.")
flags.DEFINE_bool("prune_checkpoints", False, "After the sweeps: delete the periodic model.ckpt-* "
                  "files (only a resume reads them) of the study's finished runs, keeping "
                  "best_checkpoint/, export/ and the results (~260 MB per MiniLM run).")
for _name in ("runs_root", "parallel", "cores", "dry_run", "results_dir", "recorded_results"):
  flags.declare_key_flag(_name)

SWEEPS_DIR = os.path.join("configs", "sweeps")
REPORTS_DIR = "reports"


@dataclasses.dataclass(frozen=True)
class SweepReport:
  """bert_nlu.sweep_report options of one sweep of a study (see sweep_report.write_report).

  Attributes:
    sweep_file: the sweep reported (one of the study's).
    metric: the dev metric charted ("" = the sweep file's `metric`).
    columns: more dev metrics shown as table columns.
    speed: training / prediction examples per second and parameters, and the speed charts.
  """
  sweep_file: str
  metric: str = ""
  columns: Tuple[str, ...] = ()
  speed: bool = False


@dataclasses.dataclass(frozen=True)
class ForgettingReport:
  """bert_nlu.forgetting_report of a study: every run of `after_sweep` against its init run.

  Attributes:
    after_sweep: the sweep name whose runs continued from another sweep's (--init_checkpoint).
    name: the report's name (reports/<name>.md, bench/results/studies/<name>.json).
  """
  after_sweep: str
  name: str


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: its sweeps in the order they run, and its reports.

  Attributes:
    name: what `python -m bert_nlu.study NAME` calls it.
    question: one line on what it asks.
    sweep_files: run in this order (a later one may reference runs of an earlier one).
    reports: sweep reports written after all sweeps finished.
    forgetting: the forgetting report, if the study has one.
  """
  name: str
  question: str
  sweep_files: Tuple[str, ...]
  reports: Tuple[SweepReport, ...]
  forgetting: Optional[ForgettingReport] = None


def _sweep_file(name: str) -> str:
  return os.path.join(SWEEPS_DIR, f"study_{name}.sweep")


PLAY_MUSIC = "per_intent.PlayMusic."
OVERALL_COLUMNS = ("intent_accuracy", "slot_f1")
STUDIES: Dict[str, Study] = {study.name: study for study in (
    Study("limited_data", "PlayMusic limited to 10/100/200/500/all training sentences, with and "
          "without resampling: PlayMusic's dev whole-frame accuracy, and overall",
          (_sweep_file("limited_data"),),
          (SweepReport(_sweep_file("limited_data"), columns=(
              PLAY_MUSIC + "intent_accuracy", PLAY_MUSIC + "slot_f1", "whole_frame_accuracy")),)),
    Study("layers", "the encoder's first 2, 4 or 6 layers: accuracy against training and "
          "prediction examples per second", (_sweep_file("layers"),),
          (SweepReport(_sweep_file("layers"), columns=OVERALL_COLUMNS, speed=True),)),
    Study("frozen_layers", "heads only, top 1/2/3 layers or all trainable: accuracy and speed",
          (_sweep_file("frozen_layers"),),
          (SweepReport(_sweep_file("frozen_layers"), columns=OVERALL_COLUMNS, speed=True),)),
    Study("sequential", "fine-tuned without PlayMusic for 0/1/2/5 epochs, then on 10 PlayMusic "
          "sentences alone (all / heads + last layer / heads trainable): PlayMusic learned, the "
          "6 other intents forgotten",
          (_sweep_file("seq_stage1"), _sweep_file("seq_stage2")),
          (SweepReport(_sweep_file("seq_stage1"), columns=OVERALL_COLUMNS),
           SweepReport(_sweep_file("seq_stage2"), columns=(
               PLAY_MUSIC + "intent_accuracy", PLAY_MUSIC + "slot_f1", "whole_frame_accuracy"))),
          ForgettingReport("study_seq_stage2", "study_sequential_forgetting")),
    Study("one_intent", "PlayMusic trained alone vs with all intents: PlayMusic's dev metrics",
          (_sweep_file("one_intent"),),
          (SweepReport(_sweep_file("one_intent"), columns=(
              PLAY_MUSIC + "intent_accuracy", PLAY_MUSIC + "slot_f1")),)),
    Study("heads_losses", "per-intent slot heads, B/I + type outputs, focal loss, per-sentence "
          "slot loss and random initialisation against the plain recipe, on dev",
          (_sweep_file("heads_losses"),),
          (SweepReport(_sweep_file("heads_losses"), columns=OVERALL_COLUMNS),)),
    Study("lr_schedules", "linear, cosine and one-cycle learning-rate schedules, on dev",
          (_sweep_file("lr_schedules"),),
          (SweepReport(_sweep_file("lr_schedules"), columns=OVERALL_COLUMNS),)),
)}


def run_sweeps(study: Study, runs_root: str, parallel: int, cores: int, dry_run: bool,
               emit=print, recorded: Optional[Dict[str, sweep_results.RecordedRun]] = None
               ) -> bool:
  """Runs the study's sweeps in order (plans only, with dry_run); True when every run finished.

  A sweep with failed or unfinished runs stops the study: its later sweeps may need them.
  `recorded` (sweep_results.recorded_runs): runs finished in an earlier session whose directory
  is gone are not retrained (as `bert_nlu.sweep --recorded_results`); a later sweep cannot
  continue from one (it has no checkpoint: an error names it).
  """
  for sweep_file in study.sweep_files:
    spec = sweep_spec.read_sweep_file(sweep_file)
    planned = sweep.plan_sweep(spec, runs_root, allow_pending=dry_run, recorded=recorded)
    emit(f"sweep {spec.name} ({sweep_file}): {len(planned)} runs in "
         f"{os.path.join(runs_root, sweep.RUNS_SUBDIR)}")
    emit(sweep.describe_plan(planned))
    if dry_run:
      emit(sweep.plan_summary(planned))
      continue
    sweep.write_index(spec, planned, runs_root)
    progress = sweep.run_all(planned, parallel, sweep.thread_counts(parallel, cores), emit)
    sweep.write_index(spec, planned, runs_root)
    counts = progress.counts()
    emit(f"sweep {spec.name}: {progress.summary()}")
    if progress.incomplete():
      emit(f"study {study.name}: stopped after sweep {spec.name} ({counts[sweep.FAILED]} failed, "
           f"{counts[sweep.STOPPED]} stopped, {counts[sweep.LEFT]} not run); no reports "
           "written")
      return False
  return not dry_run


def write_reports(study: Study, runs_root: str, results_dir: str = "bench/results/sweeps",
                  reports_dir: str = REPORTS_DIR,
                  forgetting_results_dir: str = forgetting_report.RESULTS_DIR
                  ) -> Dict[str, Dict[str, str]]:
  """Writes the study's reports; returns {report name: {what: path}}.

  A sweep whose runs are not under `runs_root` (no index there) is reported from its committed
  results JSON (<results_dir>/<sweep>.json) when that exists; likewise the forgetting report
  from <forgetting_results_dir>/<name>.json.
  """
  written = {}
  for report in study.reports:
    name = sweep_spec.read_sweep_file(report.sweep_file).name
    source = report.sweep_file
    committed = os.path.join(results_dir, f"{name}.json")
    if (not os.path.exists(os.path.join(runs_root, name, sweep.INDEX_FILE))
        and os.path.exists(committed)):
      source = committed
    written[name] = sweep_report.report_sweep(
        source, os.path.join(reports_dir, name), runs_root, results_dir, report.metric,
        report.columns, report.speed)
  if study.forgetting:
    name = study.forgetting.name
    results_path = os.path.join(forgetting_results_dir, f"{name}.json")
    from_results = ""
    if (not os.path.exists(os.path.join(runs_root, study.forgetting.after_sweep,
                                        sweep.INDEX_FILE))
        and os.path.exists(results_path)):
      from_results = results_path
    written[name] = forgetting_report.report_forgetting(
        after_sweep="" if from_results else study.forgetting.after_sweep, runs_root=runs_root,
        output=os.path.join(reports_dir, name), results_path=results_path,
        from_results=from_results)
  return written


def prune_checkpoints(study: Study, runs_root: str) -> Tuple[int, int]:
  """Deletes the periodic checkpoints (<run dir>/model.ckpt-*) of the study's FINISHED runs.

  A finished run is reused, never resumed, so only its best_checkpoint/ (what a later stage
  continues from), export/ and results matter. Returns (files deleted, bytes freed).
  """
  files, freed = 0, 0
  for sweep_file in study.sweep_files:
    index_path = os.path.join(runs_root, sweep_spec.read_sweep_file(sweep_file).name,
                              sweep.INDEX_FILE)
    if not os.path.exists(index_path):
      continue
    for entry in io_utils.read_json(index_path)["runs"]:
      run_dir = os.path.normpath(os.path.join(os.path.dirname(index_path), entry["run_dir"]))
      if not os.path.exists(os.path.join(run_dir, "eval_results.json")):
        continue
      for path in glob.glob(os.path.join(glob.escape(run_dir), "model.ckpt-*")):
        freed += os.path.getsize(path)
        os.remove(path)
        files += 1
  return files, freed


def describe_studies() -> str:
  lines = []
  for study in STUDIES.values():
    lines.append(f"{study.name}: {study.question}")
    lines += [f"    {path}" for path in study.sweep_files]
  return "\n".join(lines)


def main(argv):
  options = flags.FLAGS
  if options.list:
    print(describe_studies())
    return 0
  if len(argv) != 2 or argv[1] not in STUDIES:
    raise app.UsageError(f"usage: python -m bert_nlu.study STUDY [--runs_root=DIR] "
                         f"[--parallel=N] [--cores=N] [--recorded_results=DIR] "
                         f"[--dry_run | --report_only]; STUDY is one of "
                         f"{', '.join(STUDIES)}")
  if options.parallel < 1:
    raise app.UsageError(f"--parallel must be >= 1, got {options.parallel}")
  if options.dry_run and options.report_only:
    raise app.UsageError("--dry_run and --report_only: give at most one")
  logging.set_verbosity(logging.WARNING)  # TensorBoard's event reader logs every file at INFO
  study = STUDIES[argv[1]]
  runs_root, parallel, dry_run = options.runs_root, options.parallel, options.dry_run
  cores = options.cores
  results_dir, prune = options.results_dir, options.prune_checkpoints
  try:
    if not options.report_only:
      recorded = sweep_results.recorded_runs(options.recorded_results)
      # plan_sweep re-parses the global flags: every option was read above.
      if not run_sweeps(study, runs_root, parallel, cores, dry_run, recorded=recorded):
        return 0 if dry_run else 1
    if prune:
      files, freed = prune_checkpoints(study, runs_root)
      print(f"pruned {files} checkpoint files ({freed / 2**20:.0f} MB)")
    written = write_reports(study, runs_root, results_dir)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for name, files in written.items():
    for what, path in files.items():
      print(f"{name} {what}: {path}")
  return 0


def run_main():
  app.run(main)


if __name__ == "__main__":
  run_main()
