#!/usr/bin/env python
"""Fuzzes every input-handling target with a large budget and counts what happens.

  python bench/fuzz.py [--examples=2000] [--targets=read_seq_split,flags,...] [--seed=0]
                       [--export_examples=N]

The targets and their hypothesis strategies are those of tests/test_fuzz.py (read_seq_split,
read_seq_corpus, read_snips_json_split, alignment, tags_to_spans, read_utterances,
predict_random_model, predict_export, flags). Unlike the tests, nothing fails fast: every case's
outcome is recorded as

  results                  a well-formed result;
  controlled_errors        the project's own error (InputError naming file and line, ValueError
                           for invalid arguments of a pure function, UsageError or absl's
                           flags.Error for flags);
  uncontrolled_exceptions  any other exception (IndexError, UnicodeError, RecursionError, ...);
  property_violations      a result that breaks the target's contract (a span whose text is not
                           text[start:end], a wrong truncated_words, ...).

Hypothesis only generates (no shrinking, no example database), so each counted case is a fresh
one. predict_export trains the conftest tiny BERT for a few steps first (about a minute).

Writes bench/results/fuzz.json ({target: {cases, results, controlled_errors,
uncontrolled_exceptions, property_violations, exception_types, examples_of_failures, seconds}},
plus "git", "date" and "settings") and prints a table. Exits with 1 if any case was uncontrolled
or violated a property.
"""

import argparse
import collections
import datetime
import json
import logging
import os
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

import hypothesis  # noqa: E402  pylint: disable=g-import-not-at-top

import conftest  # noqa: E402  pylint: disable=g-import-not-at-top
import test_fuzz  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

RESULTS_PATH = os.path.join(REPO, "bench", "results", "fuzz.json")
MAX_FAILURE_EXAMPLES = 5
_EXCERPT_CHARS = 600


def _excerpt(value) -> str:
  text = repr(value)
  return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."


def run_target(name: str, ctx, examples: int, seed: int) -> dict:
  """Runs one target on `examples` generated cases; returns its outcome counts."""
  check, strategy_factory, _ = test_fuzz.TARGETS[name]
  stats = {"cases": 0, "results": 0, "controlled_errors": 0, "uncontrolled_exceptions": 0,
           "property_violations": 0}
  exception_types = collections.Counter()
  failures = []

  def record(kind, error, case):
    stats[kind] += 1
    error_type = type(error).__name__
    exception_types[error_type] += 1
    if len(failures) < MAX_FAILURE_EXAMPLES:
      frame = traceback.extract_tb(error.__traceback__)[-1]
      failures.append({"kind": kind, "exception": error_type, "message": str(error)[:300],
                       "where": f"{os.path.relpath(frame.filename, REPO)}:{frame.lineno}",
                       "case": _excerpt(case)})

  @hypothesis.seed(seed)
  @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                       phases=[hypothesis.Phase.generate],
                       suppress_health_check=list(hypothesis.HealthCheck))
  @hypothesis.given(strategy_factory(ctx))
  def run(case):
    stats["cases"] += 1
    try:
      outcome = check(ctx, case)
    except test_fuzz.PropertyViolation as error:
      record("property_violations", error, case)
    except Exception as error:  # pylint: disable=broad-except
      record("uncontrolled_exceptions", error, case)
    else:
      stats["results" if outcome == test_fuzz.RESULT else "controlled_errors"] += 1

  start = time.time()
  run()
  stats["seconds"] = round(time.time() - start, 1)
  stats["exception_types"] = dict(exception_types)
  stats["examples_of_failures"] = failures
  return stats


def print_table(report: dict, names) -> None:
  header = (f"{'target':<24}{'cases':>7}{'results':>9}{'controlled':>12}{'uncontrolled':>14}"
            f"{'violations':>12}{'seconds':>9}")
  print(header)
  print("-" * len(header))
  for name in names:
    row = report[name]
    print(f"{name:<24}{row['cases']:>7}{row['results']:>9}{row['controlled_errors']:>12}"
          f"{row['uncontrolled_exceptions']:>14}{row['property_violations']:>12}"
          f"{row['seconds']:>9}")
    for failure in row["examples_of_failures"]:
      print(f"    {failure['kind']}: {failure['exception']} at {failure['where']}: "
            f"{failure['message'][:120]}")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--examples", type=int, default=2000, help="cases per target")
  parser.add_argument("--export_examples", type=int, default=None,
                      help="cases for predict_export (the slowest target); default --examples")
  parser.add_argument("--targets", default=",".join(test_fuzz.TARGETS),
                      help="comma-separated subset of: " + ", ".join(test_fuzz.TARGETS))
  parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (target i: seed + i)")
  parser.add_argument("--output", default=RESULTS_PATH)
  args = parser.parse_args()
  names = [name for name in args.targets.split(",") if name]
  unknown = sorted(set(names) - set(test_fuzz.TARGETS))
  if unknown:
    parser.error(f"unknown targets: {', '.join(unknown)}")
  logging.getLogger("bert_nlu").setLevel(logging.ERROR)  # bad-byte warnings are expected here

  report = {}
  with tempfile.TemporaryDirectory(prefix="bert_nlu_fuzz_") as root:
    tiny_bert = conftest.make_tiny_bert(os.path.join(root, "tiny_bert"),
                                        conftest.corpus_vocabulary())
    tiny_corpus = conftest.make_corpus(os.path.join(root, "tiny_corpus"))
    export_dir = ""
    if any(test_fuzz.TARGETS[name][2] for name in names):
      print("training the tiny export for predict_export ...", flush=True)
      export_dir = test_fuzz.train_tiny_export(tiny_bert, tiny_corpus, os.path.join(root, "run"))
    scratch = os.path.join(root, "scratch")
    os.makedirs(scratch)
    ctx = test_fuzz.FuzzContext(scratch, tiny_bert, tiny_corpus, export_dir)
    if ctx.missing_real_vocabulary:
      print(f"note: {ctx.missing_real_vocabulary}", flush=True)
    real_vocabulary = ctx.missing_real_vocabulary or ctx.real_vocab_file
    for index, name in enumerate(names):
      examples = args.examples
      if test_fuzz.TARGETS[name][2] and args.export_examples is not None:
        examples = args.export_examples
      print(f"{name}: {examples} cases ...", flush=True)
      report[name] = run_target(name, ctx, examples, args.seed + index)

  report["git"] = provenance.git_state()
  report["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  report["settings"] = {"examples": args.examples, "export_examples": args.export_examples,
                        "seed": args.seed, "real_vocabulary": real_vocabulary,
                        "hypothesis": hypothesis.__version__,
                        "python": sys.version.split()[0]}
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, ensure_ascii=False)
    f.write("\n")
  print()
  print_table(report, names)
  print(f"\nwrote {os.path.relpath(args.output, REPO)}")
  bad = sum(report[name]["uncontrolled_exceptions"] + report[name]["property_violations"]
            for name in names)
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
