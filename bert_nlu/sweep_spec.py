"""Sweep files: a base configuration, a grid, named variants and instances -> one argv per run.

A sweep file (`configs/sweeps/*.sweep`) is flagfile-like: its lines are `run_bert_nlu.py` flags,
grouped in sections. `#` starts a comment line; blank lines are ignored.

    # Header: `key = value` lines before the first section.
    name = mrpc_batch_size        # names <runs_root>/<name>/ (required; letters, digits, _ . -)
    instances = 3                 # runs per grid point; instance i trains with --seed=seed + i
    metric = accuracy             # what the report charts (default: the runs' selection metric)

    [flags]                       # every run: passed as written (a flagfile may come first)
    --flagfile=configs/glue_mrpc.cfg
    --num_train_epochs=3

    [grid]                        # one line per VALUE; lines of one flag are its values; the
    --train_batch_size=16         # grid is the product over flags, first flag slowest
    --train_batch_size=32
    --learning_rate=1e-4
    --learning_rate=2e-4

    [variant crf]                 # optional named configurations crossed with the grid: each
    --slot_crf                    # adds its own flags (an empty section = the base alone)

A run's argv is: [flags] lines, the variant's lines, the grid point's flags, then `--seed=`
(base seed + instance, where the base seed is the one the other flags resolve to). Later flags
win, as on a command line. Values are kept as written (`1e-4` stays `1e-4` in run names).
"""

import dataclasses
import itertools
import re
from typing import Dict, List, Optional, Sequence, Tuple

from bert_nlu.errors import InputError

HEADER_KEYS = ("name", "instances", "metric")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FLAG_LINE = re.compile(r"^--(no)?([A-Za-z_][A-Za-z0-9_]*)(=(.*))?$")
RESERVED_FLAGS = ("output_dir", "overwrite_output_dir", "intra_op_threads", "inter_op_threads")
RESERVED_NAMES = ("runs",)  # <runs_root>/runs holds the hashed run directories

# Short names of common flags in human-readable run names (others keep their flag name).
SHORT_FLAG_NAMES = {
    "train_batch_size": "bs", "learning_rate": "lr", "num_train_epochs": "ep", "seed": "seed",
    "glue_task": "", "warmup_proportion": "wu", "max_seq_length": "len",
}


@dataclasses.dataclass(frozen=True)
class GridAxis:
  """One flag of the grid and its values, in file order (values as written)."""
  flag: str
  values: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Variant:
  """A named configuration: flag lines added to every run of it."""
  name: str
  flags: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
  """A parsed sweep file.

  Attributes:
    name: the sweep's name (its directory under the runs root, its report's name).
    path: the file it was read from.
    flags: flag lines of every run.
    grid: the axes of the grid (empty = one point).
    variants: named configurations ([] = one unnamed configuration).
    instances: runs per grid point and variant, seeds base + 0 .. instances - 1.
    metric: the dev metric the report charts ("" = the runs' selection metric).
  """
  name: str
  path: str
  flags: Tuple[str, ...]
  grid: Tuple[GridAxis, ...] = ()
  variants: Tuple[Variant, ...] = ()
  instances: int = 1
  metric: str = ""


@dataclasses.dataclass(frozen=True)
class RunRequest:
  """One run of a sweep before its configuration is resolved.

  Attributes:
    name: human-readable name, unique in the sweep (e.g. "bs32_lr1e-4_i0").
    variant: the variant's name ("" without variants).
    grid_values: {flag: value as written} of its grid point.
    instance: 0-based instance index.
    argv: run_bert_nlu.py flags without --seed (added from the resolved base seed).
  """
  name: str
  variant: str
  grid_values: Dict[str, str]
  instance: int
  argv: Tuple[str, ...]


def parse_flag_line(line: str) -> Tuple[str, Optional[str]]:
  """("flag_name", value or None) of "--name=value", "--name" or "--noname" (value "false")."""
  match = _FLAG_LINE.match(line)
  if not match:
    raise ValueError(f"not a flag: {line!r} (expected --name=value, --name or --noname)")
  negated, name, _, value = match.groups()
  if negated and value is None:
    return name, "false"
  return (negated or "") + name, value


