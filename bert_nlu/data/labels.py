"""Label vocabularies (intents and slot tags), built from the training split and saved with the run.

The maps are saved as `label_maps.json` next to the TFRecord cache and in every run directory and
exported SavedModel, so that predicted ids always map back to the strings they were trained on.
Labels seen only in dev/test have no id: they are encoded as -1, excluded from the loss and, since
the model can never predict them, count as errors in the metrics.
"""

import dataclasses
import functools
from typing import Iterable, Sequence, Tuple

from bert_nlu import io_utils
from bert_nlu.errors import InputError

UNKNOWN_ID = -1
OUTSIDE_TAG = "O"


@dataclasses.dataclass(frozen=True)
class LabelMaps:
  """Ordered intent and slot-tag vocabularies; the position is the id."""
  intents: Tuple[str, ...]
  slot_tags: Tuple[str, ...]

  @classmethod
  def from_labels(cls, intents: Iterable[str], slot_tag_lists: Iterable[Sequence[str]]):
    """Builds sorted vocabularies; "O" always gets slot id 0."""
    tags = {tag for tags in slot_tag_lists for tag in tags}
    tags.discard(OUTSIDE_TAG)
    return cls(intents=tuple(sorted(set(intents))),
               slot_tags=(OUTSIDE_TAG,) + tuple(sorted(tags)))

  def intent_id(self, intent: str) -> int:
    return self._intent_index.get(intent, UNKNOWN_ID)

  def slot_tag_id(self, tag: str) -> int:
    return self._tag_index.get(tag, UNKNOWN_ID)

  @functools.cached_property
  def _intent_index(self):
    return {label: i for i, label in enumerate(self.intents)}

  @functools.cached_property
  def _tag_index(self):
    return {label: i for i, label in enumerate(self.slot_tags)}

  def to_json_dict(self) -> dict:
    return {"intents": list(self.intents), "slot_tags": list(self.slot_tags)}

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
    return cls(intents=tuple(intents), slot_tags=tuple(tags))

  def save(self, path: str) -> None:
    io_utils.atomic_write_json(path, self.to_json_dict())

  @classmethod
  def load(cls, path: str) -> "LabelMaps":
    return cls.from_json_dict(io_utils.read_json(path), source=path)
