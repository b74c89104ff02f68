"""Tiny BERT checkpoints and tiny NLU corpora, built on the fly for tests and benchmarks.

Nothing here is used by training itself: these are fixtures with real file formats (Google TF
checkpoint, seq.in/seq.out/label corpus) small enough to train in seconds on a CPU.
"""

import json
import os
import random

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Intent is given by the verb; slot tags by the word: learnable in a few hundred steps.
_TEMPLATES = {
    "PlayMusic": ("play", "artist", ["adele", "queen", "muse", "abba"]),
    "GetWeather": ("weather", "city", ["paris", "rome", "oslo", "lima"]),
    "BookRestaurant": ("book", "restaurant", ["nobu", "zuma", "hakkasan", "roka"]),
}
_FILLERS = ["please", "now", "for", "me", "the", "in", "at"]


def make_corpus(directory: str, sizes=(("train", 150), ("dev", 30), ("test", 30)),
                seed: int = 0) -> str:
  """Writes a seq.in/seq.out/label corpus; returns `directory`."""
  rng = random.Random(seed)
  for split, size in sizes:
    os.makedirs(os.path.join(directory, split), exist_ok=True)
    lines_in, lines_out, labels = [], [], []
    for _ in range(size):
      intent = rng.choice(sorted(_TEMPLATES))
      verb, slot, values = _TEMPLATES[intent]
      words, tags = [verb], ["O"]
      for _ in range(rng.randint(0, 2)):
        words.append(rng.choice(_FILLERS))
        tags.append("O")
      value = rng.choice(values)
      words.append(value)
      tags.append(f"B-{slot}")
      if rng.random() < 0.5:  # a two-word value: "<value> <value>"
        words.append(rng.choice(values))
        tags.append(f"I-{slot}")
      for _ in range(rng.randint(0, 2)):
        words.append(rng.choice(_FILLERS))
        tags.append("O")
      lines_in.append(" ".join(words))
      lines_out.append(" ".join(tags))
      labels.append(intent)
    for name, lines in (("seq.in", lines_in), ("seq.out", lines_out), ("label", labels)):
      with open(os.path.join(directory, split, name), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
  return directory


def corpus_vocabulary():
  words = set(_FILLERS)
  for verb, _, values in _TEMPLATES.values():
    words.add(verb)
    words.update(values)
  # Word pieces so that some words split into several pieces ("hakkasan" -> "hak ##kas ##an").
  words.discard("hakkasan")
  return SPECIAL_TOKENS + sorted(words) + ["hak", "##kas", "##an"]


def make_tiny_bert(directory: str, vocab, hidden_size=32, num_layers=2, num_heads=2,
                   intermediate_size=64, max_position=64, seed=0, dropout=0.1) -> str:
  """Writes bert_config.json, vocab.txt and a random bert_model.ckpt; returns `directory`.

  dropout=0 makes training fully deterministic, also across a resume (TF's stateful dropout
  masks restart with the process).
  """
  from bert_nlu.compat import modeling, tf  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  config = {
      "vocab_size": len(vocab), "hidden_size": hidden_size, "num_hidden_layers": num_layers,
      "num_attention_heads": num_heads, "intermediate_size": intermediate_size,
      "hidden_act": "gelu_exact", "hidden_dropout_prob": dropout,
      "attention_probs_dropout_prob": dropout, "max_position_embeddings": max_position,
      "type_vocab_size": 2, "initializer_range": 0.02, "do_lower_case": True,
  }
  with open(os.path.join(directory, "bert_config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(directory, "vocab.txt"), "w") as f:
    f.write("\n".join(vocab) + "\n")
  with tf.Graph().as_default():
    tf.set_random_seed(seed)
    bert_config = modeling.BertConfig.from_dict(dict(config, hidden_act="gelu"))
    input_ids = tf.zeros([1, 4], tf.int32)
    modeling.BertModel(bert_config, is_training=False, input_ids=input_ids)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      tf.train.Saver().save(session, os.path.join(directory, "bert_model.ckpt"),
                            write_meta_graph=False)
  return directory


def tiny_run_config(bert_dir: str, corpus_dir: str, output_dir: str, max_seq_length: int = 16,
                    eval_on_test: bool = False, profile=None, model_fields=None, data_fields=None,
                    **train_fields):
  """A RunConfig for the tiny BERT and corpus; `train_fields` override TrainConfig defaults
  (batch 16, eval batch 32, learning rate 1e-3, seed 7); `model_fields` (a dict) sets ModelConfig
  variants (slot_crf, fp16, ...), `data_fields` DataConfig ones (multi_intent_policy, ...)."""
  from bert_nlu import config as config_lib  # pylint: disable=g-import-not-at-top
  fields = dict(train_batch_size=16, eval_batch_size=32, learning_rate=1e-3, seed=7)
  fields.update(train_fields)
  return config_lib.RunConfig(
      output_dir=output_dir,
      data=config_lib.DataConfig(data_dir=corpus_dir, max_seq_length=max_seq_length,
                                 **(data_fields or {})),
      model=config_lib.ModelConfig(
          bert_config_file=os.path.join(bert_dir, "bert_config.json"),
          vocab_file=os.path.join(bert_dir, "vocab.txt"),
          init_checkpoint=os.path.join(bert_dir, "bert_model.ckpt"), **(model_fields or {})),
      train=config_lib.TrainConfig(**fields),
      profile=profile or config_lib.ProfileConfig(),
      eval_on_test=eval_on_test)


def tiny_training_config(bert_dir: str, corpus_dir: str, output_dir: str, model_fields=None,
                         data_fields=None, **train_overrides):
  """`tiny_run_config` of the end-to-end training tests: 20 epochs, a checkpoint (and dev
  evaluation) every 50 steps, summaries every 10, 2 checkpoints kept, test split evaluated."""
  fields = dict(num_train_epochs=20, save_checkpoints_steps=50, save_summary_steps=10,
                keep_checkpoint_max=2)
  fields.update(train_overrides)
  return tiny_run_config(bert_dir, corpus_dir, output_dir, eval_on_test=True,
                         model_fields=model_fields, data_fields=data_fields, **fields)


def write_tiny_sweep_file(path: str, name: str, bert_dir: str, corpus_dir: str,
                          learning_rates=("1e-3", "2e-3"), instances: int = 1,
                          extra_flags=()) -> str:
  """Writes a sweep file (bert_nlu.sweep_spec format) of tiny runs over `learning_rates`: 2
  epochs of the tiny corpus at batch 16 (19 steps), a checkpoint and dev evaluation every 10
  steps; returns `path`."""
  lines = [f"name = {name}", f"instances = {instances}", "", "[flags]",
           f"--bert_dir={bert_dir}", f"--data_dir={corpus_dir}", "--max_seq_length=16",
           "--num_train_epochs=2", "--train_batch_size=16", "--save_checkpoints_steps=10",
           "--save_summary_steps=5", *extra_flags, "", "[grid]"]
  lines += [f"--learning_rate={rate}" for rate in learning_rates]
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return path