def read_sweep_file(path: str) -> SweepSpec:
  """Parses a sweep file (format in the module docstring).

  Raises:
    InputError: naming the file, line and problem (unknown section or key, a bad value, a grid
      line without a value, a duplicate variant, a reserved flag, a missing name).
  """
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(path, f"cannot read the sweep file: {e}") from None
  header: Dict[str, str] = {}
  flag_lines: List[str] = []
  grid: Dict[str, List[str]] = {}
  variants: Dict[str, List[str]] = {}
  section = None
  for number, raw in enumerate(lines, start=1):
    line = raw.strip()
    if not line or line.startswith("#"):
      continue
    where = f"{path}:{number}"
    if line.startswith("["):
      section = _parse_section(line, where, variants)
      continue
    if section is None:
      key, sep, value = (part.strip() for part in line.partition("="))
      if not sep or key not in HEADER_KEYS:
        raise InputError(where, f"expected a header line `key = value` with key in "
                         f"{', '.join(HEADER_KEYS)}, or a [section]; got {line!r}")
      header[key] = value
      continue
    try:
      flag, value = parse_flag_line(line)
    except ValueError as e:
      raise InputError(where, str(e)) from None
    if flag in RESERVED_FLAGS:
      raise InputError(where, f"--{flag} is set by the sweep engine (each run's directory is "
                       "named by its configuration's hash; threads by --parallel)")
    if section == "flags":
      flag_lines.append(line)
    elif section == "grid":
      if value is None:
        raise InputError(where, f"a grid line needs a value: --{flag}=VALUE (one line per value)")
      if value in grid.setdefault(flag, []):
        raise InputError(where, f"grid value --{flag}={value} is listed twice")
      grid[flag].append(value)
    else:
      variants[section[len("variant "):]].append(line)
  name = header.get("name", "")
  if not _NAME_PATTERN.match(name) or name in RESERVED_NAMES:
    raise InputError(path, f"the header needs `name = NAME` (letters, digits, _ . -; not "
                     f"{', '.join(RESERVED_NAMES)}), got {name!r}")
  instances = _positive_int(header.get("instances", "1"), f"{path}: instances")
  return SweepSpec(
      name=name, path=path, flags=tuple(flag_lines),
      grid=tuple(GridAxis(flag, tuple(values)) for flag, values in grid.items()),
      variants=tuple(Variant(n, tuple(v)) for n, v in variants.items()),
      instances=instances, metric=header.get("metric", ""))


def _parse_section(line: str, where: str, variants: Dict[str, List[str]]) -> str:
  if not line.endswith("]"):
    raise InputError(where, f"a section line must end with ']': {line!r}")
  section = " ".join(line[1:-1].split())
  if section in ("flags", "grid"):
    return section
  if section.startswith("variant "):
    name = section[len("variant "):]
    if not _NAME_PATTERN.match(name):
      raise InputError(where, f"variant name {name!r}: use letters, digits, _ . -")
    if name in variants:
      raise InputError(where, f"variant {name!r} is defined twice")
    variants[name] = []
    return section
  raise InputError(where, f"unknown section [{section}] (expected [flags], [grid] or "
                   "[variant NAME])")


def _positive_int(text: str, what: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise InputError(what, f"must be an integer, got {text!r}") from None
  if value < 1:
    raise InputError(what, f"must be >= 1, got {value}")
  return value


def grid_points(grid: Sequence[GridAxis]) -> List[Dict[str, str]]:
  """Every {flag: value} of the product of the axes; the first axis varies slowest."""
  return [dict(zip((axis.flag for axis in grid), values))
          for values in itertools.product(*(axis.values for axis in grid))]


def run_name(variant: str, grid_values: Dict[str, str], instance: int) -> str:
  """Human-readable, filesystem-safe name, e.g. "crf_bs32_lr1e-4_i0"."""
  parts = [variant] if variant else []
  for flag, value in grid_values.items():
    parts.append(SHORT_FLAG_NAMES.get(flag, flag) + value)
  parts.append(f"i{instance}")
  return re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts))


