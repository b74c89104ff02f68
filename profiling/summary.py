"""Where a BERT training step spends its time: op time per model component, from a profile_N.

  python -m profiling.summary --profile_path=runs/x/profile/profile_7 \
      [--step=-1] [--png=reports/profile_summary.png] [--json=bench/results/profile_summary.json]

`--profile_path` may also be a profile directory (its newest profile_N is used).

Source of the numbers: the tfprof `scope` view of the file (TF's engine, as `profiling.tfprof`
shows it) over the whole graph, with no depth limit and no filtering. Every graph node's OWN
execution time (`GraphNodeProto.exec_micros`, not the `total_exec_micros` that also counts its
children) is counted once, so the component totals add up to the root's `total_exec_micros`, and
the shares to 100%. `--step -1` (default) averages the steps the file holds; `--step N` uses one.
Op time is the sum of op kernel durations: on 2 cores with inter-op parallelism it can exceed the
step's wall time, and kernels slowed down by other processes on the machine count longer.

Classification of a node (first matching rule wins):
  1. Gradient ops (under `gradients/`) count to the component of the forward op they
     differentiate, in the "backward" phase: `gradients/<forward name>_grad/...` -> <forward name>
     (so `gradients/bert/encoder/layer_0/attention/self/MatMul_grad/MatMul` is attention). Gradient
     ops without a `_grad` scope (the AddN that sums a tensor's gradients, ...) take the component
     of their first classifiable input.
  2. By name (of the forward op):
       `.../adam_m`, `.../adam_v` (Adam slots), `global_norm/...`, `clip_by_global_norm/...`
                                                                -> optimizer
       `LayerNorm` / `layer_norm` anywhere                      -> layer norm
       `bert/embeddings/...`                                    -> embeddings
       `.../attention/self/...`, `.../attention/output/...`     -> attention (Q/K/V, scores,
                                                                   softmax, output projection)
       `.../layer_N/intermediate/...`, `.../layer_N/output/...` -> feed-forward
       `bert/pooler/...`                                        -> pooler
       `intent_head/...`, `slot_head/...`                       -> heads + losses
       `Iterator*`, `*Dataset*`                                 -> input pipeline
  3. By the Python code that created the op (the profile's code traces, innermost frame first),
     for the top-level ops that carry no scope (`Mul_18`, `truediv`, ...):
       bert's `optimization.py` (AdamWeightDecayOptimizer.apply_gradients) or
       `bert_nlu/optimization.py` (schedule, clipping, step increment) -> optimizer ("update")
       `bert_nlu/tasks/*.py` (the losses)                              -> heads + losses
       `bert_nlu/data/input_pipeline.py`                               -> input pipeline
  4. Anything else -> other (attention-mask and reshape glue under `bert/encoder`, global-step
     bookkeeping, summaries, constant folding, fetch/`_retval` nodes).
Phases: "backward" = rule 1; "update" = optimizer; "input" = input pipeline; "other" = other;
"forward" = the rest. The dense conversion of the embedding table's sparse gradient happens inside
the optimizer (it does `tf.square(grad)` on an IndexedSlices), so it counts as optimizer time.
"""

import dataclasses
import json
import math
import os
import re
import sys
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from profiling import tfprof

EMBEDDINGS = "embeddings"
ATTENTION = "attention"
FEED_FORWARD = "feed-forward"
LAYER_NORM = "layer norm"
POOLER = "pooler"
HEADS = "heads + losses"
OPTIMIZER = "optimizer"
INPUT_PIPELINE = "input pipeline"
OTHER = "other"
COMPONENTS = (EMBEDDINGS, ATTENTION, FEED_FORWARD, LAYER_NORM, POOLER, HEADS, OPTIMIZER,
              INPUT_PIPELINE, OTHER)
MODEL_COMPONENTS = (EMBEDDINGS, ATTENTION, FEED_FORWARD, LAYER_NORM, POOLER, HEADS)
PHASES = ("forward", "backward", "update", "input", "other")

_GRADIENT_PREFIX = re.compile(r"^(gradients(_\d+)?/)+")
_NAME_RULES: Tuple[Tuple[re.Pattern, str], ...] = (
    (re.compile(r"/adam_[mv](/|$)|^(global_norm|clip_by_global_norm)(/|$)"), OPTIMIZER),
    (re.compile(r"LayerNorm|layer_norm"), LAYER_NORM),
    (re.compile(r"^bert/embeddings(/|$)"), EMBEDDINGS),
    (re.compile(r"/attention/(self|output)(/|$)"), ATTENTION),
    (re.compile(r"/layer_\d+/(intermediate|output)(/|$)"), FEED_FORWARD),
    (re.compile(r"^bert/pooler(/|$)"), POOLER),
    (re.compile(r"^(intent_head|slot_head)(/|$)"), HEADS),
    (re.compile(r"^Iterator|Dataset"), INPUT_PIPELINE),
)
# (pattern of the creating Python file, component); matched against frames innermost first.
_CODE_RULES: Tuple[Tuple[re.Pattern, str], ...] = (
    (re.compile(r"/bert/optimization\.py$"), OPTIMIZER),  # bert-tensorflow's optimizer
    (re.compile(r"/bert_nlu/optimization\.py$"), OPTIMIZER),
    (re.compile(r"/bert_nlu/data/input_pipeline\.py$"), INPUT_PIPELINE),
    (re.compile(r"/bert_nlu/tasks/[^/]+\.py$"), HEADS),
)
_MAX_INPUT_HOPS = 8


