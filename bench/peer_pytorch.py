#!/usr/bin/env python
"""The PyTorch peer of the throughput benchmark: a HuggingFace JointBERT, run as its users run it.

  python bench/peer_pytorch.py --examples_json=EX.json --model_dir=HF_DIR --out=OUT.json

`bench/throughput.py` runs this script in a subprocess (torch and TensorFlow never share a process
or thread pools) and hands it the very examples, label vocabularies and utterances that it feeds
to this project, in one JSON file:
  {"intents": [...], "slot_tags": [...],          # label vocabularies (position = id)
   "train": [{"words": [...], "tags": [...], "intent": "..."}, ...],  # already seed-shuffled
   "latency_texts": [...], "infer_texts": [...]}

The model is monologg/JointBERT's: `transformers.BertModel` (pooler included) + dropout/linear
intent head on the pooled output + dropout/linear token-classification head on every position;
loss = cross-entropy(intent) + cross-entropy(slots) over first word pieces (other pieces, [CLS],
[SEP] and padding carry label -100). Training is the plain loop: DataLoader(shuffle=True,
batch 32) with `DataCollatorForTokenClassification` (= DataCollatorWithPadding that also pads the
label lists: every batch is padded to its own longest sequence, in random order), torch AdamW
(no decay on bias/LayerNorm), linear warmup/decay schedule, gradient clipping at 1.0, eager mode.
`--padding=max_length` pads every batch to --max_seq_length instead (for the same-tokens
comparison with this project's fixed padding).

Inference (model.eval(), torch.no_grad()):
  latency, end to end: raw text -> HF fast tokenizer -> forward -> intent name/probability and one
    tag (+ confidence) per word from the first pieces; one utterance per call.
  latency, forward only: the same utterances pre-tokenized; only the model call is timed.
  batched: --infer_batch_size utterances per call, end to end, padded to the batch's longest.

Timing: per training step, the wall time from the end of the previous step to the end of this
one (so the DataLoader/collator time counts); the first --warmup_steps steps are excluded.
Writes a JSON report to --out.

Time to a dev-selected model (`--epochs=N`, used by bench/time_to_result.py; the JSON then also
holds "dev": [...] examples): --epochs passes over "train" (DataLoader shuffle, every example
once per epoch), a whole-dev evaluation after each epoch (intent accuracy, word-level tag
accuracy, whole-frame accuracy from the first pieces), the model's state_dict saved to
--save_dir whenever dev whole-frame accuracy improves. Wall time split into start-up (from
--launched_at, the driver's clock before starting this process, to the end of the imports and
the model load), data preparation (tokenizer load + encoding), training steps, evaluation and
checkpoint I/O.
"""

import argparse
import json
import os
import platform
import random
import sys
import time

# Offline, torch only: never reach for the hub, never import TensorFlow/Flax from transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("USE_TORCH", "1")
os.environ.setdefault("USE_FLAX", "0")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import transformers  # noqa: E402
from transformers import (BertModel, BertTokenizerFast,  # noqa: E402
                          DataCollatorForTokenClassification, get_linear_schedule_with_warmup)

IMPORTED_AT = time.time()

IGNORE_INDEX = -100


class JointBert(nn.Module):
  """monologg/JointBERT without CRF: BertModel + intent head (pooled) + slot head (sequence)."""

  def __init__(self, model_dir: str, num_intents: int, num_tags: int, dropout: float):
    super().__init__()
    self.bert = BertModel.from_pretrained(model_dir, local_files_only=True)
    hidden = self.bert.config.hidden_size
    self.intent_dropout = nn.Dropout(dropout)
    self.intent_classifier = nn.Linear(hidden, num_intents)
    self.slot_dropout = nn.Dropout(dropout)
    self.slot_classifier = nn.Linear(hidden, num_tags)

  def forward(self, input_ids, attention_mask, token_type_ids):
    outputs = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids)
    sequence_output, pooled_output = outputs[0], outputs[1]  # [b, s, h], [b, h]
    intent_logits = self.intent_classifier(self.intent_dropout(pooled_output))  # [b, intents]
    slot_logits = self.slot_classifier(self.slot_dropout(sequence_output))  # [b, s, tags]
    return intent_logits, slot_logits


