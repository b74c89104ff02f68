"""Raw text -> intent and slot spans, from an exported SavedModel loaded once.

The export directory (written by the trainer's best-model exporter) carries everything needed in
`assets.extra/`: label_maps.json, vocab.txt and predict_config.json (max_seq_length, casing), and
for multilabel intents exported_metrics.json (the dev-chosen intent_threshold).
`NluPredictor` loads the SavedModel's serving signature once; each call only tokenizes and runs it.

Output per utterance (JSON-serialisable):
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
"""

import json
import os
import re
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf_v2

from bert_nlu import intent_sets, io_utils
from bert_nlu.compat import make_tokenizer
from bert_nlu.data.features import words_to_predict_feature
from bert_nlu.data.labels import LabelMaps, join_intent_set
from bert_nlu.data.readers import split_lines
from bert_nlu.errors import InputError
from bert_nlu.metrics import tags_to_spans

ASSETS_DIR = "assets.extra"
EXPORTED_METRICS_FILE = "exported_metrics.json"  # = hooks.EXPORTED_METRICS_FILE
BYTE_ORDER_MARK = "\ufeff"


def word_offsets(text: str) -> List[tuple]:
  """(start, end) character offsets of each whitespace-separated word of `text`."""
  return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


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
    self._loaded = tf_v2.saved_model.load(export_dir)
    self._serve = self._loaded.signatures["serving_default"]
    self.takes_first_piece_mask = (
        "first_piece_mask" in self._serve.structured_input_signature[1])

  def _batch_inputs(self, words_list: Sequence[Sequence[str]]):
    rows = [words_to_predict_feature(words, self.tokenizer, self.max_seq_length)
            for words in words_list]
    length = max(len(ids) for ids, _, _ in rows)
    input_ids = np.zeros([len(rows), length], np.int32)
    input_mask = np.zeros([len(rows), length], np.int32)
    first_piece_mask = np.zeros([len(rows), length], np.int32)
    for i, (ids, row_first_piece_mask, _) in enumerate(rows):
      input_ids[i, :len(ids)] = ids
      input_mask[i, :len(ids)] = 1
      first_piece_mask[i, :len(row_first_piece_mask)] = row_first_piece_mask
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


def load_predictor(export_dirs: Sequence[str]):
  """An NluPredictor for one export, an ensemble (bert_nlu.ensemble) of several."""
  if len(export_dirs) == 1:
    return NluPredictor(export_dirs[0])
  from bert_nlu import ensemble  # pylint: disable=g-import-not-at-top
  return ensemble.EnsemblePredictor([NluPredictor(d) for d in export_dirs])


def predict_lines(predictor: NluPredictor, lines: Sequence[str], batch_size: int = 32,
                  out=None, err=None) -> int:
  """Predicts `lines` in batches, writing one JSON object per line to `out` (stdout); returns
  the count. If any utterance lost words to max_seq_length, one warning goes to `err` (stderr)."""
  out = out or sys.stdout
  count, truncated_utterances, truncated_words = 0, 0, 0
  for start in range(0, len(lines), batch_size):
    for result in predictor.predict(lines[start:start + batch_size]):
      out.write(json.dumps(result, ensure_ascii=False) + "\n")
      count += 1
      truncated_utterances += result["truncated_words"] > 0
      truncated_words += result["truncated_words"]
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
                    "comma-separated, predict as one ensemble (bert_nlu.ensemble).")
  flags.DEFINE_list("export_dir", [], "Exported SavedModel directories (override model_dir).")
  flags.DEFINE_string("input_file", "", "Utterances, one per line; '-' reads stdin. Without it, "
                      "the positional arguments are the utterances.")
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
