"""Seed ensembles: K exported runs of the same label maps predicting as one model.

  python -m bert_nlu.ensemble --model_dirs=runs/s42,runs/s43,runs/s44 \
      --data_dir=../shared/data/snips --splits=dev,test --output_file=ensemble.json
  python -m bert_nlu.predict --model_dir=runs/s42,runs/s43,runs/s44 "play adele"

How the members' outputs are combined (`combine_outputs`), per utterance:
  intent: the members' softmax distributions are averaged; the intent is the argmax.
  slots, softmax runs: the per-piece tag distributions are averaged; each word's tag is the argmax
    at its first piece.
  slots, CRF runs: the CRF potentials are averaged (emission scores [seq, num_tags] and the
    transition matrix), then Viterbi runs over the words: a product of experts, which for K copies
    of one model is exactly that model's decoder (averaging CRF marginals would need posterior
    decoding, which does not reduce to the single model's Viterbi path).
  slots, --slot_head=bio_type runs: the position and the type distributions are averaged apart;
    each word's tag is the averaged position's argmax with the averaged type's argmax, mapped to a
    tag id as the model does (`labels.bio_vocabulary`): K copies of one model decode as it does.
  confidence: the averaged probability of the chosen tag.
With `allowed_tags` (`bert_nlu.slot_constraints`, --constrain_slots_to_intent), the slots are
decoded after the intent, with only the tags the training data shows with that intent (CRF and
softmax runs). An "ensemble" of one run is that run's own decoder, so the constraint applies to
single models the same way.
The ensemble is evaluated with the trainer's whole-set word-level metrics
(`bert_nlu.metrics.nlu_metrics`) on the corpus' words, and costs K times one model's work.
"""

import json
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from bert_nlu import io_utils, metrics, slot_constraints
from bert_nlu.compat import crf
from bert_nlu.data.features import word_level_tags
from bert_nlu.predict import NluPredictor, predict_texts


def viterbi_over_words(emissions: np.ndarray, transitions: np.ndarray,
                       first_piece_mask: np.ndarray) -> np.ndarray:
  """Viterbi tags of one utterance's words, written at their first pieces.

  Args:
    emissions: [seq, num_tags] per-piece scores.
    transitions: [num_tags, num_tags] from-tag x to-tag scores.
    first_piece_mask: [seq] 1 on each word's first piece.
  Returns:
    [seq] int32 tag ids: the Viterbi path at first pieces, the per-piece argmax elsewhere.
  """
  tags = np.argmax(emissions, axis=-1).astype(np.int32)
  positions = np.flatnonzero(first_piece_mask)
  if len(positions):
    path, _ = crf.viterbi_decode(emissions[positions], transitions)
    tags[positions] = path
  return tags


