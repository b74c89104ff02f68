"""Tiny BERT checkpoints and tiny NLU and GLUE corpora, built on the fly for tests and benchmarks.

Nothing here is used by training itself: these are fixtures with real file formats (Google TF
checkpoint, seq.in/seq.out/label corpus, GLUE TSV files) small enough to train in seconds on a CPU.
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


# Column counts of the real GLUE files (header included) per task and split: the layouts of
# bert_nlu.data.glue read positions, the counts come from the files' headers.
GLUE_COLUMN_COUNTS = {
    "CoLA": {"train": 4, "dev": 4}, "SST-2": {"train": 2, "dev": 2},
    "MRPC": {"train": 5, "dev": 5}, "STS-B": {"train": 10, "dev": 10},
    "QQP": {"train": 6, "dev": 6},
    "MNLI": {"train": 12, "dev": 16, "dev_mismatched": 16},
    "QNLI": {"train": 4, "dev": 4}, "RTE": {"train": 4, "dev": 4}, "WNLI": {"train": 4, "dev": 4},
    "SNLI": {"train": 11, "dev": 15, "test": 15},
}
# Score of an STS-B-like pair by the verb of its second sentence (a learnable regression target).
_VERB_SCORES = {"play": 4.5, "weather": 2.5, "book": 0.5}


def _tiny_sentence(rng: random.Random, verb: str) -> str:
  _, _, values = next(t for t in _TEMPLATES.values() if t[0] == verb)
  words = [verb] + [rng.choice(_FILLERS) for _ in range(rng.randint(0, 2))]
  words.append(rng.choice(values))
  return " ".join(words)


def glue_examples(task: str, size: int, seed: int = 0):
  """Learnable GLUE-like examples: [(text_a, text_b or None, label or score string)].

  The label is decided by the verb of the LAST sentence (text_b for pairs): play / weather /
  book map to the task's labels 0 / 1 / 2 (mod the number of labels), or to the scores 4.5 / 2.5
  / 0.5 (+ a little noise) for regression.
  """
  from bert_nlu.data.glue import GLUE_LAYOUTS  # pylint: disable=g-import-not-at-top
  layout = GLUE_LAYOUTS[task]
  verbs = sorted(_VERB_SCORES)  # book, play, weather
  rng = random.Random(seed)
  rows = []
  for _ in range(size):
    verb = rng.choice(verbs)
    if layout.is_pair:
      text_a, text_b = _tiny_sentence(rng, rng.choice(verbs)), _tiny_sentence(rng, verb)
    else:
      text_a, text_b = _tiny_sentence(rng, verb), None
    if layout.is_regression:
      target = f"{_VERB_SCORES[verb] + rng.uniform(-0.3, 0.3):.3f}"
    else:
      target = layout.labels[verbs.index(verb) % len(layout.labels)]
    rows.append((text_a, text_b, target))
  return rows


def glue_row(task: str, split: str, text_a: str, text_b, target: str, index: int):
  """The TSV fields of one labelled row in `task`'s layout (other columns hold placeholders)."""
  from bert_nlu.data.glue import GLUE_LAYOUTS  # pylint: disable=g-import-not-at-top
  layout = GLUE_LAYOUTS[task]
  fields = [f"x{index}"] * GLUE_COLUMN_COUNTS[task][split]
  fields[layout.text_a_column] = text_a
  if layout.is_pair:
    fields[layout.text_b_column] = text_b
  fields[layout.label_column] = target
  return fields


def write_glue_file(path: str, task: str, split: str, rows, byte_order_mark: bool = False) -> None:
  """Writes `rows` [(text_a, text_b, target)] as `task`'s TSV file for `split`."""
  from bert_nlu.data.glue import GLUE_LAYOUTS  # pylint: disable=g-import-not-at-top
  lines = []
  if GLUE_LAYOUTS[task].has_header:
    lines.append("\t".join(f"column_{i}" for i in range(GLUE_COLUMN_COUNTS[task][split])))
  lines += ["\t".join(glue_row(task, split, *row, index)) for index, row in enumerate(rows)]
  with open(path, "w", encoding="utf-8") as f:
    f.write(("\ufeff" if byte_order_mark else "") + "\n".join(lines) + "\n")


def make_glue_corpus(directory: str, task: str, sizes=(("train", 150), ("dev", 40)),
                     seed: int = 0) -> str:
  """Writes a tiny learnable corpus in `task`'s GLUE layout (MRPC with a byte order mark, as the
  real files); MNLI's "dev" is written to dev_matched.tsv. Returns `directory`."""
  from bert_nlu.data.glue import GLUE_LAYOUTS  # pylint: disable=g-import-not-at-top
  layout = GLUE_LAYOUTS[task]
  os.makedirs(directory, exist_ok=True)
  for offset, (split, size) in enumerate(sizes):
    write_glue_file(os.path.join(directory, layout.file_name(split)), task, split,
                    glue_examples(task, size, seed + offset), byte_order_mark=task == "MRPC")
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


def bert_model_outputs(bert_dir: str, word_ids, mask, type_ids):
  """bert-tensorflow's BertModel restored from <bert_dir>/bert_model.ckpt, run once in graph mode
  without dropout on int32 [batch, seq] arrays: (pooled [batch, H], sequence [batch, seq, H],
  [each layer's [batch, seq, H]]) as numpy arrays (the reference of the TF-Hub export)."""
  from bert_nlu import encoder  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    bert = encoder.build_bert_model(
        encoder.load_bert_config(os.path.join(bert_dir, "bert_config.json")), False,
        tf.constant(word_ids), tf.constant(mask), tf.constant(type_ids))
    tf.train.init_from_checkpoint(os.path.join(bert_dir, "bert_model.ckpt"), {"bert/": "bert/"})
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      return session.run([bert.get_pooled_output(), bert.get_sequence_output(),
                          bert.get_all_encoder_layers()])