@dataclasses.dataclass(frozen=True)
class NodeInfo:
  """What the classifier needs to know of a graph node besides its name.

  Attributes:
    op: op type, e.g. "MatMul".
    inputs: names of the input nodes, in input order.
    code_files: files of the Python stack that created the op, innermost first.
  """
  op: str = ""
  inputs: Tuple[str, ...] = ()
  code_files: Tuple[str, ...] = ()


def node_index(profile) -> Dict[str, NodeInfo]:
  """name -> NodeInfo for every node of a tfprof ProfileProto."""
  names = {node_id: node.name for node_id, node in profile.nodes.items()}
  index = {}
  for node in profile.nodes.values():
    inputs = tuple(names[node_id] for _, node_id in sorted(node.inputs.items())
                   if node_id in names)
    files = tuple(profile.id_to_string.get(trace.file_id, trace.file)
                  for trace in reversed(node.trace.traces))
    index[node.name] = NodeInfo(op=node.op, inputs=inputs, code_files=files)
  return index


def forward_op_name(name: str) -> Tuple[str, bool]:
  """(name of the forward op a node belongs to, whether the node is a gradient op).

  `gradients/bert/x/MatMul_grad/MatMul_1` -> (`bert/x/MatMul`, True); a gradient op without a
  `_grad` scope keeps its name minus the `gradients/` prefix; other names are returned unchanged.
  """
  stripped = _GRADIENT_PREFIX.sub("", name)
  if stripped == name:
    return name, False
  segments = stripped.split("/")
  for i, segment in enumerate(segments):
    if segment.endswith("_grad"):
      return "/".join(segments[:i] + [segment[:-len("_grad")]]), True
  return stripped, True


def classify_by_name(name: str) -> Optional[str]:
  """The component that rule 2 (names) gives, or None."""
  for pattern, component in _NAME_RULES:
    if pattern.search(name):
      return component
  return None


def classify_by_code(code_files: Sequence[str]) -> Optional[str]:
  """The component that rule 3 (creating Python file, innermost first) gives, or None."""
  for path in code_files:
    normalized = path.replace(os.sep, "/")
    for pattern, component in _CODE_RULES:
      if pattern.search(normalized):
        return component
  return None


def _classify_forward(name: str, index: Mapping[str, NodeInfo]) -> Optional[str]:
  component = classify_by_name(name)
  if component is None and name in index:
    component = classify_by_code(index[name].code_files)
  return component


def _classify_gradient(name: str, index: Mapping[str, NodeInfo], hops: int) -> Optional[str]:
  forward, _ = forward_op_name(name)
  component = _classify_forward(forward, index)
  if component is not None or hops >= _MAX_INPUT_HOPS or name not in index:
    return component
  for input_name in index[name].inputs:
    if forward_op_name(input_name)[1]:
      component = _classify_gradient(input_name, index, hops + 1)
      if component is not None:
        return component
  return None


def classify_node(name: str, index: Mapping[str, NodeInfo]) -> Tuple[str, str]:
  """(component, phase) of one node; see the module docstring for the rules.

  Args:
    name: the node's name as the profile reports it.
    index: `node_index` of the profile (nodes missing from it are classified by name only).
  """
  _, is_gradient = forward_op_name(name)
  if is_gradient:
    return _classify_gradient(name, index, 0) or OTHER, "backward"
  component = _classify_forward(name, index) or OTHER
  phase = {OPTIMIZER: "update", INPUT_PIPELINE: "input", OTHER: "other"}.get(component, "forward")
  return component, phase


def full_scope_options(step: int = -1):
  """tfprof options that list every node of the scope view, unfiltered, without printing."""
  options = tfprof.default_options()
  options.max_depth = 1_000_000
  options.step = step
  options.select[:] = ["micros"]
  options.output = "none"
  return options


def node_exec_micros(root) -> Dict[str, int]:
  """name -> own exec_micros of every node of a GraphNodeProto tree (root included)."""
  micros: Dict[str, int] = {}
  stack = [root]
  while stack:
    node = stack.pop()
    micros[node.name] = micros.get(node.name, 0) + node.exec_micros
    stack.extend(node.children)
  return micros


