"""Raw text -> intent and slot spans (NLU) or a GLUE label / score, from an exported SavedModel.

The export directory (written by the trainer's best-model exporter) carries everything needed in
`assets.extra/`: label_maps.json, vocab.txt and predict_config.json (task, max_seq_length,
casing, bf16), and for multilabel intents exported_metrics.json (the dev-chosen
intent_threshold). `load_predictor` picks `NluPredictor` or `GluePredictor` by the task the export
names (exports without one are NLU); either loads the SavedModel's serving signature once, and each
call only tokenizes and runs it. A model trained with --bf16 is served with the same oneDNN
bfloat16 rewrite when this machine's CPU supports it (`cpu_features`), else in float32 after one
warning.

NLU output per utterance (JSON-serialisable):
  {"text": ..., "intent": {"name": ..., "probability": ...},
   "intents": [{"name": ..., "probability": ...}, ...],
   "slots": [{"slot": "artist", "text": "ruth lorenzo", "start": 10, "end": 22,
              "word_start": 2, "word_end": 4, "confidence": ...}],
   "truncated_words": 0}
start/end are character offsets into `text` (end exclusive); word_start/word_end are word indices.
"intents" lists the predicted intents, most probable first: the one argmax intent (softmax
head), or with multilabel intents every intent whose sigmoid probability reaches the threshold
(at least the most probable one); "intent" then names the set ("a#b", sorted) with the smallest
member probability. "truncated_words" counts the words cut by max_seq_length (not predicted).

GLUE input is one sentence per line, or for a pair task two sentences separated by a tab; output:
  {"text_a": ..., "text_b": ..., "label": "1", "probability": 0.93,
   "probabilities": {"0": 0.07, "1": 0.93}, "truncated_pieces": 0}
or for STS-B {"text_a": ..., "text_b": ..., "score": 4.1, "truncated_pieces": 0}; a pair task's
line without a tab gets {"text_a": line, "text_b": null, "error": "..."} and no prediction.
"""

import json
import os
import re
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf_v2

from bert_nlu import cpu_features, intent_sets, io_utils, slot_constraints
from bert_nlu.compat import make_tokenizer
from bert_nlu.config import GLUE_TASK, NLU_TASK
from bert_nlu.data.features import pair_to_predict_feature, words_to_predict_feature
from bert_nlu.data.glue import GLUE_LAYOUTS, GlueLabels
from bert_nlu.data.labels import LabelMaps, join_intent_set
from bert_nlu.data.readers import split_lines
from bert_nlu.errors import InputError
from bert_nlu.metrics import tags_to_spans

ASSETS_DIR = "assets.extra"
EXPORTED_METRICS_FILE = "exported_metrics.json"  # = hooks.EXPORTED_METRICS_FILE
BYTE_ORDER_MARK = "\ufeff"
PAIR_SEPARATOR = "\t"


def word_offsets(text: str) -> List[tuple]:
  """(start, end) character offsets of each whitespace-separated word of `text`."""
  return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def pad_to_longest(id_rows: Sequence[Sequence[int]], aligned_rows: Sequence[Sequence[int]]):
  """One batch of serving inputs from rows of different lengths.

  Args:
    id_rows: each row's word-piece ids.
    aligned_rows: one int row per id row, aligned with it (segment ids, first-piece mask).

  Returns:
    input_ids, input_mask (1 on real pieces) and the aligned rows, each int32
    [batch, longest row], zero-padded on the right.
  """
  length = max(len(ids) for ids in id_rows)
  input_ids, input_mask, aligned = (np.zeros([len(id_rows), length], np.int32) for _ in range(3))
  for i, (ids, row) in enumerate(zip(id_rows, aligned_rows)):
    input_ids[i, :len(ids)] = ids
    input_mask[i, :len(ids)] = 1
    aligned[i, :len(row)] = row
  return input_ids, input_mask, aligned


