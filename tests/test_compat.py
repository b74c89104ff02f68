"""bert_nlu.compat: the memoized tokenizer tokenizes as bert's own FullTokenizer."""

import os

from bert_nlu import compat
from bert_nlu.compat import tokenization


def _vocab(tmp_path):
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "play", "hak", "##kas", "##an", "in", "rome",
           "cafe", "!", ",", "##s", "the"]
  path = os.path.join(str(tmp_path), "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
  return path


TEXTS = ["play", "Hakkasan", "hakkas", "CAFÉ", "café!", "the,rome", "zzz", "", "\x00\x07",
         "play hakkasan in rome", "Rome's", "ＰＬＡＹ", "play"]


def test_memoized_pieces_equal_bert_tokenizer_pieces(tmp_path):
  path = _vocab(tmp_path)
  for lower in (True, False):
    memoized = compat.make_tokenizer(path, lower)
    plain = tokenization.FullTokenizer(vocab_file=path, do_lower_case=lower)
    for _ in range(2):  # the second pass answers from memory
      assert [memoized.tokenize(t) for t in TEXTS] == [plain.tokenize(t) for t in TEXTS]
    assert memoized.convert_tokens_to_ids(memoized.tokenize("play rome")) == [4, 9]


def test_callers_get_their_own_list(tmp_path):
  tokenizer = compat.make_tokenizer(_vocab(tmp_path), True)
  pieces = tokenizer.tokenize("hakkasan")
  pieces.append("[SEP]")
  assert tokenizer.tokenize("hakkasan") == ["hak", "##kas", "##an"]


def test_memory_is_bounded(tmp_path, monkeypatch):
  monkeypatch.setattr(compat.MemoizedFullTokenizer, "MAX_REMEMBERED", 3)
  tokenizer = compat.make_tokenizer(_vocab(tmp_path), True)
  words = ["play", "rome", "in", "the", "cafe"]
  assert [tokenizer.tokenize(w) for w in words] == [[w] for w in words]
  assert len(tokenizer._pieces) == 3  # pylint: disable=protected-access
  assert tokenizer.tokenize("cafe") == ["cafe"]  # past the bound: tokenized again, still right
