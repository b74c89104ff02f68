"""A tfprof profile reader: the old C++ `tfprof`/`profiler` command line, in pure Python.

Reads the `profile_N` files that `profiling.capture` writes (tfprof ProfileProto) and answers the
old tool's commands with TensorFlow's own tfprof engine (the `_pywrap_tfprof` binding that ships in
the TF wheel), so the reports, totals and options are the C++ tool's, without building it with
Bazel:

  python -m profiling.tfprof --profile_path=runs/x/profile/profile_7 \
      --command="scope -max_depth 30 -select micros -min_micros 100 -order_by micros"
  python -m profiling.tfprof --profile_path=runs/x/profile/profile_7       # interactive
  tfprof> op -select micros,occurrence -order_by micros -max_depth 10
  tfprof> set -order_by micros          # defaults for the following commands
  tfprof>                               # an empty line prints the current options
  tfprof> help
  tfprof> quit                          # or EOF (Ctrl-D)

Commands: scope | graph | op | code (views), advise, set, help, quit/exit. Options (after the
command, space-separated, as in the C++ tool): -max_depth -min_bytes -min_peak_bytes
-min_residual_bytes -min_output_bytes -min_micros -min_accelerator_micros -min_cpu_micros
-min_params -min_float_ops -min_occurrence -step -order_by -account_type_regexes
-start_name_regexes -trim_name_regexes -show_name_regexes -hide_name_regexes
-account_displayed_op_only [true|false] -select a,b,... -output stdout|none|file:outfile=PATH|
timeline:outfile=PATH|pprof:outfile=PATH (pprof: code view only). Defaults are the C++ tool's
(-max_depth 10 -order_by name -select micros -step -1 ...). `-step -1` averages the traced steps a
profile holds; `-step N` shows step N alone.

Library use:
  reader = ProfileReader(path)
  view, options = parse_command("op -select micros -max_depth 100", default_options())
  report = reader.profile(view, options)   # report.proto (GraphNodeProto, ...), report.text

TF keeps ONE tfprof state per process: loading a profile replaces it, and creating or deleting a
`tf.compat.v1.profiler.Profiler` object clobbers it (`profiling.capture` tells this module when
it does; anything else that does must call `forget_loaded_profile()`).
"""

import contextlib
import ctypes
import dataclasses
import os
import sys
import tempfile
from typing import IO, Dict, Iterator, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as bert_nlu.compat: no C++ INFO banners

from google.protobuf import message as protobuf_message
from tensorflow.core.profiler import tfprof_log_pb2
from tensorflow.core.profiler import tfprof_options_pb2
from tensorflow.core.profiler import tfprof_output_pb2
from tensorflow.python.util import _pywrap_tfprof  # pylint: disable=g-direct-tensorflow-import

PROMPT = "tfprof> "
GRAPH_VIEWS = ("scope", "graph")  # -> GraphNodeProto
MULTI_GRAPH_VIEWS = ("op", "code")  # -> MultiGraphNodeProto
VIEWS = GRAPH_VIEWS + MULTI_GRAPH_VIEWS
COMMANDS = VIEWS + ("advise", "set", "help")
QUIT_COMMANDS = ("quit", "exit")

# Integer options (the OptionsProto field is the option name without the dash).
INT_OPTIONS = ("max_depth", "min_bytes", "min_peak_bytes", "min_residual_bytes",
               "min_output_bytes", "min_micros", "min_accelerator_micros", "min_cpu_micros",
               "min_params", "min_float_ops", "min_occurrence", "step")
REGEX_LIST_OPTIONS = ("account_type_regexes", "start_name_regexes", "trim_name_regexes",
                      "show_name_regexes", "hide_name_regexes")
OPTION_NAMES = INT_OPTIONS + ("order_by",) + REGEX_LIST_OPTIONS + (
    "account_displayed_op_only", "select", "output")
ORDER_BY = ("name", "bytes", "peak_bytes", "residual_bytes", "output_bytes", "micros",
            "accelerator_micros", "cpu_micros", "params", "float_ops", "occurrence")