class NluPredictor:
  """Loads an exported NLU SavedModel once and predicts batches of raw utterances."""

  def __init__(self, export_dir: str):
    assets = os.path.join(export_dir, ASSETS_DIR)
    self.label_maps = LabelMaps.load(os.path.join(assets, "label_maps.json"))
    predict_config = io_utils.read_json(os.path.join(assets, "predict_config.json"))
    self.max_seq_length = int(predict_config["max_seq_length"])
    self.intent_threshold = None
    if self.label_maps.multilabel:
      exported_metrics = io_utils.read_json(os.path.join(assets, EXPORTED_METRICS_FILE))
      self.intent_threshold = float(exported_metrics["intent_threshold"])
    self.tokenizer = make_tokenizer(os.path.join(assets, "vocab.txt"),
                                    bool(predict_config["do_lower_case"]))
    self.bf16_support = serving_precision(predict_config)
    # Trained with --constrain_slots_to_intent: the export decodes so; an ensemble reads the mask.
    self.allowed_slot_tags = (
        slot_constraints.from_json(predict_config["allowed_slot_tags"], self.label_maps)
        if "allowed_slot_tags" in predict_config else None)
    self._loaded = tf_v2.saved_model.load(export_dir)
    self._serve = self._loaded.signatures["serving_default"]
    self.takes_first_piece_mask = (
        "first_piece_mask" in self._serve.structured_input_signature[1])
    # A --slot_head=bio_type export also serves its position and type softmaxes.
    self.factored_slots = "slot_type_probabilities" in self._serve.structured_outputs

  def _batch_inputs(self, words_list: Sequence[Sequence[str]]):
    rows = [words_to_predict_feature(words, self.tokenizer, self.max_seq_length)
            for words in words_list]
    input_ids, input_mask, first_piece_mask = pad_to_longest(
        [ids for ids, _, _ in rows], [row_first_piece_mask for _, row_first_piece_mask, _ in rows])
    return input_ids, input_mask, first_piece_mask, [kept for _, _, kept in rows]

  def run_batch(self, words_list: Sequence[Sequence[str]]):
    """Runs the model on a batch of word lists.

    Returns:
      outputs: {name: np.ndarray} of the serving signature, row per utterance (intent_id [batch],
        intent_probabilities [batch, num_intents], slot_ids / slot_confidence [batch, seq],
        slot_probabilities [batch, seq, num_tags] in exports that have it, ...).
      first_piece_mask: [batch, seq] int32.
      kept: number of words of each utterance that fit in max_seq_length.
    """
    input_ids, input_mask, first_piece_mask, kept = self._batch_inputs(words_list)
    inputs = {"input_ids": tf_v2.constant(input_ids), "input_mask": tf_v2.constant(input_mask),
              "segment_ids": tf_v2.zeros_like(input_ids)}
    if self.takes_first_piece_mask:  # a CRF export decodes over the words
      inputs["first_piece_mask"] = tf_v2.constant(first_piece_mask)
    outputs = self._serve(**inputs)
    return {name: value.numpy() for name, value in outputs.items()}, first_piece_mask, kept

  def predict(self, texts: Sequence[str]) -> List[Dict]:
    """Predicts each text; an empty (all-whitespace) text gets intent None and no slots."""
    return predict_texts(self, texts)


def predict_texts(predictor, texts: Sequence[str]) -> List[Dict]:
  """Raw texts -> result dicts with any predictor that has `label_maps` and `run_batch`.

  An empty (all-whitespace) text gets intent None and no slots.
  """
  offsets = [word_offsets(text) for text in texts]
  results: List[Dict] = [None] * len(texts)
  nonempty = [i for i, o in enumerate(offsets) if o]
  for i, text in enumerate(texts):
    if not offsets[i]:
      results[i] = {"text": text, "intent": None, "intents": [], "slots": [],
                    "truncated_words": 0}
  if not nonempty:
    return results
  words_list = [[texts[i][s:e] for s, e in offsets[i]] for i in nonempty]
  outputs, first_piece_mask, kept = predictor.run_batch(words_list)
  for row, i in enumerate(nonempty):
    results[i] = decode_utterance(predictor.label_maps, texts[i], offsets[i], words_list[row],
                                  first_piece_mask[row], kept[row],
                                  {name: value[row] for name, value in outputs.items()},
                                  getattr(predictor, "intent_threshold", None))
  return results


def predicted_intents(label_maps: LabelMaps, probabilities: np.ndarray,
                      intent_threshold: Optional[float] = None) -> List[Dict]:
  """[{"name", "probability"}] of the predicted intent(s), most probable first: the argmax, or
  with multilabel maps every intent >= intent_threshold (default 0.5), at least the top one."""
  if label_maps.multilabel:
    threshold = intent_sets.DEFAULT_THRESHOLD if intent_threshold is None else intent_threshold
    ids = np.flatnonzero(intent_sets.decide_intent_sets(probabilities[None, :], threshold)[0])
  else:
    ids = [int(np.argmax(probabilities))]
  ids = sorted(ids, key=lambda i: -probabilities[i])
  return [{"name": label_maps.intents[i], "probability": float(probabilities[i])} for i in ids]