def tiny_run_config(bert_dir: str, corpus_dir: str, output_dir: str, max_seq_length: int = 16,
                    eval_on_test: bool = False, profile=None, model_fields=None, data_fields=None,
                    glue_task: str = "", **train_fields):
  """A RunConfig for the tiny BERT and corpus; `train_fields` override TrainConfig defaults
  (batch 16, eval batch 32, learning rate 1e-3, seed 7); `model_fields` (a dict) sets ModelConfig
  variants (slot_crf, fp16, ...), `data_fields` DataConfig ones (multi_intent_policy, ...);
  `glue_task` makes it a GLUE run on a `make_glue_corpus`."""
  from bert_nlu import config as config_lib  # pylint: disable=g-import-not-at-top
  fields = dict(train_batch_size=16, eval_batch_size=32, learning_rate=1e-3, seed=7)
  fields.update(train_fields)
  return config_lib.RunConfig(
      output_dir=output_dir,
      data=config_lib.DataConfig(
          data_dir=corpus_dir, max_seq_length=max_seq_length,
          task=config_lib.GLUE_TASK if glue_task else config_lib.NLU_TASK, glue_task=glue_task,
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
# A tiny sentence classifier on a tiny BERT, for optimizer tests: its loss is a mean over examples,
# so the mean gradient of a batch is the mean of its halves' mean gradients.
TINY_CLASSIFIER_SEQ_LENGTH = 6
_TINY_CLASSIFIER_LABELS = 3
_TINY_CLASSIFIER_VOCAB = 20


def tiny_classifier_examples(num_examples: int, seed: int = 0):
  """(input_ids, input_mask) int32 [n, TINY_CLASSIFIER_SEQ_LENGTH] and labels int32 [n]."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(seed)
  length = TINY_CLASSIFIER_SEQ_LENGTH
  input_ids = rng.randint(5, _TINY_CLASSIFIER_VOCAB, size=(num_examples, length)).astype(np.int32)
  lengths = rng.randint(2, length + 1, size=num_examples)
  input_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
  labels = rng.randint(0, _TINY_CLASSIFIER_LABELS, size=num_examples).astype(np.int32)
  return input_ids * input_mask, input_mask, labels


def tiny_classifier_loss(input_ids, input_mask, labels):
  """Mean softmax cross-entropy over examples of a pooled-output classifier on a 2-layer H16
  BERT without dropout. Returns a float32 scalar."""
  from bert_nlu import encoder  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import modeling, tf  # pylint: disable=g-import-not-at-top
  config = modeling.BertConfig(
      vocab_size=_TINY_CLASSIFIER_VOCAB, hidden_size=16, num_hidden_layers=2,
      num_attention_heads=2, intermediate_size=32, hidden_act="gelu_exact",
      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=16,
      type_vocab_size=2)
  bert = encoder.build_bert_model(config, is_training=True, input_ids=input_ids,
                                  input_mask=input_mask, segment_ids=tf.zeros_like(input_ids))
  logits = tf.layers.dense(bert.get_pooled_output(), _TINY_CLASSIFIER_LABELS,
                           kernel_initializer=tf.truncated_normal_initializer(stddev=0.02),
                           name="classifier")
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                       logits=logits))


def tiny_classifier_initial_weights(seed: int = 3):
  """Initial values of every variable of `tiny_classifier_loss`'s model, by name (numpy)."""
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  length = TINY_CLASSIFIER_SEQ_LENGTH
  with tf.Graph().as_default():
    tf.set_random_seed(seed)
    tiny_classifier_loss(tf.zeros([1, length], tf.int32), tf.ones([1, length], tf.int32),
                         tf.zeros([1], tf.int32))
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      return {v.op.name: session.run(v) for v in tf.trainable_variables()}


# float32 sums in a different order (halves, replicas) differ in the last bits. Adam divides by
# sqrt(v) + 1e-6, so an element whose gradient cancels to ~1e-7 turns those bits into a visible
# difference: every element within 1e-4 (1% of one step at lr 1e-2), and per variable the mean
# difference within 1% of the mean change from the initial weights (+1e-7: the attention key bias
# has a zero gradient in exact arithmetic, so its "change" is rounding noise).
_WEIGHT_TOLERANCE = 1e-4
_MEAN_RELATIVE_TOLERANCE = 1e-2


def assert_same_trained_weights(expected, actual, initial):
  """Asserts two trainings of the tiny classifier reached the same weights (dicts name -> array)
  within the tolerances above, and that they moved away from `initial`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  assert sorted(expected) == sorted(actual)
  moved = max(np.max(np.abs(expected[name] - initial[name])) for name in expected)
  assert moved > 1e-3  # the comparison is between trained weights, not initial ones
  for name in expected:
    np.testing.assert_allclose(actual[name], expected[name], atol=_WEIGHT_TOLERANCE, rtol=0,
                               err_msg=name)
    change = np.mean(np.abs(expected[name] - initial[name]))
    assert (np.mean(np.abs(actual[name] - expected[name]))
            <= _MEAN_RELATIVE_TOLERANCE * change + 1e-7), name
