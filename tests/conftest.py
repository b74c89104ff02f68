"""Shared fixtures: a tiny random BERT checkpoint and a tiny, trivially learnable NLU corpus."""

import os

import pytest

from bert_nlu.testing import corpus_vocabulary, make_corpus, make_tiny_bert  # noqa: F401


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
  return make_tiny_bert(str(tmp_path_factory.mktemp("tiny_bert")), corpus_vocabulary())


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory):
  return make_corpus(str(tmp_path_factory.mktemp("tiny_corpus")))


def _float_mask(input_mask):
  import tensorflow as tf2  # pylint: disable=g-import-not-at-top
  return tf2.cast(input_mask, tf2.float32)[:, :, tf2.newaxis]


def _masked_mean(values_and_mask_pair):
  """[batch, seq, hidden], [batch, seq, 1] -> the mean over real tokens [batch, 1, hidden]."""
  import tensorflow as tf2  # pylint: disable=g-import-not-at-top
  values, mask = values_and_mask_pair
  return tf2.reduce_sum(values * mask, 1, keepdims=True) / tf2.reduce_sum(mask, 1, keepdims=True)


def write_plain_keras_encoder(directory: str, vocab, hidden_size: int = 16,
                              num_layers: int = 2) -> str:
  """A toy TF-Hub text encoder written with plain Keras (not bert_nlu.hub_export), with only the
  public interface of the TF-Hub BERT encoders, saved the way Model Garden saves them (a Keras
  model with dict inputs/outputs, a vocab_file asset, a do_lower_case variable); returns its path.

  Embeddings, then `num_layers` "layers" that add the masked mean of all positions to each
  position (the only mixing across tokens) before a tanh dense layer, and a tanh pooler on
  position 0.
  """
  import tensorflow as tf2  # pylint: disable=g-import-not-at-top
  keras = tf2.keras
  inputs = {name: keras.Input(shape=(None,), dtype=tf2.int32, name=name)
            for name in ("input_word_ids", "input_mask", "input_type_ids")}
  x = (keras.layers.Embedding(len(vocab), hidden_size, name="word_embeddings")(
      inputs["input_word_ids"])
       + keras.layers.Embedding(2, hidden_size, name="type_embeddings")(inputs["input_type_ids"]))
  mask = keras.layers.Lambda(_float_mask)(inputs["input_mask"])  # [batch, seq, 1]
  mean_over_tokens = keras.layers.Lambda(_masked_mean)
  encoder_outputs = []
  for index in range(num_layers):
    x = x + mean_over_tokens([x, mask])  # [batch, seq, hidden]
    x = keras.layers.Dense(hidden_size, activation="tanh", name=f"transformer_{index}")(x) * mask
    x = keras.layers.Dropout(0.1)(x)
    encoder_outputs.append(x)
  pooled = keras.layers.Dense(hidden_size, activation="tanh", name="pooler")(x[:, 0])
  model = keras.Model(inputs, {"pooled_output": pooled, "sequence_output": x,
                               "encoder_outputs": encoder_outputs, "default": pooled})
  vocab_path = os.path.join(os.path.dirname(directory), "plain_vocab.txt")
  with open(vocab_path, "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
  model.vocab_file = tf2.saved_model.Asset(vocab_path)
  model.do_lower_case = tf2.Variable(True, trainable=False)
  model.save(directory, include_optimizer=False, save_format="tf")
  return directory


@pytest.fixture(scope="session")
def plain_keras_hub_module(tmp_path_factory):
  """`write_plain_keras_encoder` over the tiny corpus's vocabulary (hidden 16, 2 layers)."""
  return write_plain_keras_encoder(str(tmp_path_factory.mktemp("plain_hub") / "encoder"),
                                   corpus_vocabulary())


@pytest.fixture(scope="session")
def tiny_hub_module(tiny_bert_dir, tmp_path_factory):
  """The tiny BERT checkpoint exported by bert_nlu.hub_export (BertModel's variable names)."""
  from bert_nlu import hub_export  # pylint: disable=g-import-not-at-top
  return hub_export.export_hub_encoder(tiny_bert_dir,
                                       str(tmp_path_factory.mktemp("tiny_hub") / "encoder"))


@pytest.fixture
def poison_gradients(monkeypatch):
  """`poison_gradients(steps)`: from then on, graphs built by NluTask.build_losses keep the loss's
  value but multiply its gradient by 1e38 at the given global steps (read before the step's
  increment, so poisoning step s makes the update s -> s + 1 overflow): an overflow once
  multiplied by an fp16 loss scale, and a non-finite global gradient norm in float32."""
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  from bert_nlu.tasks.nlu import NluTask  # pylint: disable=g-import-not-at-top

  def poison(steps):
    real_build_losses = NluTask.build_losses

    def poisoned_build_losses(self, logits, features):
      loss, parts = real_build_losses(self, logits, features)
      step = tf.train.get_or_create_global_step()
      hit = tf.reduce_any(tf.equal(step, tf.constant(list(steps), tf.int64)))
      factor = tf.where(hit, tf.constant(1e38), tf.constant(1.0))
      return tf.stop_gradient(loss) + (loss - tf.stop_gradient(loss)) * factor, parts

    monkeypatch.setattr(NluTask, "build_losses", poisoned_build_losses)

  return poison


def real_data_dir():
  """The shared real corpora: $BERT_NLU_DATA_DIR or <repo>/../shared/data (may not exist)."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return os.environ.get("BERT_NLU_DATA_DIR") or os.path.join(repo, "..", "shared", "data")


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tiny_bert_dir, tiny_corpus_dir):
  """A finished tiny sweep (2 learning rates x 1 instance, trained 2 at a time) shared by the
  sweep, collector and HParams tests: (sweep file, runs root, planned runs)."""
  from bert_nlu import sweep, sweep_spec  # pylint: disable=g-import-not-at-top
  from bert_nlu.testing import write_tiny_sweep_file  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("tiny_sweep")
  sweep_file = write_tiny_sweep_file(str(root / "tiny.sweep"), "tiny", tiny_bert_dir,
                                     tiny_corpus_dir)
  runs_root = str(root / "runs")
  spec = sweep_spec.read_sweep_file(sweep_file)
  planned = sweep.plan_sweep(spec, runs_root)
  sweep.write_index(spec, planned, runs_root)
  sweep.run_all(planned, parallel=2, threads=sweep.thread_counts(2, 2), emit=lambda line: None)
  sweep.write_index(spec, planned, runs_root)
  return sweep_file, runs_root, planned
