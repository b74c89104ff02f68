"""The one import shim between TF 2.15 and bert-tensorflow 1.0.4.

bert-tensorflow's `modeling.py` still does `from tensorflow.contrib import layers as
contrib_layers` (only for `layer_norm`), and `tokenization.py` reads the absl flag
`preserve_unused_tokens`. This module registers `tf_slim.layers` under the old contrib name before
the first `import bert.modeling`, quiets TensorFlow's start-up deprecation noise (never real
errors), and hands out the three bert modules. Nothing else in the project imports `bert.*`.

It also hands out `crf` (tensorflow-addons' linear-chain CRF ops), imported without its
end-of-life banner.

Usage:
  from bert_nlu.compat import tf, modeling, optimization, tokenization, crf
"""

import logging
import os
import sys
import types
import warnings

# C++ start-up lines: oneDNN banners, the CPU instruction notice and, at ERROR level, the
# cuDNN/cuFFT/cuBLAS "Unable to register factory" lines of every import. Real failures still
# raise Python exceptions; run_bert_nlu.py --verbosity=1 (or TF_CPP_MIN_LOG_LEVEL=0) shows them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow.compat.v1 as tf  # noqa: E402
import tf_slim  # noqa: E402
from absl import flags as _absl_flags  # noqa: E402
from tensorflow.python.util import deprecation as _deprecation  # noqa: E402

# ~18 "deprecated" lines per graph build come from the compat.v1 API we use on purpose.
_deprecation._PRINT_DEPRECATION_WARNINGS = False  # pylint: disable=protected-access
logging.getLogger("tensorflow").setLevel(logging.ERROR)
# bert.modeling and our heads use tf.compat.v1.layers.dense on purpose (Google variable names).
warnings.filterwarnings("ignore", message=r"`tf\.layers\.dense` is deprecated")
tf.logging.set_verbosity(tf.logging.ERROR)


def _install_contrib_layers_alias() -> None:
  """Makes `from tensorflow.contrib import layers` resolve to `tf_slim.layers`."""
  if "tensorflow.contrib.layers" in sys.modules:
    return
  contrib = sys.modules.get("tensorflow.contrib")
  if contrib is None:
    contrib = types.ModuleType("tensorflow.contrib")
    contrib.__path__ = []  # a package, so submodule imports are looked up in sys.modules
    sys.modules["tensorflow.contrib"] = contrib
  contrib.layers = tf_slim.layers
  sys.modules["tensorflow.contrib.layers"] = tf_slim.layers


_install_contrib_layers_alias()

from bert import modeling  # noqa: E402  pylint: disable=g-import-not-at-top
from bert import optimization  # noqa: E402  pylint: disable=g-import-not-at-top
from bert import tokenization  # noqa: E402  pylint: disable=g-import-not-at-top

with warnings.catch_warnings():  # "TFA has entered a minimal maintenance ... mode" on import
  warnings.simplefilter("ignore")
  from tensorflow_addons.text import crf  # noqa: E402  pylint: disable=g-import-not-at-top


class MemoizedFullTokenizer(tokenization.FullTokenizer):
  """bert's FullTokenizer remembering the pieces of the texts it has tokenized.

  `tokenize` is a pure function of the text (given the vocabulary and casing), and NLU corpora
  tokenize word by word (`features.word_pieces`): SNIPS's 13,000 training utterances hold about
  12,000 distinct words in 120,000, so the length report and the feature conversion of a run
  mostly look pieces up. At most MAX_REMEMBERED texts are kept (long GLUE sentences rarely
  repeat); each call returns a new list.
  """

  MAX_REMEMBERED = 1 << 17

  def __init__(self, vocab_file: str, do_lower_case: bool = True):
    super().__init__(vocab_file=vocab_file, do_lower_case=do_lower_case)
    self._pieces = {}

  def tokenize(self, text):
    pieces = self._pieces.get(text)
    if pieces is None:
      pieces = tuple(super().tokenize(text))
      if len(self._pieces) < self.MAX_REMEMBERED:
        self._pieces[text] = pieces
    return list(pieces)


def make_tokenizer(vocab_file: str, do_lower_case: bool) -> MemoizedFullTokenizer:
  """Returns bert's FullTokenizer (memoized), usable outside an absl app.

  bert's tokenizer reads FLAGS.preserve_unused_tokens; when no absl app has parsed flags yet
  (library use, tests) the flags are marked parsed so that their defaults apply.
  """
  if not _absl_flags.FLAGS.is_parsed():
    _absl_flags.FLAGS.mark_as_parsed()
  return MemoizedFullTokenizer(vocab_file=vocab_file, do_lower_case=do_lower_case)


__all__ = ["tf", "modeling", "optimization", "tokenization", "crf", "make_tokenizer"]
