#!/usr/bin/env python
"""TF-Hub path vs checkpoint path on the converted all-MiniLM-L6-v2, side by side.

  nice -n 5 python bench/hub.py                  # MiniLM, SNIPS, 300 training steps per path
  python bench/hub.py --smoke                    # a tiny random BERT and corpus (a minute)

1. Exports the checkpoint with `bert_nlu.hub_export` (timed).
2. Equivalence on real sentences: the first --num_sentences SNIPS dev utterances, tokenized with
   the checkpoint's vocabulary and padded to the longest; BertModel (graph mode, restored from the
   checkpoint) against the exported module (hub.load, eager, training=False): max abs difference
   of pooled_output, sequence_output (real tokens) and every layer's output.
3. The same short SNIPS fine-tune through both paths (`run_bert_nlu.py --bert_dir=...` and
   `--hub_module=<export>`), one after the other, each in its own process with the same flags:
   dev metrics of the best (here: last) checkpoint and training examples/s.
Writes bench/results/hub.json (or --out). Timings are on whatever else the machine runs: the JSON
records the niceness and the load average at start and end.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from bert_nlu import io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

DEV_METRICS = ("intent_accuracy", "slot_f1", "whole_frame_accuracy")


def sentence_batch(corpus_dir: str, vocab_file: str, do_lower_case: bool, count: int):
  """int32 [count, longest] word ids, mask, segment ids of the first `count` dev utterances."""
  from bert_nlu.compat import make_tokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = make_tokenizer(vocab_file, do_lower_case)
  with open(os.path.join(corpus_dir, "dev", "seq.in"), encoding="utf-8") as f:
    sentences = [line.strip() for line in f if line.strip()][:count]
  pieces = [["[CLS]"] + tokenizer.tokenize(s) + ["[SEP]"] for s in sentences]
  longest = max(len(p) for p in pieces)
  word_ids = np.zeros([len(pieces), longest], np.int32)
  mask = np.zeros_like(word_ids)
  for row, tokens in enumerate(pieces):
    word_ids[row, :len(tokens)] = tokenizer.convert_tokens_to_ids(tokens)
    mask[row, :len(tokens)] = 1
  return word_ids, mask, np.zeros_like(word_ids)


def max_differences(bert_dir: str, module_dir: str, word_ids, mask, type_ids) -> dict:
  """Max abs differences hub module vs BertModel (sequence outputs over real tokens only)."""
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  from bert_nlu.testing import bert_model_outputs  # pylint: disable=g-import-not-at-top
  pooled, sequence, layers = bert_model_outputs(bert_dir, word_ids, mask, type_ids)
  outputs = hub.load(module_dir)({"input_word_ids": word_ids, "input_mask": mask,
                                  "input_type_ids": type_ids}, training=False)
  real = mask.astype(bool)
  return {
      "pooled_output": float(np.abs(outputs["pooled_output"].numpy() - pooled).max()),
      "sequence_output": float(np.abs(outputs["sequence_output"].numpy() - sequence)[real].max()),
      "encoder_outputs": [float(np.abs(ours.numpy() - theirs)[real].max())
                          for ours, theirs in zip(outputs["encoder_outputs"], layers)],
      "sentences": int(word_ids.shape[0]), "word_pieces": int(real.sum()),
      "pooled_output_abs_max": float(np.abs(pooled).max()),
  }


def train_path(name: str, encoder_flags, common_flags, output_dir: str) -> dict:
  """One run_bert_nlu.py process; returns its dev metrics, speed and wall time."""
  command = [sys.executable, os.path.join(REPO, "run_bert_nlu.py"), *encoder_flags,
             *common_flags, f"--output_dir={output_dir}"]
  start = time.time()
  process = subprocess.run(command, capture_output=True, text=True, check=False,
                           env=dict(os.environ, PYTHONPATH=REPO))
  wall = time.time() - start
  if process.returncode != 0:
    raise RuntimeError(f"{name}: exit {process.returncode}\n{process.stderr[-3000:]}")
  results = io_utils.read_json(os.path.join(output_dir, "eval_results.json"))
  dev = results["splits"]["dev"]
  return {
      "command": " ".join(["run_bert_nlu.py", *encoder_flags, *common_flags]),
      "dev": {key: round(100 * dev[key], 2) for key in DEV_METRICS},
      "train_examples_per_second": round(results["training"]["train_examples_per_second"], 2),
      "train_steps": results["training"]["num_train_steps"],
      "best_step": results["best_step"],
      "trainable_parameters": results["model"]["trainable_parameters"],
      "wall_seconds": round(wall, 1),
  }


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  cache = os.environ.get("BERT_NLU_CACHE", os.path.expanduser("~/.cache/bert_nlu"))
  parser.add_argument("--bert_dir", default=os.path.join(cache, "all-MiniLM-L6-v2"))
  data_root = os.environ.get("BERT_NLU_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
  parser.add_argument("--data_dir", default=os.path.join(data_root, "snips"))
  parser.add_argument("--steps", type=int, default=300, help="training steps per path")
  parser.add_argument("--train_batch_size", type=int, default=32)
  parser.add_argument("--learning_rate", type=float, default=2e-4)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--num_sentences", type=int, default=64)
  parser.add_argument("--smoke", action="store_true", help="tiny random BERT and corpus")
  parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "hub.json"))
  return parser.parse_args()


def main():
  args = parse_args()
  git = provenance.git_state()
  started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  load_start = os.getloadavg()
  work_dir = tempfile.mkdtemp(prefix="bench_hub_")
  try:
    bert_dir, data_dir = args.bert_dir, args.data_dir
    if args.smoke:
      from bert_nlu import testing  # pylint: disable=g-import-not-at-top
      bert_dir = testing.make_tiny_bert(os.path.join(work_dir, "bert"),
                                        testing.corpus_vocabulary())
      data_dir = testing.make_corpus(os.path.join(work_dir, "corpus"))
    from bert_nlu import hub_export  # pylint: disable=g-import-not-at-top
    module_dir = os.path.join(work_dir, "hub_module")
    start = time.time()
    hub_export.export_hub_encoder(bert_dir, module_dir)
    export_seconds = time.time() - start
    bert_config = io_utils.read_json(os.path.join(bert_dir, "bert_config.json"))
    do_lower_case = bool(bert_config.get("do_lower_case", True))
    batch = sentence_batch(data_dir, os.path.join(bert_dir, "vocab.txt"), do_lower_case,
                           args.num_sentences)
    equivalence = max_differences(bert_dir, module_dir, *batch)
    print(json.dumps({"equivalence": equivalence}, indent=1), flush=True)

    num_train = sum(1 for line in open(os.path.join(data_dir, "train", "label"),
                                       encoding="utf-8") if line.strip())
    epochs = args.steps * args.train_batch_size / num_train
    common = [f"--data_dir={data_dir}", f"--max_seq_length={args.max_seq_length}",
              f"--train_batch_size={args.train_batch_size}",
              f"--learning_rate={args.learning_rate}", f"--num_train_epochs={epochs:.6f}",
              f"--save_checkpoints_steps={args.steps}", "--save_summary_steps=50", "--seed=42"]
    paths = {}
    for name, encoder_flags in (("checkpoint", [f"--bert_dir={bert_dir}"]),
                                ("hub", [f"--hub_module={module_dir}"])):
      paths[name] = train_path(name, encoder_flags, common, os.path.join(work_dir, name))
      print(json.dumps({name: paths[name]}, indent=1), flush=True)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  result = {
      "what": "TF-Hub export of the checkpoint vs the checkpoint: output equivalence on real "
              "sentences, and the same short SNIPS fine-tune through both encoder paths",
      "model": "tiny random BERT (smoke)" if args.smoke else os.path.basename(bert_dir),
      "export_seconds": round(export_seconds, 1),
      "max_abs_difference": equivalence,
      "training": {"steps": args.steps, "train_batch_size": args.train_batch_size,
                   "learning_rate": args.learning_rate, "max_seq_length": args.max_seq_length,
                   "paths": paths},
      "conditions": {
          "niceness": os.nice(0),
          "load_average_1_5_15_at_start": [round(x, 2) for x in load_start],
          "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
          "note": "run under nice on a 2-core machine shared with other training runs: "
                  "examples/s compare the two paths within this run only",
      },
      "started": started,
      "git": git,
      "machine": provenance.machine(),
  }
  io_utils.atomic_write_json(args.out, result)
  print(args.out)


if __name__ == "__main__":
  main()