def joint_loss(intent_logits, slot_logits, intent_labels, slot_labels):
  intent_loss = nn.functional.cross_entropy(intent_logits, intent_labels)
  slot_loss = nn.functional.cross_entropy(slot_logits.reshape(-1, slot_logits.shape[-1]),
                                          slot_labels.reshape(-1), ignore_index=IGNORE_INDEX)
  return intent_loss + slot_loss


def encode_example(tokenizer, example, tag_index, intent_index, max_seq_length):
  """Word pieces with the word's tag on its first piece (-100 elsewhere), as HF's NER recipe."""
  encoding = tokenizer(example["words"], is_split_into_words=True, truncation=True,
                       max_length=max_seq_length)
  labels, previous = [], None
  for word_id in encoding.word_ids():
    if word_id is None or word_id == previous:
      labels.append(IGNORE_INDEX)
    else:
      labels.append(tag_index.get(example["tags"][word_id], IGNORE_INDEX))
    previous = word_id
  feature = dict(encoding)
  feature["labels"] = labels
  feature["intent_labels"] = intent_index[example["intent"]]
  return feature


def percentile_ms(seconds, q):
  return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def latency_summary(seconds):
  return {"p50_ms": percentile_ms(seconds, 50), "p95_ms": percentile_ms(seconds, 95),
          "mean_ms": float(np.mean(seconds) * 1000.0), "samples": len(seconds)}


def train_run(args, data, tokenizer, features, padding: str) -> dict:
  """One training run from the pretrained weights; returns per-step records and totals."""
  torch.manual_seed(args.seed)
  random.seed(args.seed)
  np.random.seed(args.seed)
  model = JointBert(args.model_dir, len(data["intents"]), len(data["slot_tags"]), args.dropout)
  model.train()
  if padding == "longest":
    collator = DataCollatorForTokenClassification(tokenizer, padding="longest")
  else:
    collator = DataCollatorForTokenClassification(tokenizer, padding="max_length",
                                                  max_length=args.max_seq_length)
  generator = torch.Generator()
  generator.manual_seed(args.seed)
  loader = torch.utils.data.DataLoader(features, batch_size=args.batch_size, shuffle=True,
                                       collate_fn=collator, generator=generator, drop_last=True)
  total_steps = args.warmup_steps + args.train_steps
  optimizer, scheduler = _optimizer_and_schedule(args, model, total_steps)

  def batches():
    while True:  # epochs, reshuffled each time, as a plain multi-epoch loop does
      yield from loader

  steps = []
  batch_iter = batches()
  start = time.perf_counter()
  previous_end = start
  for step in range(1, total_steps + 1):
    batch = next(batch_iter)
    intent_logits, slot_logits = model(batch["input_ids"], batch["attention_mask"],
                                       batch["token_type_ids"])
    loss = joint_loss(intent_logits, slot_logits, batch["intent_labels"], batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    model.zero_grad()
    end = time.perf_counter()
    batch_size, seq_length = batch["input_ids"].shape
    steps.append({"step": step, "seconds": end - previous_end, "batch": int(batch_size),
                  "seq": int(seq_length), "real_tokens": int(batch["attention_mask"].sum()),
                  "loss": float(loss.detach())})
    previous_end = end
  return {"padding": padding, "steps": steps, "wall_seconds": time.perf_counter() - start,
          "attn_implementation": getattr(model.bert.config, "_attn_implementation", None)}


def _optimizer_and_schedule(args, model, total_steps: int):
  no_decay = ("bias", "LayerNorm.weight")
  groups = [
      {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
       "weight_decay": args.weight_decay},
      {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
       "weight_decay": 0.0},
  ]
  optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, eps=1e-8)
  return optimizer, get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps),
                                                    total_steps)