@dataclasses.dataclass
class Summary:
  """Op time per component.

  Attributes:
    profile_path, step: the source (step -1 = average of the file's steps).
    steps: the traced steps the file holds.
    total_micros: op time of the step (root total_exec_micros of the scope view).
    micros: {component: {phase: micros}} (components and phases with no time are absent).
    top_nodes: {component: [(node name, micros), ...]} the most expensive nodes, descending.
  """
  profile_path: str
  step: int
  steps: List[int]
  total_micros: int
  micros: Dict[str, Dict[str, int]]
  top_nodes: Dict[str, List[Tuple[str, int]]]

  def component_micros(self, component: str) -> int:
    return sum(self.micros.get(component, {}).values())

  def phase_micros(self, phase: str) -> int:
    return sum(phases.get(phase, 0) for phases in self.micros.values())

  def share(self, micros: int) -> float:
    return 100.0 * micros / self.total_micros if self.total_micros else 0.0


def summarize_micros(node_micros: Mapping[str, int], index: Mapping[str, NodeInfo],
                     top_n: int = 5) -> Tuple[Dict[str, Dict[str, int]],
                                              Dict[str, List[Tuple[str, int]]]]:
  """Groups per-node micros by (component, phase); returns (micros, top nodes per component)."""
  micros: Dict[str, Dict[str, int]] = {}
  nodes: Dict[str, List[Tuple[str, int]]] = {}
  for name, node_time in node_micros.items():
    if node_time <= 0:
      continue
    component, phase = classify_node(name, index)
    phases = micros.setdefault(component, {})
    phases[phase] = phases.get(phase, 0) + node_time
    nodes.setdefault(component, []).append((name, node_time))
  top = {component: sorted(items, key=lambda item: (-item[1], item[0]))[:top_n]
         for component, items in nodes.items()}
  return micros, top


def resolve_profile_path(path: str) -> str:
  """A profile_N file, or the newest profile_N of a directory.

  Raises:
    tfprof.ProfileFileError: a directory without profile_N files.
  """
  if not os.path.isdir(path):
    return path
  from profiling import capture  # pylint: disable=g-import-not-at-top
  latest = capture.latest_profile(path)
  if latest is None:
    raise tfprof.ProfileFileError(f"{path} holds no profile_N file")
  return latest


def summarize(profile_path: str, step: int = -1) -> Summary:
  """Reads a profile and splits its op time by component (see the module docstring).

  Raises:
    tfprof.ProfileFileError: missing or corrupt file.
    tfprof.CommandError: `step` is not in the file.
  """
  return summarize_reader(tfprof.ProfileReader(resolve_profile_path(profile_path)), step)


def summarize_reader(reader: "tfprof.ProfileReader", step: int = -1) -> Summary:
  """`summarize` of an already loaded profile."""
  root = reader.profile("scope", full_scope_options(step)).proto
  node_micros = node_exec_micros(root)
  micros, top = summarize_micros(node_micros, node_index(reader.profile_proto))
  return Summary(profile_path=reader.profile_path, step=step, steps=list(reader.steps),
                 total_micros=int(root.total_exec_micros), micros=micros, top_nodes=top)


