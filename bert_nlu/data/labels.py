"""Label vocabularies (intents and slot tags), built from the training split and saved with the run.

The maps are saved as `label_maps.json` next to the TFRecord cache and in every run directory and
exported SavedModel, so that predicted ids always map back to the strings they were trained on.
Labels seen only in dev/test have no id: they are encoded as -1, excluded from the loss and, since
the model can never predict them, count as errors in the metrics.

Multi-intent labels join atomic intents with "#" ("atis_flight#atis_airfare"). With
`multilabel=True` a label is the SET of its atomic intents: the intent vocabulary holds atomic
intents only, and a set is written canonically as its sorted members joined by "#"
(`intent_set` / `join_intent_set`), so two labels are equal exactly when their sets are.

The factored slot head (`--slot_head=bio_type`) predicts a BIO position and a slot type per word;
`bio_vocabulary` derives both vocabularies, and the way back to tag ids, from the slot tags.
"""

import dataclasses
import functools
from typing import FrozenSet, Iterable, Sequence, Tuple

from bert_nlu import io_utils
from bert_nlu.errors import InputError

UNKNOWN_ID = -1
OUTSIDE_TAG = "O"
INTENT_SEPARATOR = "#"
# Position vocabulary of the factored slot head; the id of a position is its index.
BIO_POSITIONS = (OUTSIDE_TAG, "B", "I")


def intent_set(label: str) -> FrozenSet[str]:
  """The atomic intents of a possibly "#"-joined label: "a#b" -> {"a", "b"}.

  Raises:
    ValueError: a part around "#" is empty.
  """
  parts = label.split(INTENT_SEPARATOR)
  if not all(parts):
    raise ValueError(f"intent label {label!r} has an empty part around {INTENT_SEPARATOR!r}")
  return frozenset(parts)


def join_intent_set(intents: Iterable[str]) -> str:
  """The canonical label of a set of atomic intents: sorted, joined by "#" ({"b", "a"} -> "a#b")."""
  return INTENT_SEPARATOR.join(sorted(set(intents)))


def canonical_intent_label(label: str) -> str:
  """`label` as a set, written canonically ("b#a#b" -> "a#b")."""
  return join_intent_set(intent_set(label))


@dataclasses.dataclass(frozen=True)
class BioVocabulary:
  """Slot tags factored into a BIO position and a slot type, and the way back.

  Attributes:
    types: the slot types (the tags' suffixes: "B-artist" -> "artist"), sorted.
    tag_positions: per slot tag id, its position id in BIO_POSITIONS (0 for "O").
    tag_types: per slot tag id, its type id (UNKNOWN_ID for "O").
    combination_tags: [len(BIO_POSITIONS)][len(types)] the slot tag id of each (position, type):
      row 0 (position O) is "O" for every type; (B, t) is "B-t" and (I, t) "I-t" where the tag
      vocabulary has them. A combination it lacks maps to the nearest tag it has: the same type
      at the other position ("I-t" for a B-t never seen in training, "B-t" for an I-t), which
      always exists because the type came from one of them.
  """
  types: Tuple[str, ...]
  tag_positions: Tuple[int, ...]
  tag_types: Tuple[int, ...]
  combination_tags: Tuple[Tuple[int, ...], ...]


def bio_vocabulary(slot_tags: Sequence[str]) -> BioVocabulary:
  """Derives the position and type vocabularies of `slot_tags` ("O" first, then B-x / I-x).

  Raises:
    ValueError: slot_tags[0] is not "O", or a tag is neither "O" nor B-<type> / I-<type>.
  """
  if not slot_tags or slot_tags[0] != OUTSIDE_TAG:
    raise ValueError(f"slot tags must start with {OUTSIDE_TAG!r}, got {list(slot_tags)[:3]}")
  split = [(OUTSIDE_TAG, None)]
  for tag in slot_tags[1:]:
    position, _, slot_type = tag.partition("-")
    if position not in BIO_POSITIONS[1:] or not slot_type:
      raise ValueError(f"slot tag {tag!r} is neither 'O' nor of the form B-<type> / I-<type>")
    split.append((position, slot_type))
  types = tuple(sorted({slot_type for _, slot_type in split[1:]}))
  type_index = {slot_type: i for i, slot_type in enumerate(types)}
  tag_index = {tag: i for i, tag in enumerate(slot_tags)}
  combination_tags = [[0] * len(types)]
  for position, other in (("B", "I"), ("I", "B")):
    combination_tags.append([tag_index.get(f"{position}-{t}", tag_index.get(f"{other}-{t}"))
                             for t in types])
  return BioVocabulary(
      types=types,
      tag_positions=tuple(BIO_POSITIONS.index(position) for position, _ in split),
      tag_types=tuple(UNKNOWN_ID if t is None else type_index[t] for _, t in split),
      combination_tags=tuple(tuple(row) for row in combination_tags))