def encode_dev(tokenizer, dev, batch_size: int, max_seq_length: int):
  """Dev batches tokenized once: [(encoding, examples)]."""
  batches = []
  for start in range(0, len(dev), batch_size):
    examples = dev[start:start + batch_size]
    encoding = tokenizer([e["words"] for e in examples], is_split_into_words=True,
                         truncation=True, max_length=max_seq_length, padding="longest",
                         return_tensors="pt")
    batches.append((encoding, examples))
  return batches


def evaluate_dev(model, dev_batches, intents, slot_tags) -> dict:
  """Whole-dev intent accuracy, word tag accuracy and whole-frame accuracy (first pieces carry
  the word's tag; words lost to truncation count as wrong)."""
  model.eval()
  frames = intents_right = words = words_right = examples_seen = 0
  with torch.no_grad():
    for encoding, examples in dev_batches:
      intent_logits, slot_logits = model(encoding["input_ids"], encoding["attention_mask"],
                                         encoding["token_type_ids"])
      intent_ids = intent_logits.argmax(-1).tolist()
      slot_ids = slot_logits.argmax(-1).tolist()
      for row, example in enumerate(examples):
        predicted = ["O"] * len(example["words"])
        previous = None
        for position, word_id in enumerate(encoding.word_ids(row)):
          if word_id is not None and word_id != previous:
            predicted[word_id] = slot_tags[slot_ids[row][position]]
          previous = word_id
        right_tags = sum(p == g for p, g in zip(predicted, example["tags"]))
        intent_right = intents[intent_ids[row]] == example["intent"]
        intents_right += intent_right
        words += len(example["tags"])
        words_right += right_tags
        frames += intent_right and right_tags == len(example["tags"])
        examples_seen += 1
  model.train()
  return {"intent_accuracy": intents_right / examples_seen, "tag_accuracy": words_right / words,
          "whole_frame_accuracy": frames / examples_seen}


def fine_tune(args, data, tokenizer, features, dev_batches) -> dict:
  """--epochs of training with a dev evaluation after each, the best model saved (module doc)."""
  torch.manual_seed(args.seed)
  random.seed(args.seed)
  np.random.seed(args.seed)
  start = time.perf_counter()
  model = JointBert(args.model_dir, len(data["intents"]), len(data["slot_tags"]), args.dropout)
  model.train()
  model_load_seconds = time.perf_counter() - start
  collator = DataCollatorForTokenClassification(tokenizer, padding="longest")
  generator = torch.Generator()
  generator.manual_seed(args.seed)
  loader = torch.utils.data.DataLoader(features, batch_size=args.batch_size, shuffle=True,
                                       collate_fn=collator, generator=generator)
  total_steps = args.epochs * len(loader)
  optimizer, scheduler = _optimizer_and_schedule(args, model, total_steps)
  os.makedirs(args.save_dir, exist_ok=True)
  train_seconds = eval_seconds = io_seconds = 0.0
  evaluations, best = [], None
  step = 0
  for epoch in range(1, args.epochs + 1):
    start = time.perf_counter()
    for batch in loader:
      intent_logits, slot_logits = model(batch["input_ids"], batch["attention_mask"],
                                         batch["token_type_ids"])
      loss = joint_loss(intent_logits, slot_logits, batch["intent_labels"], batch["labels"])
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      scheduler.step()
      model.zero_grad()
      step += 1
    train_seconds += time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluate_dev(model, dev_batches, data["intents"], data["slot_tags"])
    eval_seconds += time.perf_counter() - start
    evaluations.append(dict(metrics, epoch=epoch, step=step))
    if best is None or metrics["whole_frame_accuracy"] > best["whole_frame_accuracy"]:
      best = evaluations[-1]
      start = time.perf_counter()
      torch.save(model.state_dict(), os.path.join(args.save_dir, "best_model.pt.tmp"))
      os.replace(os.path.join(args.save_dir, "best_model.pt.tmp"),
                 os.path.join(args.save_dir, "best_model.pt"))
      io_seconds += time.perf_counter() - start
  return {"steps": step, "examples_per_second": step and len(features) * args.epochs /
          train_seconds, "model_load_seconds": model_load_seconds,
          "train_seconds": train_seconds, "evaluation_seconds": eval_seconds,
          "evaluations": evaluations, "best": best, "checkpoint_io_seconds": io_seconds}