def _flag_key(line: str) -> Tuple[str, str]:
  """(flag name, value in a comparable spelling) of a flag line: `--name` is ("name", "true"),
  `--noname` ("name", "false"), numbers compare as numbers ("1e-4" and "0.0001" are one value)."""
  name, value = parse_flag_line(line)
  value = "true" if value is None else value
  try:
    return name, repr(float(value))
  except ValueError:
    return name, value.lower() if value.lower() in ("true", "false") else value


def _flagfile_lines(path: str, included_by: str, depth: int = 0) -> List[Tuple[str, str]]:
  """Flag lines of an absl flagfile and of the flagfiles it includes, in the order absl applies
  them, each with its origin "file:line". Comment (# or //) and blank lines are skipped."""
  if depth > 20:
    raise InputError(included_by, f"--flagfile={path}: flagfiles include each other in a cycle")
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(included_by, f"cannot read --flagfile={path}: {e}") from None
  result = []
  for number, raw in enumerate(lines, start=1):
    line = raw.strip()
    if not line.startswith("--"):
      continue
    where = f"{path}:{number}"
    if line.startswith("--flagfile="):
      result += _flagfile_lines(line[len("--flagfile="):], where, depth + 1)
      continue
    try:
      parse_flag_line(line)
    except ValueError as e:
      raise InputError(where, str(e)) from None
    result.append((line, where))
  return result


def check_flagfile_overrides(spec: SweepSpec) -> None:
  """Refuses a sweep in which a flagfile silently undoes a line of the sweep file.

  Later flags win, so in `[flags] --warmup_proportion=0` followed by a variant's
  `--flagfile=configs/glue_cola.cfg` (which sets --warmup_proportion=0.1 through
  configs/glue_base.cfg) the sweep's own line has no effect, although the file says it does.
  A flagfile's values may be overridden by lines after it (that is what a variant or a grid
  line is for), never the other way round. Relative flagfile paths are read from the current
  directory, as run_bert_nlu.py reads them.

  Raises:
    InputError: naming the sweep file, the line that has no effect, and the flagfile line that
      overrides it; "put the flagfile first".
  """
  problems: List[str] = []
  for variant in spec.variants or (Variant("", ()),):
    explicit: Dict[str, Tuple[str, str]] = {}  # flag -> (value, "section line")
    origin = ([("[flags]", line) for line in spec.flags]
              + [(f"[variant {variant.name}]", line) for line in variant.flags])
    for section, line in origin:
      if not line.startswith("--flagfile="):
        name, value = _flag_key(line)
        explicit[name] = (value, f"{section} {line}")
        continue
      for included, where in _flagfile_lines(line[len("--flagfile="):], f"{spec.path} {section}"):
        name, value = _flag_key(included)
        if name in explicit and explicit[name][0] != value:
          problem = (f"{explicit[name][1]} has no effect: {section} {line} after it sets "
                     f"{included} ({where})")
          if problem not in problems:
            problems.append(problem)
        explicit.pop(name, None)
  if problems:
    raise InputError(spec.path, "; ".join(problems) + ". Later flags win: put the flagfile "
                     "before the lines that change its values (e.g. first in [flags])")


def expand(spec: SweepSpec) -> List[RunRequest]:
  """The sweep's runs: variants x grid points x instances, in that nesting order."""
  variants = spec.variants or (Variant("", ()),)
  requests = []
  for variant in variants:
    for point in grid_points(spec.grid):
      point_argv = spec.flags + variant.flags + tuple(
          f"--{flag}={value}" for flag, value in point.items())
      for instance in range(spec.instances):
        requests.append(RunRequest(
            name=run_name(variant.name, point, instance), variant=variant.name,
            grid_values=dict(point), instance=instance, argv=point_argv))
  return requests