SELECTABLE = ("bytes", "peak_bytes", "residual_bytes", "output_bytes", "micros",
              "accelerator_micros", "cpu_micros", "params", "float_ops", "occurrence",
              "tensor_value", "device", "op_types", "input_shapes")
OUTPUT_TYPES = ("stdout", "none", "file", "timeline", "pprof")
_OUTPUT_TYPES_WITH_FILE = ("file", "timeline", "pprof")
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1

HELP_TEXT = """\
Commands (the C++ tfprof syntax):
  scope  profile organised by name scope (GraphNodeProto)
  graph  profile organised by graph inputs/outputs (GraphNodeProto)
  op     profile aggregated by operation type, e.g. MatMul (MultiGraphNodeProto)
  code   profile organised by the Python call stack that built the ops (MultiGraphNodeProto)
  advise automatic checks (expensive operations, ...)
  set    set options as defaults for the following commands
  help   this text;  quit / exit / EOF: leave;  empty line: print the current options
Options:
  -max_depth N  -min_bytes N  -min_peak_bytes N  -min_residual_bytes N  -min_output_bytes N
  -min_micros N  -min_accelerator_micros N  -min_cpu_micros N  -min_params N
  -min_float_ops N  -min_occurrence N
  -step N                 traced step to show (-1: average of the steps in the file)
  -order_by KEY           {order_by}
  -account_type_regexes R1,R2  -start_name_regexes ...  -trim_name_regexes ...
  -show_name_regexes ...  -hide_name_regexes ...
  -account_displayed_op_only [true|false]
  -select A,B,...         {select}
  -output TYPE            stdout | none | file:outfile=PATH | timeline:outfile=PATH |
                          pprof:outfile=PATH (code view only)
Example: scope -max_depth 30 -select micros -min_micros 100 -order_by micros
""".format(order_by=" ".join(ORDER_BY), select=",".join(SELECTABLE))


class CommandError(ValueError):
  """A command line the tfprof syntax does not accept (unknown command/option, bad value)."""


class ProfileFileError(IOError):
  """A profile file that is missing or not a tfprof ProfileProto."""


# ------------------------------------------------------------------------------------------------
# Options: the C++ tool's defaults, its command syntax, its option banner.


def default_options() -> tfprof_options_pb2.OptionsProto:
  """The C++ `profiler` tool's defaults (its command-line flag defaults)."""
  return tfprof_options_pb2.OptionsProto(
      max_depth=10, step=-1, order_by="name", account_type_regexes=[".*"],
      start_name_regexes=[".*"], show_name_regexes=[".*"], account_displayed_op_only=False,
      select=["micros"], output="stdout")


def parse_output_option(value: str) -> Tuple[str, Dict[str, str]]:
  """Parses `-output` ("stdout", "file:outfile=PATH", ...) into (type, {key: value}).

  Raises:
    CommandError: unknown type, malformed or missing `outfile`.
  """
  output_type, _, rest = value.partition(":")
  if output_type not in OUTPUT_TYPES:
    raise CommandError(f"unknown output type {output_type!r} in -output {value!r} "
                       f"(valid: {', '.join(OUTPUT_TYPES)})")
  settings = {}
  for pair in filter(None, rest.split(",")):
    key, sep, setting = pair.partition("=")
    if not sep or not key or not setting:
      raise CommandError(f"-output {value!r}: expected {output_type}:key=value,...")
    if key != "outfile" or output_type not in _OUTPUT_TYPES_WITH_FILE:
      raise CommandError(f"-output {value!r}: unknown setting {key!r} for output type "
                         f"{output_type!r}")
    settings[key] = setting
  if output_type in _OUTPUT_TYPES_WITH_FILE and "outfile" not in settings:
    raise CommandError(f"-output {value!r}: {output_type} needs a file, e.g. "
                       f"-output {output_type}:outfile=/tmp/report")
  return output_type, settings


def _strip_quotes(value: str) -> str:
  return value.strip("\"'")


def _comma_list(value: str) -> List[str]:
  return [item for item in _strip_quotes(value).split(",") if item]