def infer(args, data, tokenizer) -> dict:
  torch.manual_seed(args.seed)
  model = JointBert(args.model_dir, len(data["intents"]), len(data["slot_tags"]), args.dropout)
  model.eval()
  intents, tags = data["intents"], data["slot_tags"]

  def decode(encoding, intent_logits, slot_logits, row, num_words):
    intent_probs = torch.softmax(intent_logits[row], dim=-1)
    intent_id = int(torch.argmax(intent_probs))
    slot_probs = torch.softmax(slot_logits[row], dim=-1)
    confidence, slot_ids = torch.max(slot_probs, dim=-1)
    word_tags, word_conf, previous = ["O"] * num_words, [1.0] * num_words, None
    for position, word_id in enumerate(encoding.word_ids(row)):
      if word_id is not None and word_id != previous:
        word_tags[word_id] = tags[int(slot_ids[position])]
        word_conf[word_id] = float(confidence[position])
      previous = word_id
    return {"intent": intents[intent_id], "probability": float(intent_probs[intent_id]),
            "tags": word_tags, "confidence": word_conf}

  def predict(texts):
    words = [text.split() for text in texts]
    encoding = tokenizer(words, is_split_into_words=True, truncation=True,
                         max_length=args.max_seq_length, padding=True, return_tensors="pt")
    intent_logits, slot_logits = model(encoding["input_ids"], encoding["attention_mask"],
                                       encoding["token_type_ids"])
    return [decode(encoding, intent_logits, slot_logits, row, len(w))
            for row, w in enumerate(words)]

  texts = data["latency_texts"]
  warm = args.latency_warmup
  result = {}
  with torch.no_grad():
    end_to_end = []
    for i, text in enumerate(texts):
      start = time.perf_counter()
      predict([text])
      if i >= warm:
        end_to_end.append(time.perf_counter() - start)
    encoded = [tokenizer([t.split()], is_split_into_words=True, truncation=True,
                         max_length=args.max_seq_length, return_tensors="pt") for t in texts]
    forward_only = []
    for i, enc in enumerate(encoded):
      start = time.perf_counter()
      model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
      if i >= warm:
        forward_only.append(time.perf_counter() - start)
    result["latency_end_to_end"] = latency_summary(end_to_end)
    result["latency_forward_only"] = latency_summary(forward_only)
    result["latency_mean_tokens"] = float(np.mean([e["input_ids"].shape[1]
                                                   for e in encoded[warm:]]))

    batch_size = args.infer_batch_size
    infer_texts = data["infer_texts"]
    chunks = [infer_texts[i:i + batch_size] for i in range(0, len(infer_texts), batch_size)]
    predict(chunks[0])  # warm-up call
    start = time.perf_counter()
    count = 0
    for chunk in chunks:
      count += len(predict(chunk))
    seconds = time.perf_counter() - start
    result["batched"] = {"batch_size": batch_size, "examples": count, "seconds": seconds,
                         "examples_per_second": count / seconds}
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--examples_json", required=True)
  parser.add_argument("--model_dir", required=True, help="HF model dir (config.json, "
                      "vocab.txt, model.safetensors), loaded with local_files_only=True.")
  parser.add_argument("--out", required=True)
  parser.add_argument("--paddings", default="longest",
                      help="Comma list of training runs: longest (HF default), max_length.")
  parser.add_argument("--skip_inference", action="store_true")
  parser.add_argument("--train_steps", type=int, default=60)
  parser.add_argument("--warmup_steps", type=int, default=10)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--learning_rate", type=float, default=2e-4)
  parser.add_argument("--weight_decay", type=float, default=0.01)
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--latency_warmup", type=int, default=10)
  parser.add_argument("--infer_batch_size", type=int, default=64)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--seed", type=int, default=42)
  parser.add_argument("--epochs", type=int, default=0, help="> 0: time to a dev-selected "
                      "model instead of the throughput runs (module docstring).")
  parser.add_argument("--save_dir", default="", help="--epochs: where the best model goes.")
  parser.add_argument("--launched_at", type=float, default=0.0, help="--epochs: the driver's "
                      "time.time() just before starting this process.")
  args = parser.parse_args()
  if args.epochs > 0:
    return main_time_to_result(args)

  torch.set_num_threads(args.threads)
  with open(args.examples_json, encoding="utf-8") as f:
    data = json.load(f)
  tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, local_files_only=True)
  tag_index = {t: i for i, t in enumerate(data["slot_tags"])}
  intent_index = {t: i for i, t in enumerate(data["intents"])}
  start = time.perf_counter()
  features = [encode_example(tokenizer, e, tag_index, intent_index, args.max_seq_length)
              for e in data["train"]]
  encode_seconds = time.perf_counter() - start
  report = {
      "system": "pytorch+transformers JointBERT (eager)",
      "settings": vars(args),
      "threads": {"torch.get_num_threads": torch.get_num_threads(),
                  "torch.get_num_interop_threads": torch.get_num_interop_threads(),
                  "set_by": f"torch.set_num_threads({args.threads})",
                  "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                  "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS")},
      "versions": {"python": platform.python_version(), "torch": torch.__version__,
                   "transformers": transformers.__version__, "numpy": np.__version__,
                   "mkldnn": torch.backends.mkldnn.is_available(),
                   "mkl": torch.backends.mkl.is_available()},
      "train_examples": len(features),
      "train_mean_pieces_per_example": float(np.mean([len(f["input_ids"]) for f in features])),
      "encode_seconds": encode_seconds,
      "train": {},
  }
  for padding in [p for p in args.paddings.split(",") if p]:
    if padding not in ("longest", "max_length"):
      parser.error(f"unknown padding {padding!r}")
    report["train"][padding] = train_run(args, data, tokenizer, features, padding)
  if not args.skip_inference:
    report["inference"] = infer(args, data, tokenizer)
  tmp = args.out + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  os.replace(tmp, args.out)
  return 0


def main_time_to_result(args) -> int:
  """The --epochs mode: fine-tune with per-epoch dev evaluation; writes the timing report."""
  torch.set_num_threads(args.threads)
  start = time.perf_counter()
  with open(args.examples_json, encoding="utf-8") as f:
    data = json.load(f)
  tokenizer = BertTokenizerFast.from_pretrained(args.model_dir, local_files_only=True)
  tag_index = {t: i for i, t in enumerate(data["slot_tags"])}
  intent_index = {t: i for i, t in enumerate(data["intents"])}
  features = [encode_example(tokenizer, e, tag_index, intent_index, args.max_seq_length)
              for e in data["train"]]
  dev_batches = encode_dev(tokenizer, data["dev"], 64, args.max_seq_length)
  data_seconds = time.perf_counter() - start
  run = fine_tune(args, data, tokenizer, features, dev_batches)
  report = {
      "system": "pytorch+transformers JointBERT (eager)",
      "settings": vars(args),
      "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
      "train_examples": len(features), "dev_examples": len(data["dev"]),
      "seconds": {
          "startup": (IMPORTED_AT - args.launched_at if args.launched_at else None),
          "model_load": run["model_load_seconds"],
          "data_preparation": data_seconds,
          "training_steps": run["train_seconds"],
          "evaluation": run["evaluation_seconds"],
          "checkpoint_export_io": run["checkpoint_io_seconds"],
      },
      "run": run,
  }
  tmp = args.out + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  os.replace(tmp, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
