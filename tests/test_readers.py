"""Tests for bert_nlu.data.readers on small corpora written here, and on the real corpora."""

import codecs
import collections
import json
import logging
import os

import hypothesis
import pytest

from bert_nlu.data import readers
from bert_nlu.errors import InputError

_REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_DATA_DIR = os.path.join(_REPO_DIR, os.pardir, "shared", "data")
REAL_DATA_DIR = os.path.normpath(os.environ.get("BERT_NLU_DATA_DIR", _DEFAULT_DATA_DIR))


# ---------------------------------------------------------------------------------------------
# Helpers.


def write_bytes(path, data: bytes) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return str(path)


def write_seq_split(split_dir, seq_in, seq_out, label) -> str:
  """Writes seq.in / seq.out / label (str -> UTF-8, bytes as they are); returns the dir."""
  for file_name, content in (("seq.in", seq_in), ("seq.out", seq_out), ("label", label)):
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    write_bytes(os.path.join(split_dir, file_name), data)
  return str(split_dir)


def assert_input_error(error_info, path, line, *problem_words):
  """Checks an InputError names `path` and `line` and says each of `problem_words`."""
  error = error_info.value
  assert isinstance(error, InputError)
  assert error.path == str(path)
  assert error.line == line
  message = str(error)
  expected_where = str(path) if line is None else f"{path}:{line}"
  assert message.startswith(expected_where + ": "), message
  for word in problem_words:
    assert word in error.problem, (word, message)


def snips_utterance(*chunks):
  """{"data": [...]} from (text,) or (text, entity) tuples."""
  data = []
  for chunk in chunks:
    item = {"text": chunk[0]}
    if len(chunk) > 1:
      item["entity"] = chunk[1]
    data.append(item)
  return {"data": data}