def _parse_int(option: str, value: str) -> int:
  try:
    number = int(value)
  except ValueError:
    raise CommandError(f"option -{option} needs an integer, got {value!r}") from None
  limit = _INT32_MAX if option == "max_depth" else _INT64_MAX
  if not -limit - 1 <= number <= limit:
    raise CommandError(f"option -{option}: {value} is out of range")
  return number


def _parse_bool(value: str) -> Optional[bool]:
  lowered = value.lower()
  if lowered in ("true", "t", "yes", "y", "1"):
    return True
  if lowered in ("false", "f", "no", "n", "0"):
    return False
  return None


def _set_option(options: tfprof_options_pb2.OptionsProto, option: str, value: str) -> None:
  """Validates one option's value and writes it into `options`."""
  if option in INT_OPTIONS:
    setattr(options, option, _parse_int(option, value))
  elif option == "order_by":
    if value not in ORDER_BY:
      raise CommandError(f"-order_by {value!r} is not one of: {', '.join(ORDER_BY)}")
    options.order_by = value
  elif option in REGEX_LIST_OPTIONS:
    getattr(options, option)[:] = _comma_list(value)
  elif option == "select":
    requested = list(dict.fromkeys(_comma_list(value)))  # unique, in the order given
    unknown = [name for name in requested if name not in SELECTABLE]
    if unknown or not requested:
      raise CommandError(f"-select {value!r}: unknown {', '.join(unknown) or 'empty list'} "
                         f"(valid: {','.join(SELECTABLE)})")
    options.select[:] = requested
  elif option == "output":
    parse_output_option(value)
    options.output = value
  else:  # pragma: no cover - OPTION_NAMES and this function list the same names
    raise CommandError(f"unknown option -{option}")


def parse_command(line: str, defaults: tfprof_options_pb2.OptionsProto
                  ) -> Tuple[str, tfprof_options_pb2.OptionsProto]:
  """Parses one command line of the C++ tool's syntax.

  Args:
    line: e.g. "scope -max_depth 30 -select micros,bytes -order_by micros".
    defaults: the options that the line's options override (not modified).

  Returns:
    (command, options): command is one of COMMANDS or QUIT_COMMANDS; options is a new
    OptionsProto.

  Raises:
    CommandError: empty line, unknown command or option, missing or invalid value.
  """
  pieces = line.split()
  if not pieces:
    raise CommandError("empty command")
  command = pieces[0]
  if command not in COMMANDS + QUIT_COMMANDS:
    raise CommandError(f"unknown command {command!r} (valid: {', '.join(COMMANDS)}, quit)")
  options = tfprof_options_pb2.OptionsProto()
  options.CopyFrom(defaults)
  i = 1
  while i < len(pieces):
    piece = pieces[i]
    option = piece[1:] if piece.startswith("-") else ""
    if option not in OPTION_NAMES:
      raise CommandError(f"unknown option {piece!r} (valid: "
                         f"{' '.join('-' + name for name in OPTION_NAMES)})")
    has_value = i + 1 < len(pieces)
    if option == "account_displayed_op_only":
      # A bare flag (last, or followed by another option) means true.
      flag_value = _parse_bool(pieces[i + 1]) if has_value else None
      if has_value and flag_value is None and not pieces[i + 1].startswith("-"):
        raise CommandError(f"-account_displayed_op_only takes true/false, got {pieces[i + 1]!r}")
      options.account_displayed_op_only = True if flag_value is None else flag_value
      i += 1 if flag_value is None else 2
      continue
    if not has_value:
      raise CommandError(f"option {piece} needs a value")
    _set_option(options, option, pieces[i + 1])
    i += 2
  return command, options


def format_options(options: tfprof_options_pb2.OptionsProto) -> str:
  """The options as the C++ tool prints them (one `-name value` line each)."""
  lines = [f"{'-' + name:<28}{getattr(options, name)}" for name in INT_OPTIONS]
  lines.append(f"{'-order_by':<28}{options.order_by}")
  for name in REGEX_LIST_OPTIONS:
    lines.append(f"{'-' + name:<28}{','.join(getattr(options, name))}")
  lines.append(f"{'-account_displayed_op_only':<28}"
               f"{'true' if options.account_displayed_op_only else 'false'}")
  lines.append(f"{'-select':<28}{','.join(options.select)}")
  lines.append(f"{'-output':<28}{options.output or 'stdout'}")
  return "\n".join(lines) + "\n"