def decode_utterance(label_maps: LabelMaps, text: str, offsets, words, first_piece_mask,
                     num_words_kept: int, output, intent_threshold: Optional[float] = None
                     ) -> Dict:
  """One utterance's model outputs (one row of `run_batch`) -> its result dict."""
  intents = predicted_intents(label_maps, output["intent_probabilities"], intent_threshold)
  first_positions = [p for p, is_first in enumerate(first_piece_mask) if is_first]
  tags = [label_maps.slot_tags[int(output["slot_ids"][p])] for p in first_positions]
  confidence = [float(output["slot_confidence"][p]) for p in first_positions]
  tags += ["O"] * (len(words) - len(tags))
  slots = []
  for span in tags_to_spans(words, tags):
    start, end = span["start"], span["end"]
    slots.append({
        "slot": span["slot"],
        "text": text[offsets[start][0]:offsets[end - 1][1]],
        "start": offsets[start][0], "end": offsets[end - 1][1],
        "word_start": start, "word_end": end,
        "confidence": min(confidence[start:end]),
    })
  return {
      "text": text,
      "intent": {"name": join_intent_set(intent["name"] for intent in intents),
                 "probability": min(intent["probability"] for intent in intents)},
      "intents": intents,
      "slots": slots,
      "truncated_words": len(words) - num_words_kept,
  }


def _read_predict_config(export_dir: str) -> dict:
  return io_utils.read_json(os.path.join(export_dir, ASSETS_DIR, "predict_config.json"))


def serving_precision(predict_config: Dict) -> "cpu_features.Bf16Support":
  """Decides bf16 for an export on this machine; when active, turns on the eager counterpart of
  the training session's oneDNN bfloat16 rewrite (process-wide)."""
  support = cpu_features.detect_bf16_support(bool(predict_config.get("bf16", False)))
  if support.active:
    tf_v2.config.optimizer.set_experimental_options(
        {"auto_mixed_precision_onednn_bfloat16": True})
  return support


class GluePredictor:
  """Loads an exported GLUE SavedModel once and predicts batches of raw sentences (pairs)."""

  def __init__(self, export_dir: str):
    assets = os.path.join(export_dir, ASSETS_DIR)
    self.labels = GlueLabels.load(os.path.join(assets, "label_maps.json"))
    self.is_pair = GLUE_LAYOUTS[self.labels.task].is_pair
    predict_config = _read_predict_config(export_dir)
    self.max_seq_length = int(predict_config["max_seq_length"])
    self.tokenizer = make_tokenizer(os.path.join(assets, "vocab.txt"),
                                    bool(predict_config["do_lower_case"]))
    self.bf16_support = serving_precision(predict_config)
    self._serve = tf_v2.saved_model.load(export_dir).signatures["serving_default"]

  def split_line(self, line: str):
    """(text_a, text_b): a pair task's line is split at its first tab; (line, None) otherwise."""
    if not self.is_pair:
      return line, None
    if PAIR_SEPARATOR not in line:
      return line, None
    text_a, text_b = line.split(PAIR_SEPARATOR, 1)
    return text_a, text_b

  def predict(self, lines: Sequence[str]) -> List[Dict]:
    """Predicts each line (see module docstring); a blank line gets label (or score) None."""
    results: List[Dict] = [None] * len(lines)
    batch = []
    for i, line in enumerate(lines):
      text_a, text_b = self.split_line(line)
      result = {"text_a": text_a, "text_b": text_b}
      if not line.strip():
        result.update({"score": None} if self.labels.is_regression else
                      {"label": None, "probability": None})
        result["truncated_pieces"] = 0
      elif self.is_pair and text_b is None:
        result["error"] = (f"{self.labels.task} takes a sentence pair: two sentences separated "
                           "by a tab")
      else:
        batch.append(i)
      results[i] = result
    if not batch:
      return results
    rows = [pair_to_predict_feature(results[i]["text_a"], results[i]["text_b"], self.tokenizer,
                                    self.max_seq_length) for i in batch]
    input_ids, input_mask, segment_ids = pad_to_longest([ids for ids, _, _ in rows],
                                                        [segments for _, segments, _ in rows])
    outputs = self._serve(input_ids=tf_v2.constant(input_ids),
                          input_mask=tf_v2.constant(input_mask),
                          segment_ids=tf_v2.constant(segment_ids))
    outputs = {name: value.numpy() for name, value in outputs.items()}
    for row, i in enumerate(batch):
      if self.labels.is_regression:
        results[i]["score"] = float(outputs["score"][row])
      else:
        probabilities = outputs["probabilities"][row]
        label_id = int(outputs["label_id"][row])
        results[i].update({
            "label": self.labels.labels[label_id],
            "probability": float(probabilities[label_id]),
            "probabilities": {label: float(p)
                              for label, p in zip(self.labels.labels, probabilities)}})
      results[i]["truncated_pieces"] = rows[row][2]
    return results


def export_task(export_dir: str) -> str:
  """The task an export was trained for: its predict_config.json's "task" ("nlu" in exports
  written before the task was recorded)."""
  return _read_predict_config(export_dir).get("task", NLU_TASK)