def summary_table(summary: Summary):
  """pandas DataFrame: one row per component (model order) and a total row.

  Columns: micros, percent, forward_micros, backward_micros, update_micros, input_micros,
  other_micros (the phases; see the module docstring).
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  rows = []
  for component in COMPONENTS + ("total",):
    if component == "total":
      phases = {phase: summary.phase_micros(phase) for phase in PHASES}
    else:
      phases = summary.micros.get(component, {})
    micros = sum(phases.values())
    row = {"component": component, "micros": micros, "percent": summary.share(micros)}
    row.update({f"{phase}_micros": phases.get(phase, 0) for phase in PHASES})
    rows.append(row)
  return pd.DataFrame(rows).set_index("component")


def summary_json(summary: Summary) -> dict:
  """A JSON-ready dict of the summary (per component: micros, percent, phases, top nodes)."""
  table = summary_table(summary)
  components = {}
  for component in COMPONENTS:
    row = table.loc[component]
    components[component] = {
        "micros": int(row["micros"]), "percent": round(float(row["percent"]), 3),
        "phases": {phase: int(row[f"{phase}_micros"]) for phase in PHASES
                   if row[f"{phase}_micros"]},
        "top_nodes": [{"name": name, "micros": micros}
                      for name, micros in summary.top_nodes.get(component, [])],
    }
  return {
      "profile_path": summary.profile_path,
      "step": summary.step,
      "steps_in_profile": summary.steps,
      "total_micros": summary.total_micros,
      "phases_percent": {phase: round(summary.share(summary.phase_micros(phase)), 3)
                         for phase in PHASES},
      "components": components,
  }


def format_table(summary: Summary) -> str:
  """The table as text: micros and percent per component, with the phase split."""
  table = summary_table(summary)
  shown = table[["micros", "percent", "forward_micros", "backward_micros", "update_micros",
                 "input_micros", "other_micros"]].copy()
  shown.columns = ["op us", "share %", "forward us", "backward us", "update us", "input us",
                   "other us"]
  return shown.to_string(float_format=lambda value: f"{value:.1f}")


def bar_chart(summary: Summary, title: str = ""):
  """An altair chart: one horizontal bar per component (share of op time), split by phase."""
  import altair as alt  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  rows = []
  for component in COMPONENTS:
    for phase in PHASES:
      micros = summary.micros.get(component, {}).get(phase, 0)
      if micros:
        rows.append({"component": component, "phase": phase, "percent": summary.share(micros),
                     "ms": micros / 1000.0})
  bars_data = pd.DataFrame(rows)
  totals = pd.DataFrame([{"component": component,
                          "percent": summary.share(summary.component_micros(component)),
                          "label": f"{summary.share(summary.component_micros(component)):.1f}%"}
                         for component in COMPONENTS])
  y = alt.Y("component:N", sort=list(COMPONENTS), title=None,
            axis=alt.Axis(labelFontSize=13))
  largest = max(totals["percent"].max(), 1.0)
  x_scale = alt.Scale(domain=[0, math.ceil(largest * 1.15 / 5) * 5])  # room for the labels
  bars = alt.Chart(bars_data).mark_bar().encode(
      y=y,
      x=alt.X("sum(percent):Q", title="share of op time (%)", stack="zero", scale=x_scale),
      color=alt.Color("phase:N", sort=list(PHASES), scale=alt.Scale(
          domain=list(PHASES),
          range=["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d9d9d"]),
                      legend=alt.Legend(title="phase", orient="bottom", direction="horizontal")),
      order=alt.Order("phase_order:Q"),
      tooltip=["component", "phase", alt.Tooltip("percent:Q", format=".1f"),
               alt.Tooltip("ms:Q", format=".2f")],
  ).transform_calculate(
      phase_order="indexof(" + json.dumps(list(PHASES)) + ", datum.phase)")
  labels = alt.Chart(totals).mark_text(align="left", dx=4, fontSize=12).encode(
      y=y, x=alt.X("percent:Q", scale=x_scale), text="label:N")
  return (bars + labels).properties(
      width=560, height=300,
      title=title or f"Op time per BERT component: {os.path.basename(summary.profile_path)}")


def write_png(chart, path: str) -> None:
  """Renders an altair chart to PNG (vl-convert), atomically."""
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    # altair 5.4 + narwhals: a harmless "You passed a narwhals DataFrame" UserWarning per layer.
    warnings.filterwarnings("ignore", message=r"You passed a `narwhals")
    png = vl_convert_png(chart)
  with io_utils.atomic_path(path) as tmp_path:
    with open(tmp_path, "wb") as f:
      f.write(png)


def vl_convert_png(chart, scale: float = 2.0) -> bytes:
  """PNG bytes of an altair chart."""
  import vl_convert  # pylint: disable=g-import-not-at-top
  return vl_convert.vegalite_to_png(chart.to_json(), scale=scale)


def _chart_title(summary: Summary) -> str:
  which = (f"average of steps {', '.join(map(str, summary.steps))}" if summary.step < 0
           else f"step {summary.step}")
  return (f"Share of op time per BERT component ({which}; "
          f"{summary.total_micros / 1000.0:.1f} ms op time per step)")


def main(argv: Sequence[str]) -> int:
  """Entry point; flags are defined in `run_main`."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  flag_values = flags.FLAGS
  if not flag_values.profile_path:
    raise app.UsageError("--profile_path is required (a profile_N file or a profile directory)")
  try:
    summary = summarize(flag_values.profile_path, flag_values.step)
  except (tfprof.ProfileFileError, tfprof.CommandError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"{summary.profile_path}: {_chart_title(summary)}")
  print(format_table(summary))
  if flag_values.json:
    io_utils.atomic_write_json(flag_values.json, summary_json(summary))
    print(f"wrote {flag_values.json}")
  if flag_values.png:
    write_png(bar_chart(summary, _chart_title(summary)), flag_values.png)
    print(f"wrote {flag_values.png}")
  return 0


def run_main() -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("profile_path", "", "A profile_N file, or a profile directory (its newest "
                      "profile_N).")
  flags.DEFINE_integer("step", -1, "Traced step to summarise; -1 averages the file's steps.")
  flags.DEFINE_string("png", "", "Write a bar chart (PNG) here.")
  flags.DEFINE_string("json", "", "Write the summary (JSON) here.")
  app.run(main)


if __name__ == "__main__":
  run_main()