def validate_for_view(view: str, options: tfprof_options_pb2.OptionsProto) -> None:
  """Checks the combinations the C++ engine would reject (or crash on) for `view`.

  Raises:
    CommandError: e.g. pprof output outside the code view.
  """
  output_type, _ = parse_output_option(options.output or "stdout")
  if output_type == "pprof" and view != "code":
    raise CommandError("-output pprof works with the code view only")
  if output_type == "timeline" and view == "op":
    raise CommandError("-output timeline works with the scope, graph and code views")


# ------------------------------------------------------------------------------------------------
# Loading and running through TF's tfprof engine.

_loaded_profile: Dict[str, Optional[str]] = {"path": None}  # what TF's global state now holds


def forget_loaded_profile() -> None:
  """Tells this module that TF's process-wide tfprof state was replaced or deleted."""
  _loaded_profile["path"] = None


def read_profile_proto(profile_path: str) -> tfprof_log_pb2.ProfileProto:
  """Reads and parses a profile file.

  Raises:
    ProfileFileError: missing, unreadable, not a ProfileProto, or holding no graph nodes.
  """
  try:
    with open(profile_path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ProfileFileError(f"cannot read profile {profile_path}: {e.strerror}") from None
  profile = tfprof_log_pb2.ProfileProto()
  try:
    profile.ParseFromString(data)
  except protobuf_message.DecodeError:
    raise ProfileFileError(f"{profile_path} is not a tfprof profile (ProfileProto) file: "
                           "corrupt or another format") from None
  if not profile.nodes:
    raise ProfileFileError(f"{profile_path} holds no profiled graph nodes: not a profile_N "
                           "file written by profiling.capture (or tf.profiler.Profiler)?")
  return profile


def _libc_fflush() -> None:
  with contextlib.suppress(Exception):  # no C library handle (unusual platforms): nothing to do
    ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _captured_native_stdout() -> Iterator[List[str]]:
  """Captures what native code prints to file descriptor 1; yields a list that gets the text.

  tfprof prints its report with C printf; capturing it lets callers route it to any Python
  stream (and tests read it).
  """
  sys.stdout.flush()
  _libc_fflush()
  captured: List[str] = []
  with tempfile.TemporaryFile() as tmp:
    saved_fd = os.dup(1)
    os.dup2(tmp.fileno(), 1)
    try:
      yield captured
    finally:
      _libc_fflush()
      os.dup2(saved_fd, 1)
      os.close(saved_fd)
      tmp.seek(0)
      captured.append(tmp.read().decode("utf-8", errors="replace"))


@dataclasses.dataclass
class Report:
  """One view's result.

  Attributes:
    view: "scope", "graph", "op", "code" or "advise".
    proto: GraphNodeProto (scope, graph), MultiGraphNodeProto (op, code) or AdviceProto.
    text: what the C++ tool prints for it (empty for -output none).
  """
  view: str
  proto: protobuf_message.Message
  text: str


def _read_varint(data: bytes, position: int) -> Tuple[int, int]:
  value, shift = 0, 0
  while True:
    byte = data[position]
    position += 1
    value |= (byte & 0x7F) << shift
    if not byte & 0x80:
      return value, position
    shift += 7


def _split_field(data: bytes, field_number: int) -> Tuple[bytes, List[bytes]]:
  """Splits a serialized message into (its bytes without field `field_number`, that field's
  length-delimited payloads in order)."""
  rest, payloads = bytearray(), []
  position = 0
  while position < len(data):
    start = position
    key, position = _read_varint(data, position)
    wire_type = key & 7
    if wire_type == 0:
      _, position = _read_varint(data, position)
    elif wire_type == 1:
      position += 8
    elif wire_type == 5:
      position += 4
    elif wire_type == 2:
      length, position = _read_varint(data, position)
      if key >> 3 == field_number:
        payloads.append(data[position:position + length])
        position += length
        continue
      position += length
    else:
      raise protobuf_message.DecodeError(f"unsupported wire type {wire_type}")
    rest += data[start:position]
  return bytes(rest), payloads


def parse_deep_message(message_class, data: bytes) -> protobuf_message.Message:
  """Parses a tfprof result whose `children` nest deeper than protobuf's parser allows.

  The op view returns its op types as a chain (each one the child of the previous), one level per
  op type; a training graph has more than the parser's 100 levels. The `children` fields are
  split off and parsed level by level.
  """
  message = message_class()
  _parse_into(message, data, message_class.DESCRIPTOR.fields_by_name["children"].number)
  return message


def _parse_into(message: protobuf_message.Message, data: bytes, children_field: int) -> None:
  rest, children = _split_field(data, children_field)
  message.ParseFromString(rest)
  for child in children:  # built in place: copying a deep message would re-parse it
    _parse_into(message.children.add(), child, children_field)


def _empty_result_proto(view: str) -> protobuf_message.Message:
  if view in GRAPH_VIEWS:
    return tfprof_output_pb2.GraphNodeProto()
  if view in MULTI_GRAPH_VIEWS:
    return tfprof_output_pb2.MultiGraphNodeProto()
  return tfprof_output_pb2.AdviceProto()


def _all_checks_advisor_options() -> tfprof_options_pb2.AdvisorOptionsProto:
  options = tfprof_options_pb2.AdvisorOptionsProto()
  for checker in ("ExpensiveOperationChecker", "AcceleratorUtilizationChecker",
                  "OperationChecker"):
    options.checkers[checker].SetInParent()
  return options


class ProfileReader:
  """Answers tfprof views on one profile file (see the module docstring)."""

  def __init__(self, profile_path: str):
    """Validates the file and loads it into TF's tfprof engine.

    Raises:
      ProfileFileError: see `read_profile_proto`.
    """
    self.profile_path = profile_path
    self.profile_proto = read_profile_proto(profile_path)  # graph, code traces, run statistics
    self.steps = sorted(self.profile_proto.steps)
    self._load()

  def _load(self) -> None:
    if _loaded_profile["path"] != self.profile_path:
      _pywrap_tfprof.DeleteProfiler()  # loading over a living state aborts the process
      _pywrap_tfprof.ProfilerFromFile(self.profile_path.encode("utf-8"))
      _loaded_profile["path"] = self.profile_path

  def profile(self, view: str, options: tfprof_options_pb2.OptionsProto) -> Report:
    """Runs one view ("scope", "graph", "op", "code" or "advise").

    Args:
      view: the command.
      options: see `parse_command`; ignored for "advise" (all checks run).

    Returns:
      The Report; file outputs (file/timeline/pprof) are written by TF's engine.

    Raises:
      CommandError: unknown view or an option combination the engine rejects.
    """
    if view not in VIEWS + ("advise",):
      raise CommandError(f"{view!r} is not a view (valid: {', '.join(VIEWS)}, advise)")
    if view == "advise":
      serialized_options = _all_checks_advisor_options().SerializeToString()
    else:
      validate_for_view(view, options)
      if options.step >= 0 and options.step not in self.steps:
        raise CommandError(f"-step {options.step}: {self.profile_path} holds steps "
                           f"{', '.join(map(str, self.steps))} (or -1 for their average)")
      self._make_output_directory(options.output)
      serialized_options = options.SerializeToString()
    self._load()
    with _captured_native_stdout() as captured:
      serialized = _pywrap_tfprof.Profile(view.encode("utf-8"), serialized_options)
    proto = _empty_result_proto(view)
    try:
      proto.ParseFromString(serialized)
    except protobuf_message.DecodeError:  # nesting deeper than protobuf's limit (op view chain)
      proto = parse_deep_message(type(proto), serialized)
    return Report(view=view, proto=proto, text=captured[0])

  @staticmethod
  def _make_output_directory(output: str) -> None:
    _, settings = parse_output_option(output or "stdout")
    directory = os.path.dirname(settings.get("outfile", ""))
    if directory:
      os.makedirs(directory, exist_ok=True)


# ------------------------------------------------------------------------------------------------
# The command line: one command, or the interactive prompt.


def run_command(reader: ProfileReader, line: str, defaults: tfprof_options_pb2.OptionsProto,
                out: IO[str]) -> Tuple[Optional[Report], tfprof_options_pb2.OptionsProto]:
  """Runs one command line and prints its result to `out`.

  Args:
    reader: the loaded profile.
    line: a command; "" prints the current options.
    defaults: the current default options.
    out: where reports, help and notes go.

  Returns:
    (report or None, the defaults for the next command: changed only by `set`).

  Raises:
    CommandError: bad command or option (nothing was run).
  """
  if not line.strip():
    out.write(format_options(defaults))
    return None, defaults
  command, options = parse_command(line, defaults)
  if command == "set":
    return None, options
  if command == "help":
    out.write(HELP_TEXT)
    return None, defaults
  report = reader.profile(command, options)
  out.write(report.text)
  output_type, settings = parse_output_option(options.output or "stdout")
  if output_type == "file" and command != "advise":
    out.write(f"Report written to {settings['outfile']}\n")
  return report, defaults


def _enable_line_editing() -> None:
  """History and tab completion of commands and options at an interactive terminal."""
  try:
    import readline  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  words = list(COMMANDS + QUIT_COMMANDS) + ["-" + name for name in OPTION_NAMES]

  def complete(text, state):
    matches = [word for word in words if word.startswith(text)]
    return matches[state] if state < len(matches) else None

  readline.set_completer(complete)
  readline.set_completer_delims(" ")
  readline.parse_and_bind("tab: complete")


def _read_line(stdin: IO[str], out: IO[str]) -> Optional[str]:
  """One line from the user without its newline; None at EOF."""
  if stdin is sys.stdin and stdin.isatty() and out is sys.stdout:
    try:
      return input(PROMPT)
    except EOFError:
      return None
  out.write(PROMPT)
  out.flush()
  line = stdin.readline()
  return line.rstrip("\r\n") if line else None


def interactive(reader: ProfileReader, stdin: IO[str] = sys.stdin, out: IO[str] = sys.stdout,
                err: IO[str] = sys.stderr,
                defaults: Optional[tfprof_options_pb2.OptionsProto] = None) -> int:
  """The `tfprof> ` prompt: runs commands until quit/exit/EOF; errors are printed, not raised.

  Returns:
    The number of commands that failed.
  """
  if stdin is sys.stdin and stdin.isatty():
    _enable_line_editing()
  options = defaults if defaults is not None else default_options()
  failures = 0
  while True:
    line = _read_line(stdin, out)
    if line is None:
      out.write("\n")
      return failures
    if line.strip() in QUIT_COMMANDS:
      return failures
    try:
      _, options = run_command(reader, line, options, out)
    except CommandError as e:
      failures += 1
      err.write(f"E: {e}\n")
      err.write("   (type `help` for the syntax)\n")
    out.flush()


def main(argv: Sequence[str]) -> int:
  """Entry point; flags are defined in `run_main`."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (quote --command)")
  flag_values = flags.FLAGS
  if not flag_values.profile_path:
    raise app.UsageError("--profile_path is required (a profile_N file)")
  try:
    reader = ProfileReader(flag_values.profile_path)
  except ProfileFileError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if not flag_values.command:
    interactive(reader)  # errors were reported at the prompt, like the C++ tool
    return 0
  try:
    run_command(reader, flag_values.command, default_options(), sys.stdout)
  except CommandError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def run_main() -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("profile_path", "", "A profile_N file written by profiling.capture.")
  flags.DEFINE_string("command", "", "One command to run, e.g. \"scope -max_depth 30 -select "
                      "micros -min_micros 100 -order_by micros\"; empty: interactive prompt.")
  app.run(main)


if __name__ == "__main__":
  run_main()