def write_snips_json(raw_dir, intent, file_name, utterances) -> str:
  text = json.dumps({intent: utterances}, indent=2, ensure_ascii=False)
  return write_bytes(os.path.join(raw_dir, intent, file_name), text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Decoding.


@pytest.mark.parametrize("data, expected_bad_bytes", [
    (b"plain ascii\n", 0),
    ("caf\u00e9 \u201cquoted\u201d \u4e2d\n".encode("utf-8"), 0),
    ("already \ufffd in the file".encode("utf-8"), 0),
    (b"\xff\xfe", 2),
    (b"a \xe2\x82 b", 2),  # Truncated 3-byte sequence: one U+FFFD for two bytes.
    (b"\xed\xa0\xbc\xed\xbd\x95", 6),  # CESU-8 surrogate pair as in the raw SNIPS JSON.
    (b"end \xc3", 1),
    (b"\x80\x80\x80 x \xf0\x9f\x98", 6),
])
def test_decode_counts_every_bad_byte_and_matches_errors_replace(data, expected_bad_bytes):
  text, bad_byte_offsets = readers.decode_utf8_counting_bad_bytes(data)
  assert text == data.decode("utf-8", errors="replace")
  assert len(bad_byte_offsets) == expected_bad_bytes


def _count_bad_bytes_with_error_handler(data: bytes) -> int:
  """Independent count: sums the spans Python's codec machinery reports as undecodable."""
  spans = []

  def record_and_replace(error):
    spans.append(error.end - error.start)
    return "\ufffd", error.end

  codecs.register_error("test_readers.count_bad_bytes", record_and_replace)
  data.decode("utf-8", errors="test_readers.count_bad_bytes")
  return sum(spans)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(hypothesis.strategies.lists(
    hypothesis.strategies.one_of(
        hypothesis.strategies.binary(max_size=6),
        hypothesis.strategies.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
    max_size=8).map(b"".join))
def test_decode_property_matches_codec_machinery(data):
  text, bad_byte_offsets = readers.decode_utf8_counting_bad_bytes(data)
  assert text == data.decode("utf-8", errors="replace")
  assert len(bad_byte_offsets) == _count_bad_bytes_with_error_handler(data)
  assert all(data[offset:offset + 1] != b"\n" for offset in bad_byte_offsets)


def test_decode_reports_offsets_and_line_numbers():
  data = b"ok\nbad \xff here\nok\n\xfe\xfe\n"
  _, offsets = readers.decode_utf8_counting_bad_bytes(data)
  assert offsets == (7, 17, 18)
  assert readers.line_numbers_of_offsets(data, offsets) == [2, 4]


def test_split_lines_handles_final_newline_and_crlf():
  assert readers.split_lines("") == []
  assert readers.split_lines("a\nb\n") == ["a", "b"]
  assert readers.split_lines("a\nb") == ["a", "b"]
  assert readers.split_lines("a\r\nb\r\n") == ["a", "b"]
  assert readers.split_lines("a\n\n") == ["a", ""]
  assert readers.split_lines("a\u2028b\x0cc\n") == ["a\u2028b\x0cc"]


# ---------------------------------------------------------------------------------------------
# read_seq_split: good input.


def test_read_seq_split_splits_on_any_whitespace(tmp_path):
  split_dir = write_seq_split(
      tmp_path / "train",
      seq_in=" play  the\tsong \r\nadd tobymac to  my playlist\n",
      seq_out="O O  B-music_item \r\nO B-artist O B-playlist_owner O \n",
      label=" PlayMusic \r\nAddToPlaylist")
  split = readers.read_seq_split(split_dir, "train")
  assert split.name == "train"
  assert split.bad_bytes == 0
  assert split.files == tuple(os.path.join(split_dir, f) for f in ("seq.in", "seq.out", "label"))
  first, second = split.examples
  assert first.words == ("play", "the", "song")
  assert first.slot_tags == ("O", "O", "B-music_item")
  assert first.intent == "PlayMusic"
  assert (first.guid, first.line, first.source) == ("train-0", 1,
                                                    os.path.join(split_dir, "seq.in"))
  assert second.words == ("add", "tobymac", "to", "my", "playlist")
  assert second.slot_tags == ("O", "B-artist", "O", "B-playlist_owner", "O")
  assert (second.guid, second.line, second.intent) == ("train-1", 2, "AddToPlaylist")


def test_read_seq_split_same_result_with_and_without_final_newline(tmp_path):
  with_newline = write_seq_split(tmp_path / "a", "a b\nc\n", "O O\nO\n", "x\ny\n")
  without_newline = write_seq_split(tmp_path / "b", "a b\nc", "O O\nO", "x\ny")
  left = readers.read_seq_split(with_newline, "dev").examples
  right = readers.read_seq_split(without_newline, "dev").examples
  assert [(e.words, e.slot_tags, e.intent) for e in left] == [
      (e.words, e.slot_tags, e.intent) for e in right]
  assert len(left) == 2


def test_read_seq_split_drops_byte_order_mark(tmp_path):
  split_dir = write_seq_split(tmp_path / "dev", "\ufeffhello\n", "\ufeffO\n", "\ufeffGreet\n")
  example, = readers.read_seq_split(split_dir, "dev").examples
  assert (example.words, example.slot_tags, example.intent) == (("hello",), ("O",), "Greet")


def test_read_seq_split_counts_bad_bytes_exactly_and_warns(tmp_path, caplog):
  split_dir = write_seq_split(
      tmp_path / "train",
      seq_in=b"ok line\nplay \xff\xfe now\n",
      seq_out=b"O O\nO O O\n",
      label=b"A\nB \xe2\x82\n")
  with caplog.at_level(logging.WARNING, logger=readers.__name__):
    split = readers.read_seq_split(split_dir, "train")
  assert split.bad_bytes == 4
  assert split.examples[1].words == ("play", "\ufffd\ufffd", "now")
  assert split.examples[1].intent == "B \ufffd"
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 2
  assert os.path.join(split_dir, "seq.in") in warnings[0]
  assert "2 byte(s)" in warnings[0] and "line(s) 2" in warnings[0]
  assert os.path.join(split_dir, "label") in warnings[1]


def test_read_seq_split_literal_replacement_character_is_not_a_bad_byte(tmp_path):
  split_dir = write_seq_split(tmp_path / "train", "a \ufffd\ufffd\n", "O O\n", "X\n")
  split = readers.read_seq_split(split_dir, "train")
  assert split.bad_bytes == 0
  assert split.examples[0].words == ("a", "\ufffd\ufffd")


# ---------------------------------------------------------------------------------------------
# read_seq_split: multi-intent policy.


def _multi_intent_split_dir(tmp_path):
  return write_seq_split(
      tmp_path / "train",
      seq_in="fares\nflights\nairline\n",
      seq_out="O\nO\nO\n",
      label="atis_flight#atis_airfare\natis_flight\natis_airline#atis_flight_no\n")


def test_multi_intent_atomic_keeps_joined_label_as_one_class(tmp_path):
  split = readers.read_seq_split(_multi_intent_split_dir(tmp_path), "train")
  assert split.intents() == [
      "atis_flight#atis_airfare", "atis_flight", "atis_airline#atis_flight_no"]


def test_multi_intent_first_keeps_first_intent(tmp_path):
  split = readers.read_seq_split(_multi_intent_split_dir(tmp_path), "train",
                                 multi_intent_policy="first")
  assert split.intents() == ["atis_flight", "atis_flight", "atis_airline"]


def test_multi_intent_multilabel_writes_each_set_canonically(tmp_path):
  split = readers.read_seq_split(_multi_intent_split_dir(tmp_path), "train",
                                 multi_intent_policy="multilabel")
  assert split.intents() == [
      "atis_airfare#atis_flight", "atis_flight", "atis_airline#atis_flight_no"]


def test_multi_intent_unknown_policy_raises_value_error(tmp_path):
  with pytest.raises(ValueError, match="multi_intent_policy 'all'"):
    readers.read_seq_split(_multi_intent_split_dir(tmp_path), "train", multi_intent_policy="all")
  with pytest.raises(ValueError, match="atomic, first"):
    readers.read_seq_corpus(str(tmp_path), multi_intent_policy="")


@pytest.mark.parametrize("label", ["atis_flight#", "#atis_flight", "a##b"])
def test_multi_intent_empty_part_is_an_input_error(tmp_path, label):
  split_dir = write_seq_split(tmp_path / "train", "x\ny\n", "O\nO\n", f"ok\n{label}\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "train")
  assert_input_error(error_info, os.path.join(split_dir, "label"), 2, "empty part", label)


# ---------------------------------------------------------------------------------------------
# read_seq_split: errors.


@pytest.mark.parametrize("missing", ["seq.in", "seq.out", "label"])
def test_missing_file(tmp_path, missing):
  split_dir = write_seq_split(tmp_path / "dev", "a\n", "O\n", "X\n")
  os.remove(os.path.join(split_dir, missing))
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "dev")
  assert_input_error(error_info, os.path.join(split_dir, missing), None,
                     "missing file", repr(missing), split_dir)


def test_different_line_counts(tmp_path):
  split_dir = write_seq_split(tmp_path / "dev", "a\nb\nc\n", "O\nO\n", "X\nY\nZ\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "dev")
  assert_input_error(error_info, os.path.join(split_dir, "seq.out"), 3, "line counts differ",
                     "seq.in has 3", "seq.out has 2", "label has 3")


def test_token_tag_count_mismatch_shows_counts_and_line_start(tmp_path):
  long_line = "fly " + "very " * 30 + "far"
  split_dir = write_seq_split(tmp_path / "test", f"ok\n{long_line}\n", "O\nO O\n", "X\nY\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "test")
  assert_input_error(error_info, os.path.join(split_dir, "seq.out"), 2,
                     "2 slot tags", f"{len(long_line.split())} words",
                     repr(long_line[:80]) + "...")
  assert long_line[:81] not in error_info.value.problem


def test_empty_split(tmp_path):
  split_dir = write_seq_split(tmp_path / "test", "", "", "")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "test")
  assert_input_error(error_info, os.path.join(split_dir, "seq.in"), None, "no examples")


@pytest.mark.parametrize("empty_utterance", ["", "   ", " \t "])
def test_empty_utterance_line(tmp_path, empty_utterance):
  split_dir = write_seq_split(tmp_path / "train", f"a\n{empty_utterance}\n", "O\n\n", "X\nY\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "train")
  assert_input_error(error_info, os.path.join(split_dir, "seq.in"), 2, "empty utterance")


def test_trailing_blank_line_is_an_empty_utterance(tmp_path):
  split_dir = write_seq_split(tmp_path / "train", "a\n\n", "O\n\n", "X\n\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "train")
  assert_input_error(error_info, os.path.join(split_dir, "seq.in"), 2, "empty utterance")


def test_empty_label_line(tmp_path):
  split_dir = write_seq_split(tmp_path / "train", "a\nb\n", "O\nO\n", "X\n  \n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "train")
  assert_input_error(error_info, os.path.join(split_dir, "label"), 2, "empty intent label")


@pytest.mark.parametrize("bad_tag", ["B-", "I-", "X-city", "b-city", "B_city", "city", "E-city"])
def test_invalid_slot_tag(tmp_path, bad_tag):
  split_dir = write_seq_split(tmp_path / "train", "a b\nc d\n", f"O O\nB-city {bad_tag}\n",
                              "X\nY\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_split(split_dir, "train")
  assert_input_error(error_info, os.path.join(split_dir, "seq.out"), 2, repr(bad_tag),
                     "tag 2", "B-<slot> / I-<slot>")


@pytest.mark.parametrize("tag, valid", [
    ("O", True), ("B-city", True), ("I-fromloc.city_name", True), ("B-x", True),
    ("o", False), ("B-", False), ("B", False), ("S-city", False), ("", False)])
def test_is_valid_slot_tag(tag, valid):
  assert readers.is_valid_slot_tag(tag) is valid


# ---------------------------------------------------------------------------------------------
# read_seq_corpus.


def test_read_seq_corpus_reads_splits_in_order(tmp_path):
  for split in ("train", "dev", "test"):
    write_seq_split(tmp_path / split, f"{split} a\n{split} b\n", "O O\nO O\n", "X\nY\n")
  corpus = readers.read_seq_corpus(str(tmp_path))
  assert list(corpus) == ["train", "dev", "test"]
  assert corpus["dev"].examples[1].guid == "dev-1"
  assert corpus["test"].examples[0].words == ("test", "a")


def test_read_seq_corpus_accepts_valid_for_dev(tmp_path):
  write_seq_split(tmp_path / "valid", "hi\n", "O\n", "X\n")
  corpus = readers.read_seq_corpus(str(tmp_path), splits=("dev",))
  assert corpus["dev"].name == "dev"
  assert corpus["dev"].examples[0].guid == "dev-0"
  assert corpus["dev"].files[0] == os.path.join(str(tmp_path), "valid", "seq.in")


def test_read_seq_corpus_prefers_dev_over_valid(tmp_path):
  write_seq_split(tmp_path / "valid", "from valid\n", "O O\n", "X\n")
  write_seq_split(tmp_path / "dev", "from dev\n", "O O\n", "X\n")
  corpus = readers.read_seq_corpus(str(tmp_path), splits=("dev",))
  assert corpus["dev"].examples[0].words == ("from", "dev")


def test_read_seq_corpus_missing_split_directory(tmp_path):
  write_seq_split(tmp_path / "train", "hi\n", "O\n", "X\n")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_corpus(str(tmp_path))
  assert_input_error(error_info, os.path.join(str(tmp_path), "dev"), None,
                     "missing split directory", "'dev'", "'valid'")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_corpus(str(tmp_path), splits=("train", "test"))
  assert_input_error(error_info, os.path.join(str(tmp_path), "test"), None,
                     "missing split directory", "'test'")


def test_read_seq_corpus_missing_corpus_directory(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(InputError) as error_info:
    readers.read_seq_corpus(missing)
  assert_input_error(error_info, missing, None, "not found")


# ---------------------------------------------------------------------------------------------
# SNIPS JSON: chunks -> BIO.


def test_snips_chunks_to_bio_multi_word_entity_and_glued_suffixes():
  words, tags = readers.snips_chunks_to_bio([
      ("Please add ", None), ("tobymac", "artist"), ("'s ", None), ("song", "music_item"),
      (" onto the ", None), ("Classical Moments in Movies", "playlist"), ("?", None)])
  assert words == ("Please", "add", "tobymac's", "song", "onto", "the", "Classical", "Moments",
                   "in", "Movies?")
  assert tags == ("O", "O", "B-artist", "B-music_item", "O", "O", "B-playlist", "I-playlist",
                  "I-playlist", "I-playlist")


def test_snips_chunks_to_bio_adjacent_entities_of_same_type_start_new_spans():
  words, tags = readers.snips_chunks_to_bio([
      ("play ", None), ("a b", "artist"), (" ", None), ("c", "artist"), ("\n", None)])
  assert words == ("play", "a", "b", "c")
  assert tags == ("O", "B-artist", "I-artist", "B-artist")


def test_snips_chunks_to_bio_entity_with_surrounding_spaces():
  words, tags = readers.snips_chunks_to_bio([
      ("weather ", None), ("in a year ", "timeRange"), ("  in ", None), (" Paris", "city")])
  assert words == ("weather", "in", "a", "year", "in", "Paris")
  assert tags == ("O", "B-timeRange", "I-timeRange", "I-timeRange", "O", "B-city")


def test_snips_chunks_to_bio_entity_starting_inside_a_word_is_absorbed():
  # As in the real data: city "Meers" + "," + state "MP" -> one word "Meers,MP".
  words, tags = readers.snips_chunks_to_bio([
      ("in ", None), ("Meers", "city"), (",", None), ("MP", "state")])
  assert words == ("in", "Meers,MP")
  assert tags == ("O", "B-city")
  # Entity "Live In L.a" glued to entity "Joseph Meyer": "Meyer" still starts the artist.
  words, tags = readers.snips_chunks_to_bio([("Live In L.a", "album"),
                                             ("Joseph Meyer", "artist"), (" please", None)])
  assert words == ("Live", "In", "L.aJoseph", "Meyer", "please")
  assert tags == ("B-album", "I-album", "I-album", "B-artist", "O")


def test_snips_chunks_to_bio_empty():
  assert readers.snips_chunks_to_bio([]) == ((), ())
  assert readers.snips_chunks_to_bio([(" \n", None)]) == ((), ())


# ---------------------------------------------------------------------------------------------
# SNIPS JSON: read_snips_json_split.


def _write_small_snips_raw(raw_dir):
  """Two intents (written in reverse order) with train and dev files; returns the paths."""
  weather_train = write_snips_json(raw_dir, "GetWeather", "train_GetWeather_full.json", [
      snips_utterance(("Weather in ",), ("New York City", "city"), ("?",)),
  ])
  music_train = write_snips_json(raw_dir, "AddToPlaylist", "train_AddToPlaylist_full.json", [
      snips_utterance(("Please add ",), ("tobymac", "artist"), ("'s ",), ("song", "music_item")),
      snips_utterance(("add it to ",), ("my", "playlist_owner"), (" list",)),
  ])
  write_snips_json(raw_dir, "GetWeather", "validate_GetWeather.json", [
      snips_utterance(("is it sunny",))])
  write_snips_json(raw_dir, "AddToPlaylist", "validate_AddToPlaylist.json", [
      snips_utterance(("add ",), ("jazz", "genre"))])
  return music_train, weather_train


def test_read_snips_json_split_orders_by_directory_and_converts_chunks(tmp_path):
  raw_dir = str(tmp_path / "snips-raw")
  music_train, weather_train = _write_small_snips_raw(raw_dir)
  split = readers.read_snips_json_split(raw_dir, "train")
  assert split.name == "train"
  assert split.bad_bytes == 0
  assert split.files == (music_train, weather_train)
  assert [e.guid for e in split.examples] == ["train-0", "train-1", "train-2"]
  assert [e.intent for e in split.examples] == ["AddToPlaylist", "AddToPlaylist", "GetWeather"]
  assert [(e.source, e.line) for e in split.examples] == [
      (music_train, 1), (music_train, 2), (weather_train, 1)]
  first, _, weather = split.examples
  assert first.words == ("Please", "add", "tobymac's", "song")
  assert first.slot_tags == ("O", "O", "B-artist", "B-music_item")
  assert weather.words == ("Weather", "in", "New", "York", "City?")
  assert weather.slot_tags == ("O", "O", "B-city", "I-city", "I-city")


def test_read_snips_json_split_dev_uses_validate_files(tmp_path):
  raw_dir = str(tmp_path / "snips-raw")
  _write_small_snips_raw(raw_dir)
  split = readers.read_snips_json_split(raw_dir, "dev")
  assert [os.path.basename(f) for f in split.files] == [
      "validate_AddToPlaylist.json", "validate_GetWeather.json"]
  assert [(e.guid, e.words, e.slot_tags) for e in split.examples] == [
      ("dev-0", ("add", "jazz"), ("O", "B-genre")),
      ("dev-1", ("is", "it", "sunny"), ("O", "O", "O"))]


def test_read_snips_json_split_counts_bad_bytes(tmp_path, caplog):
  raw_dir = str(tmp_path / "snips-raw")
  data = (b'{"PlayMusic": [\n  {"data": [{"text": "play "},\n'
          b'    {"text": "Pop Punk \xed\xa0\xbc\xed\xbd\x95", "entity": "playlist"}]}\n]}\n')
  path = write_bytes(os.path.join(raw_dir, "PlayMusic", "train_PlayMusic_full.json"), data)
  with caplog.at_level(logging.WARNING, logger=readers.__name__):
    split = readers.read_snips_json_split(raw_dir, "train")
  assert split.bad_bytes == 6
  example, = split.examples
  assert example.words == ("play", "Pop", "Punk", "\ufffd" * 6)
  assert example.slot_tags == ("O", "B-playlist", "I-playlist", "I-playlist")
  assert any(path in r.getMessage() and "line(s) 3" in r.getMessage() for r in caplog.records)


def test_read_snips_json_split_warns_about_entity_inside_a_word(tmp_path, caplog):
  raw_dir = str(tmp_path / "snips-raw")
  path = write_snips_json(raw_dir, "BookRestaurant", "train_BookRestaurant_full.json", [
      snips_utterance(("in ",), ("Meers", "city"), (",",), ("MP", "state"))])
  with caplog.at_level(logging.WARNING, logger=readers.__name__):
    split = readers.read_snips_json_split(raw_dir, "train")
  assert split.examples[0].slot_tags == ("O", "B-city")
  messages = [r.getMessage() for r in caplog.records]
  assert any(path in m and "utterance 0" in m and "'MP' (state)" in m for m in messages)


@pytest.mark.parametrize("name", ["test", "validate", "valid"])
def test_read_snips_json_split_unknown_split_names(tmp_path, name):
  with pytest.raises(ValueError, match="no test split" if name == "test" else "unknown"):
    readers.read_snips_json_split(str(tmp_path), name)


def test_read_snips_json_split_malformed_json_names_line(tmp_path):
  raw_dir = str(tmp_path / "snips-raw")
  path = write_bytes(os.path.join(raw_dir, "RateBook", "train_RateBook_full.json"),
                     b'{"RateBook": [\n  {"data": [{"text": "rate"}]},\n  {"data": [}\n]}\n')
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "train")
  assert_input_error(error_info, path, 3, "malformed JSON")


@pytest.mark.parametrize("utterance, problem", [
    ({"text": "no data"}, "'data'"),
    ({"data": "play it"}, "'data' must be a list"),
    ({"data": [{"entity": "city"}]}, "chunk 0"),
    ({"data": [{"text": "a"}, {"text": 3}]}, "chunk 1"),
    ({"data": [{"text": "a", "entity": ""}]}, "entity ''"),
    ({"data": [{"text": " "}]}, "no words"),
    (["not", "an", "object"], "'data'"),
])
def test_read_snips_json_split_wrong_structure_names_utterance(tmp_path, utterance, problem):
  raw_dir = str(tmp_path / "snips-raw")
  path = write_snips_json(raw_dir, "RateBook", "validate_RateBook.json",
                          [snips_utterance(("rate this",)), utterance])
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "dev")
  assert_input_error(error_info, path, None, "utterance 1", "'RateBook'", problem)


@pytest.mark.parametrize("document, problem", [
    ({"OtherIntent": []}, "key 'RateBook'"),
    ([], "key 'RateBook'"),
    ({"RateBook": {"data": []}}, "must be a list"),
])
def test_read_snips_json_split_wrong_top_level(tmp_path, document, problem):
  raw_dir = str(tmp_path / "snips-raw")
  path = write_bytes(os.path.join(raw_dir, "RateBook", "validate_RateBook.json"),
                     json.dumps(document).encode("utf-8"))
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "dev")
  assert_input_error(error_info, path, None, problem)


def test_read_snips_json_split_missing_file_and_directories(tmp_path):
  raw_dir = str(tmp_path / "snips-raw")
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "train")
  assert_input_error(error_info, raw_dir, None, "not found")
  os.makedirs(raw_dir)
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "train")
  assert_input_error(error_info, raw_dir, None, "no intent directories")
  write_snips_json(raw_dir, "GetWeather", "validate_GetWeather.json", [])
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "train")
  assert_input_error(error_info, os.path.join(raw_dir, "GetWeather", "train_GetWeather_full.json"),
                     None, "missing file", "'GetWeather'")
  with pytest.raises(InputError) as error_info:
    readers.read_snips_json_split(raw_dir, "dev")
  assert_input_error(error_info, raw_dir, None, "no examples")


# ---------------------------------------------------------------------------------------------
# label_inventory.


def test_label_inventory_is_sorted_and_distinct(tmp_path):
  split_dir = write_seq_split(tmp_path / "train", "a b\nc\nd e\n",
                              "B-x I-x\nO\nO B-a\n", "Zed\nAlpha\nZed\n")
  intents, tags = readers.label_inventory(readers.read_seq_split(split_dir, "train"))
  assert intents == ["Alpha", "Zed"]
  assert tags == ["B-a", "B-x", "I-x", "O"]


# ---------------------------------------------------------------------------------------------
# Real corpora (../shared/data or $BERT_NLU_DATA_DIR).


def _real_data_dir(*parts):
  path = os.path.join(REAL_DATA_DIR, *parts)
  if not os.path.isdir(path):
    pytest.skip(f"real corpus not found at {path} (set BERT_NLU_DATA_DIR to the folder holding "
                f"snips/, atis/ and snips-raw/)")
  return path


@pytest.mark.realdata
def test_real_snips():
  corpus = readers.read_seq_corpus(_real_data_dir("snips"))
  assert {name: len(split) for name, split in corpus.items()} == {
      "train": 13084, "dev": 700, "test": 700}
  train_intents, train_tags = readers.label_inventory(corpus["train"])
  assert len(train_intents) == 7
  assert len(train_tags) == 72
  for name in ("dev", "test"):
    intents, tags = readers.label_inventory(corpus[name])
    assert intents == train_intents
    assert len(tags) == 70 and set(tags) <= set(train_tags)
  # Train line 8427 holds six U+FFFD, but as valid UTF-8 characters: no bad bytes anywhere.
  assert [split.bad_bytes for split in corpus.values()] == [0, 0, 0]
  line_8427 = corpus["train"].examples[8426]
  assert line_8427.line == 8427
  assert "\ufffd" * 6 in line_8427.words
  assert collections.Counter(corpus["dev"].intents()) == {
      intent: 100 for intent in train_intents}


@pytest.mark.realdata
def test_real_atis():
  corpus = readers.read_seq_corpus(_real_data_dir("atis"))
  assert {name: len(split) for name, split in corpus.items()} == {
      "train": 4478, "dev": 500, "test": 893}
  assert [split.bad_bytes for split in corpus.values()] == [0, 0, 0]
  train_intents, train_tags = readers.label_inventory(corpus["train"])
  assert len(train_intents) == 21
  assert len(train_tags) == 120
  unseen = {name: collections.Counter(i for i in corpus[name].intents() if i not in train_intents)
            for name in ("dev", "test")}
  assert unseen["dev"] == {"atis_airfare#atis_flight_time": 1}
  assert unseen["test"] == {"atis_day_name": 2, "atis_airfare#atis_flight": 1,
                            "atis_flight#atis_airline": 1, "atis_flight_no#atis_airline": 1}
  first_intents, _ = readers.label_inventory(
      readers.read_seq_split(os.path.join(_real_data_dir("atis"), "train"), "train",
                             multi_intent_policy="first"))
  assert len(first_intents) == 17
  assert not any(readers.MULTI_INTENT_SEPARATOR in intent for intent in first_intents)


@pytest.mark.realdata
def test_real_snips_raw_json():
  raw_dir = _real_data_dir("snips-raw")
  train = readers.read_snips_json_split(raw_dir, "train")
  dev = readers.read_snips_json_split(raw_dir, "dev")
  assert (len(train), len(dev)) == (13784, 700)
  train_intents, _ = readers.label_inventory(train)
  assert train_intents == ["AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic",
                           "RateBook", "SearchCreativeWork", "SearchScreeningEvent"]
  assert readers.label_inventory(dev)[0] == train_intents
  # PlayMusic/train_PlayMusic_full.json: 6 stray bytes (a CESU-8 encoded emoji).
  assert (train.bad_bytes, dev.bad_bytes) == (6, 0)
  replaced = [e for e in train.examples if any("\ufffd" in word for word in e.words)]
  assert len(replaced) == 1 and replaced[0].intent == "PlayMusic"
  for example in train.examples + dev.examples:
    assert len(example.words) == len(example.slot_tags)