@dataclasses.dataclass(frozen=True)
class LabelMaps:
  """Ordered intent and slot-tag vocabularies; the position is the id.

  Attributes:
    intents: intent classes; with multilabel the atomic intents.
    slot_tags: BIO tags, "O" first.
    multilabel: labels are sets of atomic intents (see the module docstring).
  """
  intents: Tuple[str, ...]
  slot_tags: Tuple[str, ...]
  multilabel: bool = False

  @classmethod
  def from_labels(cls, intents: Iterable[str], slot_tag_lists: Iterable[Sequence[str]],
                  multilabel: bool = False):
    """Builds sorted vocabularies; "O" always gets slot id 0.

    With multilabel, the intent vocabulary is the atomic intents of every (joined) label.
    """
    tags = {tag for tags in slot_tag_lists for tag in tags}
    tags.discard(OUTSIDE_TAG)
    intents = set(intents)
    if multilabel:
      intents = {intent for label in intents for intent in intent_set(label)}
    return cls(intents=tuple(sorted(intents)),
               slot_tags=(OUTSIDE_TAG,) + tuple(sorted(tags)), multilabel=multilabel)

  def extended_by(self, other: "LabelMaps") -> "LabelMaps":
    """These labels in their order, then `other`'s labels that are not among them, in `other`'s
    order: every label of either, none dropped, and each of these keeps its id.

    Raises:
      ValueError: the two disagree on `multilabel` (atomic intents vs whole labels).
    """
    if self.multilabel != other.multilabel:
      raise ValueError(f"cannot extend label maps with multilabel={self.multilabel} by label "
                       f"maps with multilabel={other.multilabel}")
    return LabelMaps(
        intents=self.intents + tuple(i for i in other.intents if i not in self._intent_index),
        slot_tags=self.slot_tags + tuple(t for t in other.slot_tags if t not in self._tag_index),
        multilabel=self.multilabel)

  def intent_id(self, intent: str) -> int:
    return self._intent_index.get(intent, UNKNOWN_ID)

  def intent_set_ids(self, label: str) -> Tuple[int, ...]:
    """Sorted ids of the atomic intents of `label` (UNKNOWN_ID for one unseen in training)."""
    return tuple(sorted(self.intent_id(intent) for intent in intent_set(label)))

  def intent_label_of_ids(self, intent_ids: Iterable[int]) -> str:
    """The canonical label of a set of atomic intent ids."""
    return join_intent_set(self.intents[i] for i in intent_ids)

  def slot_tag_id(self, tag: str) -> int:
    return self._tag_index.get(tag, UNKNOWN_ID)

  @functools.cached_property
  def bio(self) -> BioVocabulary:
    """The slot tags factored into positions and types (`bio_vocabulary`)."""
    return bio_vocabulary(self.slot_tags)

  @property
  def slot_types(self) -> Tuple[str, ...]:
    """The slot types of the tags ("B-artist" -> "artist"), sorted."""
    return self.bio.types

  @functools.cached_property
  def _intent_index(self):
    return {label: i for i, label in enumerate(self.intents)}

  @functools.cached_property
  def _tag_index(self):
    return {label: i for i, label in enumerate(self.slot_tags)}

  def to_json_dict(self) -> dict:
    """{"intents", "slot_tags"} (+ "multilabel": true only when set, so older maps are equal)."""
    obj = {"intents": list(self.intents), "slot_tags": list(self.slot_tags)}
    if self.multilabel:
      obj["multilabel"] = True
    return obj

  @classmethod
  def from_json_dict(cls, obj: dict, source: str = "label_maps.json") -> "LabelMaps":
    try:
      intents, tags = obj["intents"], obj["slot_tags"]
    except (KeyError, TypeError) as e:
      raise InputError(source, f"not a label map (missing key {e})") from None
    if not intents or not tags or tags[0] != OUTSIDE_TAG:
      raise InputError(source, "label map needs >= 1 intent and slot tags starting with 'O'")
    if len(set(intents)) != len(intents) or len(set(tags)) != len(tags):
      raise InputError(source, "label map holds duplicate labels")
    return cls(intents=tuple(intents), slot_tags=tuple(tags),
               multilabel=bool(obj.get("multilabel", False)))

  def save(self, path: str) -> None:
    io_utils.atomic_write_json(path, self.to_json_dict())

  @classmethod
  def load(cls, path: str) -> "LabelMaps":
    return cls.from_json_dict(io_utils.read_json(path), source=path)