def predictor_for_export(export_dir: str):
  """`GluePredictor` for a GLUE export, else `NluPredictor`."""
  if export_task(export_dir) == GLUE_TASK:
    return GluePredictor(export_dir)
  return NluPredictor(export_dir)


def load_predictor(export_dirs: Sequence[str]):
  """The predictor of one export (chosen by its task), or an NLU ensemble (bert_nlu.ensemble) of
  several.

  Raises:
    InputError: several exports of which one is not an NLU export (GLUE exports are predicted
      one at a time).
  """
  if len(export_dirs) == 1:
    return predictor_for_export(export_dirs[0])
  for export_dir in export_dirs:
    if export_task(export_dir) != NLU_TASK:
      raise InputError(export_dir, "only NLU exports can be predicted as an ensemble")
  from bert_nlu import ensemble  # pylint: disable=g-import-not-at-top
  return ensemble.EnsemblePredictor([NluPredictor(d) for d in export_dirs])


def predict_lines(predictor, lines: Sequence[str], batch_size: int = 32,
                  out=None, err=None) -> int:
  """Predicts `lines` in batches (with an `NluPredictor` or `GluePredictor`), writing one JSON
  object per line to `out` (stdout); returns the count. If any NLU utterance lost words to
  max_seq_length, one warning goes to `err` (stderr)."""
  out = out or sys.stdout
  count, truncated_utterances, truncated_words = 0, 0, 0
  for start in range(0, len(lines), batch_size):
    for result in predictor.predict(lines[start:start + batch_size]):
      out.write(json.dumps(result, ensure_ascii=False) + "\n")
      count += 1
      truncated_utterances += result.get("truncated_words", 0) > 0
      truncated_words += result.get("truncated_words", 0)
  out.flush()
  if truncated_utterances:
    print(f"warning: {truncated_utterances} of {count} utterances were cut at max_seq_length="
          f"{predictor.max_seq_length} word pieces: {truncated_words} words were not predicted "
          "(see truncated_words)", file=err or sys.stderr)
  return count


def read_utterances(path: str) -> List[str]:
  """One utterance per line from a file ("-" = stdin); bad bytes are replaced, not fatal.

  Lines are what the corpus readers call lines (`readers.split_lines`): only "\\n" and "\\r\\n"
  end one, so result i always belongs to line i + 1 of the input (`str.splitlines` would also
  split at "\\x0c", "\\x1c", U+2028, ...). A leading byte order mark is dropped.

  Raises:
    InputError: the file cannot be read.
  """
  if path == "-":
    data = sys.stdin.buffer.read()
  else:
    try:
      with open(path, "rb") as f:
        data = f.read()
    except OSError as error:
      raise InputError(path, f"cannot read utterances: {error.strerror or error}") from error
  text = data.decode("utf-8", errors="replace")
  if text.startswith(BYTE_ORDER_MARK):
    text = text[len(BYTE_ORDER_MARK):]
  return split_lines(text)


def run_main() -> None:
  """Console script `bert-nlu-predict`: see --help."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_list("model_dir", [], "A run's --output_dir (uses its best export); several, "
                    "comma-separated, predict as one ensemble (bert_nlu.ensemble; NLU only).")
  flags.DEFINE_list("export_dir", [], "Exported SavedModel directories (override model_dir).")
  flags.DEFINE_string("input_file", "", "One input per line ('-' reads stdin): an utterance "
                      "(NLU), a sentence or two tab-separated sentences (GLUE). Without it, the "
                      "positional arguments are the inputs.")
  flags.DEFINE_integer("batch_size", 32, "Utterances per model call.")

  def main(argv):
    from bert_nlu.errors import InputError  # pylint: disable=g-import-not-at-top
    from bert_nlu.hooks import latest_export  # pylint: disable=g-import-not-at-top
    flag_values = flags.FLAGS
    if not (flag_values.export_dir or flag_values.model_dir):
      raise app.UsageError("give --model_dir (a run's output_dir) or --export_dir")
    # Arguments with undecodable bytes arrive as surrogates: make them plain replaced text.
    arguments = [os.fsencode(a).decode("utf-8", "replace") for a in argv[1:]]
    try:
      export_dirs = flag_values.export_dir or [latest_export(d) for d in flag_values.model_dir]
      lines = (read_utterances(flag_values.input_file) if flag_values.input_file else arguments)
      if not lines:
        raise app.UsageError("nothing to predict: pass utterances or --input_file")
      predict_lines(load_predictor(export_dirs), lines, flag_values.batch_size)
    except (InputError, FileNotFoundError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    return 0

  app.run(main)


if __name__ == "__main__":
  run_main()