def combine_outputs(member_outputs: Sequence[Dict[str, np.ndarray]],
                    first_piece_mask: np.ndarray,
                    combination_tags: Optional[Sequence[Sequence[int]]] = None,
                    allowed_tags: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
  """Averages K members' batch outputs (see module docstring).

  Args:
    member_outputs: per member, the `NluPredictor.run_batch` outputs of the same batch.
    first_piece_mask: [batch, seq].
    combination_tags: the label maps' `bio.combination_tags`, used with bio_type members.
    allowed_tags: optional [num_intents, num_tags] bool (`slot_constraints.allowed_tags`): each
      row's slots are decoded with only its predicted intent's tags.
  Returns:
    intent_id [batch], intent_probabilities [batch, num_intents], slot_ids [batch, seq],
    slot_confidence [batch, seq], slot_probabilities [batch, seq, num_tags].
  """
  intent_probabilities = np.mean([o["intent_probabilities"] for o in member_outputs], axis=0)
  intent_id = np.argmax(intent_probabilities, axis=-1).astype(np.int32)
  slot_probabilities = np.mean([o["slot_probabilities"] for o in member_outputs], axis=0)
  row_allowed = None
  if allowed_tags is not None:
    if "slot_type_probabilities" in member_outputs[0]:
      raise ValueError("intent-constrained decoding is not built for --slot_head=bio_type runs")
    row_allowed = np.asarray(allowed_tags)[intent_id][:, None, :]  # [batch, 1, num_tags]
  if "slot_transitions" in member_outputs[0]:
    emissions = np.mean([o["slot_logits"] for o in member_outputs], axis=0)
    if row_allowed is not None:
      emissions = slot_constraints.constrain_emissions(emissions, row_allowed)
    transitions = np.mean([o["slot_transitions"][:, :, :] for o in member_outputs], axis=0)
    slot_ids = np.stack([viterbi_over_words(emissions[row], transitions[row],
                                            first_piece_mask[row])
                         for row in range(len(emissions))])
  elif "slot_type_probabilities" in member_outputs[0]:
    position = np.mean([o["slot_position_probabilities"] for o in member_outputs], axis=0)
    slot_type = np.mean([o["slot_type_probabilities"] for o in member_outputs], axis=0)
    slot_ids = np.asarray(combination_tags, np.int32)[np.argmax(position, axis=-1),
                                                      np.argmax(slot_type, axis=-1)]
  else:
    decoded = (slot_probabilities if row_allowed is None else
               slot_constraints.constrain_probabilities(slot_probabilities, row_allowed))
    slot_ids = np.argmax(decoded, axis=-1).astype(np.int32)
  return {
      "intent_id": intent_id,
      "intent_probabilities": intent_probabilities,
      "slot_ids": slot_ids,
      "slot_confidence": np.take_along_axis(slot_probabilities, slot_ids[..., None],
                                            axis=-1)[..., 0],
      "slot_probabilities": slot_probabilities,
  }


class EnsemblePredictor:
  """K NluPredictors of the same label maps and tokenization, predicting as one."""

  def __init__(self, members: Sequence[NluPredictor],
               allowed_tags: Optional[np.ndarray] = None):
    """Args: members; allowed_tags: optional [num_intents, num_tags] bool mask of the slot tags
    each intent may decode (`slot_constraints.allowed_tags`; see `combine_outputs`). Without it,
    members that were all trained with --constrain_slots_to_intent (the same mask recorded in
    their exports) are combined with their mask."""
    if not members:
      raise ValueError("an ensemble needs at least one exported model")
    first = members[0]
    for member in members[1:]:
      if member.label_maps != first.label_maps:
        raise ValueError("ensemble members must share label maps (train on the same corpus)")
      if (member.max_seq_length != first.max_seq_length
          or member.tokenizer.vocab != first.tokenizer.vocab):
        raise ValueError("ensemble members must share vocabulary and max_seq_length")
      if member.takes_first_piece_mask != first.takes_first_piece_mask:
        raise ValueError("ensemble members must all be CRF runs or all softmax runs")
      if member.factored_slots != first.factored_slots:
        raise ValueError("ensemble members must all have the same --slot_head")
    self.members = list(members)
    self.label_maps = first.label_maps
    self.max_seq_length = first.max_seq_length
    if allowed_tags is not None and np.shape(allowed_tags) != (len(self.label_maps.intents),
                                                               len(self.label_maps.slot_tags)):
      raise ValueError(f"allowed_tags has shape {np.shape(allowed_tags)}, the label maps "
                       f"{len(self.label_maps.intents)} intents x "
                       f"{len(self.label_maps.slot_tags)} tags")
    if allowed_tags is None:
      recorded = [member.allowed_slot_tags for member in self.members]
      if all(mask is not None and np.array_equal(mask, recorded[0]) for mask in recorded):
        allowed_tags = recorded[0]
    self.allowed_tags = allowed_tags

  def run_batch(self, words_list: Sequence[Sequence[str]]):
    """Like `NluPredictor.run_batch`, with the members' outputs combined."""
    member_outputs = []
    for member in self.members:
      outputs, first_piece_mask, kept = member.run_batch(words_list)
      if "slot_probabilities" not in outputs:
        raise ValueError("an ensemble member's export has no slot_probabilities output "
                         "(exported before ensembles existed): re-export or retrain it")
      member_outputs.append(outputs)
    combination_tags = (self.label_maps.bio.combination_tags if self.members[0].factored_slots
                        else None)
    combined = combine_outputs(member_outputs, first_piece_mask, combination_tags,
                               self.allowed_tags)
    return combined, first_piece_mask, kept

  def predict(self, texts: Sequence[str]) -> List[Dict]:
    return predict_texts(self, texts)


def evaluate(predictor, examples, batch_size: int = 64) -> Dict:
  """Whole-set word-level metrics of `predictor` on gold `examples` (NluExample).

  Scored exactly as the trainer scores: the predicted tag id at each word's first piece (not
  re-derived from spans), words lost to truncation count as predicted "O", labels the model
  cannot know count as errors.
  """
  pred_intents, pred_tags = [], []
  label_maps = predictor.label_maps
  for start in range(0, len(examples), batch_size):
    batch = examples[start:start + batch_size]
    outputs, first_piece_mask, _ = predictor.run_batch([list(e.words) for e in batch])
    for row, example in enumerate(batch):
      pred_intents.append(label_maps.intents[int(outputs["intent_id"][row])])
      pred_tags.append(word_level_tags(first_piece_mask[row], outputs["slot_ids"][row],
                                       label_maps.slot_tags, len(example.words)))
  return metrics.nlu_metrics([e.intent for e in examples], [list(e.slot_tags) for e in examples],
                             pred_intents, pred_tags)


def latency_ms(predictor, texts: Sequence[str], repeats: int = 1) -> Dict[str, float]:
  """Batch-1 latency percentiles (milliseconds) over `texts`, after one warm-up call."""
  predictor.predict(texts[:1])
  seconds = []
  for _ in range(repeats):
    for text in texts:
      start = time.perf_counter()
      predictor.predict([text])
      seconds.append(time.perf_counter() - start)
  return {"p50": 1000 * float(np.percentile(seconds, 50)),
          "p95": 1000 * float(np.percentile(seconds, 95)), "calls": len(seconds)}


def run_main() -> None:
  """`python -m bert_nlu.ensemble`: evaluate (and time) an ensemble of exported runs."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_list("model_dirs", [], "Runs' --output_dir (their best exports), comma-separated.")
  flags.DEFINE_string("data_dir", "", "seq.in/seq.out/label corpus to evaluate on.")
  flags.DEFINE_list("splits", ["dev", "test"], "Splits of --data_dir to evaluate.")
  flags.DEFINE_enum("multi_intent_policy", "atomic", ["atomic", "first"],
                    "As the members were trained.")
  flags.DEFINE_integer("latency_utterances", 100, "Utterances of the first split timed at "
                       "batch 1 for the ensemble and its first member (0 = no timing).")
  flags.DEFINE_string("output_file", "", "Write the results JSON here (else stdout only).")
  flags.DEFINE_bool("constrain_slots_to_intent", False, "Decode each utterance's slots with only "
                    "the slot types --data_dir's train split shows with its predicted intent "
                    "(bert_nlu.slot_constraints).")

  def main(argv):
    del argv
    from bert_nlu.data import readers  # pylint: disable=g-import-not-at-top
    from bert_nlu.hooks import latest_export  # pylint: disable=g-import-not-at-top
    values = flags.FLAGS
    if len(values.model_dirs) < 1 or not values.data_dir:
      raise app.UsageError("give --model_dirs (one or more runs) and --data_dir")
    members = [NluPredictor(latest_export(d)) for d in values.model_dirs]
    allowed = None
    if values.constrain_slots_to_intent:
      train = readers.read_seq_corpus(values.data_dir, splits=("train",),
                                      multi_intent_policy=values.multi_intent_policy)["train"]
      allowed = slot_constraints.allowed_tags(train.examples, members[0].label_maps)
    ensemble = EnsemblePredictor(members, allowed)
    splits = readers.read_seq_corpus(values.data_dir, splits=tuple(values.splits),
                                     multi_intent_policy=values.multi_intent_policy)
    results = {"model_dirs": list(values.model_dirs), "num_members": len(members),
               "constrain_slots_to_intent": values.constrain_slots_to_intent, "splits": {}}
    for name in values.splits:
      results["splits"][name] = evaluate(ensemble, list(splits[name].examples))
      headline = {k: round(100 * results["splits"][name][k], 2)
                  for k in ("intent_accuracy", "slot_f1", "whole_frame_accuracy")}
      print(f"{name}: {headline}", flush=True)
    if values.latency_utterances:
      texts = [" ".join(e.words)
               for e in splits[values.splits[0]].examples[:values.latency_utterances]]
      results["latency_ms"] = {"ensemble": latency_ms(ensemble, texts),
                               "single_member": latency_ms(members[0], texts)}
      print(f"latency ms: {json.dumps(results['latency_ms'])}", flush=True)
    if values.output_file:
      io_utils.atomic_write_json(values.output_file, results)
    return 0

  app.run(main)


if __name__ == "__main__":
  sys.exit(run_main())
