r"""Where whole-frame errors come from: the intent, the slots or both, and which kind of slot error.

A frame (one utterance) is wrong when its intent or any word's tag is wrong (`metrics.
whole_frame_accuracy`). This module splits the wrong frames of a run's `predictions_<split>.jsonl`
into intent-only, slots-only and both, and classifies every slot span that is not exactly right
(spans are seqeval's BIO entities, as the slot F1 counts them):

  missed             a gold span no predicted span overlaps
  spurious           a predicted span that overlaps no gold span
  wrong type         a predicted span with the gold span's boundaries but another type
  boundary           an overlapping predicted span of the same type with other boundaries
  boundary and type  an overlapping predicted span of another type and other boundaries

Each gold span not exactly predicted gets one class (the first that applies, in the order wrong
type, boundary, boundary and type, missed); each predicted span that overlaps no gold span is
spurious. Counts are kept per slot type (the gold type; the predicted type for spurious spans).

  python -m bert_nlu.frame_errors --run "seed 42|runs/bench/snips_aug05_seeds/seed42_i0" \
      --run "seed 43|..." --split=test --output=reports/frame_errors_snips

writes <output>.md (tables: per run and summed over the runs) and <output>.json (the counts).
"""

import collections
import json
import os
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from seqeval.metrics.sequence_labeling import get_entities

from bert_nlu import io_utils
from bert_nlu.errors import InputError

SPAN_CLASSES = ("wrong type", "boundary", "boundary and type", "missed", "spurious")
FRAME_CLASSES = ("intent only", "slots only", "intent and slots")

Span = Tuple[str, int, int]  # (type, first word, last word), seqeval's entity


def _overlaps(a: Span, b: Span) -> bool:
  return a[1] <= b[2] and b[1] <= a[2]


def classify_spans(gold_tags: Sequence[str],
                   pred_tags: Sequence[str]) -> List[Tuple[str, str, str]]:
  """[(class, slot type, predicted type)] for every span error of one utterance ([] if none).

  Args:
    gold_tags, pred_tags: BIO tags of the same words.

  Returns:
    One triple per error: the slot type is the gold span's (the predicted span's for
    "spurious"); the predicted type is the type it was taken for ("wrong type", "boundary and
    type"), else "".
  """
  gold = set(get_entities(list(gold_tags)))
  pred = set(get_entities(list(pred_tags)))
  gold_wrong, pred_wrong = sorted(gold - pred), sorted(pred - gold)
  errors = []
  for span in gold_wrong:
    overlapping = [p for p in pred_wrong if _overlaps(span, p)]
    if not overlapping:
      errors.append(("missed", span[0], ""))
    elif any(p[1:] == span[1:] for p in overlapping):
      taken_for = next(p[0] for p in overlapping if p[1:] == span[1:])
      errors.append(("wrong type", span[0], taken_for))
    elif any(p[0] == span[0] for p in overlapping):
      errors.append(("boundary", span[0], ""))
    else:
      errors.append(("boundary and type", span[0], overlapping[0][0]))
  for span in pred_wrong:
    if not any(_overlaps(span, g) for g in gold):
      errors.append(("spurious", span[0], ""))
  return errors


def frame_class(prediction: Mapping) -> str:
  """'' for a right frame, else one of FRAME_CLASSES."""
  intent_wrong = prediction["gold_intent"] != prediction["pred_intent"]
  slots_wrong = list(prediction["gold_tags"]) != list(prediction["pred_tags"])
  if intent_wrong and slots_wrong:
    return "intent and slots"
  if intent_wrong:
    return "intent only"
  return "slots only" if slots_wrong else ""


def count_errors(predictions: Iterable[Mapping]) -> Dict:
  """Frame and span error counts of one run's predictions.

  Returns:
    {"frames": n, "wrong_frames": n, "frame_classes": {class: n},
     "span_classes": {class: n}, "span_classes_by_type": {type: {class: n}},
     "type_confusions": {"gold -> predicted": n} (wrong type, boundary and type),
     "wrong_frames_by_gold_intent": {intent: n}}
  """
  frames, frame_counts = 0, collections.Counter()
  span_counts, by_type = collections.Counter(), collections.defaultdict(collections.Counter)
  by_intent, confusions = collections.Counter(), collections.Counter()
  for prediction in predictions:
    frames += 1
    kind = frame_class(prediction)
    if not kind:
      continue
    frame_counts[kind] += 1
    by_intent[prediction["gold_intent"]] += 1
    for span_class, slot_type, taken_for in classify_spans(prediction["gold_tags"],
                                                           prediction["pred_tags"]):
      span_counts[span_class] += 1
      by_type[slot_type][span_class] += 1
      if taken_for:
        confusions[f"{slot_type} -> {taken_for}"] += 1
  return _counts_result(frames, frame_counts, span_counts, by_type, confusions, by_intent)


def _counts_result(frames: int, frame_counts, span_counts, by_type, confusions,
                   by_intent) -> Dict:
  """The counts (Counters; by_type one per slot type) in `count_errors`'s result layout."""
  return {
      "frames": frames,
      "wrong_frames": sum(frame_counts.values()),
      "frame_classes": {k: frame_counts[k] for k in FRAME_CLASSES},
      "span_classes": {k: span_counts[k] for k in SPAN_CLASSES},
      "span_classes_by_type": {t: {k: c[k] for k in SPAN_CLASSES if c[k]}
                               for t, c in sorted(by_type.items())},
      "type_confusions": dict(confusions.most_common()),
      "wrong_frames_by_gold_intent": dict(by_intent.most_common()),
  }


def read_predictions(run_dir: str, split: str) -> List[Dict]:
  """The `predictions_<split>.jsonl` a finished NLU run wrote."""
  path = os.path.join(run_dir, f"predictions_{split}.jsonl")
  if not os.path.exists(path):
    raise InputError(path, f"missing: not a finished NLU run with a {split} evaluation")
  predictions = []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, 1):
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise InputError(path, f"not JSON ({e})", line_number) from None
      missing = [k for k in ("gold_intent", "pred_intent", "gold_tags", "pred_tags")
                 if k not in record]
      if missing:
        raise InputError(path, f"no {', '.join(missing)} (a GLUE run?)", line_number)
      predictions.append(record)
  return predictions


def sum_counts(counts: Sequence[Dict]) -> Dict:
  """The counts of several runs added up (same keys as count_errors)."""
  frame_counts, span_counts = collections.Counter(), collections.Counter()
  by_type = collections.defaultdict(collections.Counter)
  confusions, by_intent = collections.Counter(), collections.Counter()
  for count in counts:
    frame_counts.update(count["frame_classes"])
    span_counts.update(count["span_classes"])
    confusions.update(count["type_confusions"])
    by_intent.update(count["wrong_frames_by_gold_intent"])
    for slot_type, classes in count["span_classes_by_type"].items():
      by_type[slot_type].update(classes)
  return _counts_result(sum(count["frames"] for count in counts), frame_counts, span_counts,
                        by_type, confusions, by_intent)


def format_markdown(title: str, split: str, runs: Sequence[Tuple[str, Dict]], total: Dict,
                    top_types: int = 12) -> str:
  """Tables: wrong frames and span errors per run, then span errors per slot type (summed)."""
  lines = [f"# {title}", "",
           f"Whole-frame errors on {split.upper()}: a frame is wrong when its intent or any word's "
           "tag is wrong. Span errors are counted on seqeval's BIO entities "
           "(`bert_nlu/frame_errors.py` defines the classes).", "",
           "| run | frames | wrong | " + " | ".join(FRAME_CLASSES) + " | "
           + " | ".join(SPAN_CLASSES) + " |",
           "|---|" + "---|" * (2 + len(FRAME_CLASSES) + len(SPAN_CLASSES))]
  for label, count in [*runs, ("all runs", total)]:
    lines.append(f"| {label} | {count['frames']} | {count['wrong_frames']} | "
                 + " | ".join(str(count["frame_classes"][k]) for k in FRAME_CLASSES) + " | "
                 + " | ".join(str(count["span_classes"][k]) for k in SPAN_CLASSES) + " |")
  by_type = sorted(total["span_classes_by_type"].items(), key=lambda item: -sum(item[1].values()))
  lines += ["", f"Span errors by slot type, all runs (the {top_types} types with most errors):", "",
            "| slot type | errors | " + " | ".join(SPAN_CLASSES) + " |",
            "|---|---|" + "---|" * len(SPAN_CLASSES)]
  for slot_type, classes in by_type[:top_types]:
    lines.append(f"| {slot_type} | {sum(classes.values())} | "
                 + " | ".join(str(classes.get(k, 0)) for k in SPAN_CLASSES) + " |")
  lines += ["", "Slot types taken for others (gold -> predicted; wrong type, boundary and type), "
            "all runs: " + ", ".join(f"{pair} {n}" for pair, n in
                                     list(total["type_confusions"].items())[:top_types]), ""]
  lines += ["Wrong frames by gold intent, all runs: "
            + ", ".join(f"{intent} {n}" for intent, n in
                        total["wrong_frames_by_gold_intent"].items()), ""]
  return "\n".join(lines)


def main(argv=None):
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--run", action="append", required=True,
                      help="LABEL|RUN_DIR of a finished NLU run (repeat for several runs)")
  parser.add_argument("--split", default="test", choices=("dev", "test"))
  parser.add_argument("--title", default="Where the whole-frame errors come from")
  parser.add_argument("--output", required=True, help="writes <output>.md and <output>.json")
  args = parser.parse_args(argv)
  runs = []
  for spec in args.run:
    if "|" not in spec:
      parser.error(f"--run {spec!r}: expected LABEL|RUN_DIR")
    label, run_dir = spec.split("|", 1)
    runs.append((label, run_dir, count_errors(read_predictions(run_dir, args.split))))
  total = sum_counts([count for _, _, count in runs])
  text = format_markdown(args.title, args.split, [(label, c) for label, _, c in runs], total)
  io_utils.atomic_write_text(args.output + ".md", text)
  io_utils.atomic_write_json(args.output + ".json", {
      "split": args.split, "total": total,
      "runs": [{"label": label, "run_dir": run_dir, **count} for label, run_dir, count in runs]})
  print(text)


if __name__ == "__main__":
  main()
