"""Profiling: the capture hook on a tiny BERT, the tfprof reader, the per-component summary."""

import dataclasses
import io
import json
import os

import numpy as np
import pytest

from bert_nlu import config as config_lib
from bert_nlu import hooks, testing, train
from bert_nlu.compat import tf
from profiling import capture, summary, tfprof

PROFILE_STEPS = (3, 4)
TRAIN_STEPS = 6  # ceil(150 examples * 0.6 epochs / 16)


def make_config(bert_dir, corpus_dir, output_dir, profile_steps=None):
  config = testing.tiny_run_config(
      bert_dir, corpus_dir, output_dir, num_train_epochs=0.6, save_checkpoints_steps=1000,
      save_summary_steps=10,
      profile=config_lib.ProfileConfig(steps=profile_steps,
                                       profile_dir=os.path.join(output_dir, "profile")))
  # The end-of-training dev evaluation is enough (and cheaper).
  return dataclasses.replace(config, run_eval=False)


def dev_metrics(output_dir):
  """The dev metrics of the final (only) checkpoint, from train_and_evaluate's evaluation."""
  best = hooks.read_best(output_dir)
  return best["step"], best["eval_result"]


def checkpoint_values(output_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(output_dir))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def profiled_run(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path_factory.mktemp("profiled")),
                       profile_steps=PROFILE_STEPS)
  return config, train.run(config)


@pytest.fixture(scope="module")
def profile_4(profiled_run):
  config, _ = profiled_run
  return capture.profile_path(config.profile_dir, 4)


@pytest.fixture(scope="module")
def reader(profile_4):
  return tfprof.ProfileReader(profile_4)


# ---- capture


def test_hook_writes_profiles_of_exactly_the_requested_steps(profiled_run):
  config, results = profiled_run
  assert results["training"]["num_train_steps"] == TRAIN_STEPS
  assert sorted(os.listdir(config.profile_dir)) == [
      "profile_3", "profile_4", "timeline-3.json", "timeline-4.json"]
  assert capture.read_profile_steps(config.profile_dir) == [3, 4]
  # profile_N holds every traced step up to N, each under its own number.
  assert tfprof.read_profile_proto(capture.profile_path(config.profile_dir, 3)).steps == [3]
  assert tfprof.read_profile_proto(capture.profile_path(config.profile_dir, 4)).steps == [3, 4]
  for step in PROFILE_STEPS:
    with open(capture.timeline_path(config.profile_dir, step)) as f:
      events = json.load(f)["traceEvents"]
    assert any(event.get("ph") == "X" and "bert/encoder" in event["args"].get("name", "")
               for event in events)


class _RecordingProfilerHook(capture.StepProfilerHook):
  """Records what the hook asks of each run."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.requests = []

  def before_run(self, run_context):
    request = super().before_run(run_context)
    self.requests.append(request)
    return request


class _TraceSpy(tf.estimator.SessionRunHook):
  """Records (global step before the run, whether the run was traced) for each run."""

  def __init__(self):
    self.runs = []

  def after_run(self, run_context, run_values):
    traced = len(run_values.run_metadata.step_stats.dev_stats) > 0
    self.runs.append((int(run_values.results) - 1, traced))

  def before_run(self, run_context):
    return tf.estimator.SessionRunArgs(tf.get_collection("train_op")[0])


def _run_counting_graph(hooks, first_global_step, num_runs):
  """MonitoredSession over a graph whose train op only increments the global step."""
  with tf.Graph().as_default():
    global_step = tf.get_variable(
        "global_step", initializer=tf.constant(first_global_step, tf.int64), trainable=False,
        collections=[tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.GLOBAL_STEP])
    weights = tf.get_variable("w", initializer=tf.ones([8, 8]))
    with tf.control_dependencies([tf.reduce_sum(tf.matmul(weights, weights))]):
      train_op = global_step.assign_add(1)  # returns the new value: step executed + 1
    tf.add_to_collection("train_op", train_op)
    with tf.train.MonitoredSession(hooks=hooks) as session:
      for _ in range(num_runs):
        session.run(train_op)


def test_hook_traces_window_by_global_step_and_requests_nothing_outside(tmp_path):
  profile_dir = str(tmp_path / "profile")
  hook = _RecordingProfilerHook(profile_dir, 3, 4, tensorboard_trace=True)
  spy = _TraceSpy()
  # A "resumed" run: the global step starts at 2, so the window is the 2nd and 3rd run; the
  # TensorBoard trace covers the next two (5 and 6).
  _run_counting_graph([hook, spy], first_global_step=2, num_runs=6)
  assert spy.runs == [(2, False), (3, True), (4, True), (5, False), (6, False), (7, False)]
  assert hook.traced_steps == [3, 4]
  assert [request is None for request in hook.requests] == [True, False, False, True, True, True]
  assert hook.requests[1].options.trace_level == tf.RunOptions.FULL_TRACE
  assert hook.requests[1].fetches is None
  names = set(os.listdir(profile_dir))
  assert names == {"profile_3", "profile_4", "timeline-3.json", "timeline-4.json", "plugins"}
  traces = [name for _, _, files in os.walk(os.path.join(profile_dir, "plugins"))
            for name in files if name.endswith(".xplane.pb")]
  assert traces, "TensorBoard profile-plugin trace missing"


def test_hook_rejects_bad_window():
  with pytest.raises(ValueError, match="0 <= first <= last"):
    capture.build_profile_hooks("/tmp/unused", 5, 4, False)


def test_profiling_does_not_change_results(profiled_run, tiny_bert_dir, tiny_corpus_dir,
                                           tmp_path):
  profiled_config, profiled_results = profiled_run
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "plain"))
  assert config.profile.steps is None
  plain_results = train.run(config)
  assert not os.path.exists(config.profile_dir)
  assert (plain_results["training"]["num_train_steps"] ==
          profiled_results["training"]["num_train_steps"])
  assert dev_metrics(config.output_dir) == dev_metrics(profiled_config.output_dir)
  assert dev_metrics(config.output_dir)[0] == TRAIN_STEPS
  profiled_values = checkpoint_values(profiled_config.output_dir)
  plain_values = checkpoint_values(config.output_dir)
  assert sorted(profiled_values) == sorted(plain_values)
  for name, value in plain_values.items():
    np.testing.assert_array_equal(profiled_values[name], value, err_msg=name)


# ---- reader: options


def test_parse_command_applies_options_over_defaults():
  defaults = tfprof.default_options()
  command, options = tfprof.parse_command(
      "scope -max_depth 30 -select micros,bytes,micros -min_micros 100 -order_by micros "
      "-show_name_regexes '.*encoder.*,.*pooler.*' -account_displayed_op_only "
      "-step 4 -output file:outfile=/tmp/report.txt", defaults)
  assert command == "scope"
  assert options.max_depth == 30 and options.min_micros == 100 and options.step == 4
  assert list(options.select) == ["micros", "bytes"]
  assert options.order_by == "micros"
  assert list(options.show_name_regexes) == [".*encoder.*", ".*pooler.*"]
  assert options.account_displayed_op_only
  assert options.output == "file:outfile=/tmp/report.txt"
  # The defaults are the C++ tool's, and untouched.
  assert defaults.max_depth == 10 and defaults.order_by == "name" and defaults.step == -1
  assert list(defaults.select) == ["micros"] and list(defaults.account_type_regexes) == [".*"]
  _, options = tfprof.parse_command("op -account_displayed_op_only false -max_depth 3", defaults)
  assert not options.account_displayed_op_only and options.max_depth == 3


@pytest.mark.parametrize("line, message", [
    ("", "empty command"),
    ("scopes", "unknown command 'scopes'"),
    ("scope -max_depth", "-max_depth needs a value"),
    ("scope -max_depth ten", "-max_depth needs an integer"),
    ("scope -min_micros 1.5", "-min_micros needs an integer"),
    ("scope -order_by speed", "-order_by 'speed' is not one of"),
    ("scope -select micros,flops", "unknown flops"),
    ("scope -depth 3", "unknown option '-depth'"),
    ("scope max_depth 3", "unknown option 'max_depth'"),
    ("scope -output html", "unknown output type 'html'"),
    ("scope -output file", "file needs a file"),
    ("scope -output file:path=/tmp/x", "unknown setting 'path'"),
    ("op -account_displayed_op_only maybe", "takes true/false"),
])
def test_parse_command_rejects_bad_input(line, message):
  with pytest.raises(tfprof.CommandError, match=message):
    tfprof.parse_command(line, tfprof.default_options())


def test_view_specific_option_checks():
  _, options = tfprof.parse_command("scope -output pprof:outfile=/tmp/x", tfprof.default_options())
  with pytest.raises(tfprof.CommandError, match="code view only"):
    tfprof.validate_for_view("scope", options)
  tfprof.validate_for_view("code", options)


def test_format_options_lists_every_option():
  text = tfprof.format_options(tfprof.default_options())
  for name in tfprof.OPTION_NAMES:
    assert f"-{name} " in text
  assert "-max_depth                  10\n" in text


# ---- reader: views and totals


def _flatten(node):
  yield node
  for child in node.children:
    yield from _flatten(child)


def _lowest_average(reader, step_totals):
  """The lowest total the averaged profile can have, given the profiled steps' totals.

  tfprof averages each node's time over the steps it ran in with integer division, so each node
  timed in a profiled step can lose up to one microsecond below the steps' mean: when the two
  steps took nearly the same time, the averaged total lands just below both.
  """
  everything = "-max_depth 100000 -min_micros 0 -select micros -output none"
  timed = set()
  for step in PROFILE_STEPS:
    root = reader.profile(*tfprof.parse_command(f"scope {everything} -step {step}",
                                                tfprof.default_options())).proto
    timed.update(node.name for node in _flatten(root) if node.exec_micros)
  return sum(step_totals) / len(step_totals) - len(timed)


def _op_chain(root):
  """The op view's op-type nodes: tfprof nests them as a chain, each the child of the previous."""
  chain = []
  while root.children:
    assert len(root.children) == 1
    root = root.children[0]
    chain.append(root)
  return chain


def test_reader_prints_all_views(reader):
  defaults = tfprof.default_options()
  for view, expected in (("scope", "bert/encoder/layer_1/attention"),
                         ("graph", "bert/encoder"),
                         ("op", "Einsum"),
                         ("code", "model.py:")):  # the Python line of model_fn that built ops
    out = io.StringIO()
    report, _ = tfprof.run_command(
        reader, f"{view} -max_depth 1000 -select micros,occurrence -min_micros 0 "
        "-order_by micros", defaults, out)
    text = out.getvalue()
    assert "==================Model Analysis Report======================" in text, view
    assert "node name | total execution time" in text, view
    assert expected in text, (view, text[:2000])
    assert report.proto.name == "_TFProfRoot" and report.proto.total_exec_micros > 0


def test_view_totals_agree(reader):
  everything = "-max_depth 100000 -min_micros 0 -select micros -output none"
  scope = reader.profile(*tfprof.parse_command(f"scope {everything}",
                                               tfprof.default_options())).proto
  op = reader.profile(*tfprof.parse_command(f"op {everything}", tfprof.default_options())).proto
  assert scope.total_exec_micros == sum(node.exec_micros for node in _flatten(scope))
  chain = _op_chain(op)  # > 100 levels: more than protobuf's parser takes in one go
  assert len(chain) > 100
  assert op.total_exec_micros == sum(node.exec_micros for node in chain)
  for node, rest in zip(chain, chain[1:]):
    assert node.total_exec_micros == node.exec_micros + rest.total_exec_micros
  assert op.total_exec_micros == scope.total_exec_micros
  # One step's totals bracket the average of the two.
  per_step = [reader.profile(*tfprof.parse_command(f"op {everything} -step {step}",
                                                   tfprof.default_options())).proto
              for step in PROFILE_STEPS]
  totals = sorted(report.total_exec_micros for report in per_step)
  assert _lowest_average(reader, totals) <= op.total_exec_micros <= totals[1]


def test_reader_matches_tf_profile_of_the_same_run_metadata(tmp_path):
  options = {**tf.profiler.ProfileOptionBuilder.time_and_memory(), "min_micros": 0,
             "min_bytes": 0, "output": "none"}
  path = str(tmp_path / "profile_0")
  with tf.Graph().as_default() as graph:
    x = tf.random.normal([64, 64], seed=1)
    y = tf.reduce_sum(tf.nn.relu(tf.matmul(x, x)) + tf.matmul(x, x, transpose_b=True))
    run_metadata = tf.RunMetadata()
    with tf.Session() as session:
      session.run(y, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                  run_metadata=run_metadata)
    expected = tf.profiler.profile(graph, run_meta=run_metadata, cmd="op", options=options)
    try:
      profiler = tf.profiler.Profiler(graph)
      profiler.add_step(0, run_metadata)
      with open(path, "wb") as f:
        f.write(profiler.serialize_to_string())
      del profiler  # deletes TF's process-wide tfprof state
    finally:
      tfprof.forget_loaded_profile()
  command = "op -max_depth 100000 -min_micros 0 -min_bytes 0 -select micros,bytes -output none"
  actual = tfprof.ProfileReader(path).profile(
      *tfprof.parse_command(command, tfprof.default_options())).proto
  assert actual.total_exec_micros == expected.total_exec_micros > 0
  assert actual.total_requested_bytes == expected.total_requested_bytes
  assert ({node.name: node.exec_micros for node in _op_chain(actual)} ==
          {node.name: node.exec_micros for node in _op_chain(expected)})
  assert "MatMul" in {node.name for node in _op_chain(actual)}


def test_file_and_timeline_outputs(reader, tmp_path):
  report_path = tmp_path / "reports" / "scope.txt"
  out = io.StringIO()
  tfprof.run_command(reader, f"scope -max_depth 4 -output file:outfile={report_path}",
                     tfprof.default_options(), out)
  assert f"Report written to {report_path}" in out.getvalue()
  assert "bert/encoder" in report_path.read_text()
  timeline_path = tmp_path / "timeline.json"
  tfprof.run_command(reader, f"graph -step 4 -max_depth 100000 -output "
                     f"timeline:outfile={timeline_path}", tfprof.default_options(), io.StringIO())
  with open(f"{timeline_path}_4") as f:  # tfprof appends _<step>
    assert json.load(f)["traceEvents"]


def test_unknown_step_is_a_command_error(reader):
  with pytest.raises(tfprof.CommandError, match="holds steps 3, 4"):
    reader.profile(*tfprof.parse_command("scope -step 9", tfprof.default_options()))


def test_interactive_prompt_with_fake_stdin(reader):
  stdin = io.StringIO("op -max_depth 5 -order_by micros\n"
                      "bogus\n"
                      "scope -min_micros abc\n"
                      "set -order_by micros -max_depth 2\n"
                      "\n"
                      "help\n"
                      "quit\n"
                      "scope\n")
  out, err = io.StringIO(), io.StringIO()
  failures = tfprof.interactive(reader, stdin=stdin, out=out, err=err)
  text = out.getvalue()
  assert failures == 2
  assert text.startswith(tfprof.PROMPT)
  assert text.count(tfprof.PROMPT) == 7  # quit ends the loop: "scope" never runs
  assert "Einsum" in text and "End of Report" in text
  assert "-order_by                   micros" in text and "-max_depth                  2" in text
  assert "Commands (the C++ tfprof syntax)" in text
  assert "E: unknown command 'bogus'" in err.getvalue()
  assert "E: option -min_micros needs an integer, got 'abc'" in err.getvalue()


def test_interactive_prompt_ends_at_eof(reader):
  out = io.StringIO()
  assert tfprof.interactive(reader, stdin=io.StringIO("help"), out=out, err=io.StringIO()) == 0
  assert out.getvalue().count(tfprof.PROMPT) == 2 and out.getvalue().endswith("\n")


def test_missing_and_corrupt_profiles_name_the_file(tmp_path, profiled_run):
  missing = str(tmp_path / "profile_9")
  with pytest.raises(tfprof.ProfileFileError, match=f"cannot read profile {missing}"):
    tfprof.ProfileReader(missing)
  corrupt = tmp_path / "profile_8"
  corrupt.write_bytes(b"\xff\x00 not a protocol buffer \x07")
  with pytest.raises(tfprof.ProfileFileError, match=f"{corrupt} is not a tfprof profile"):
    tfprof.ProfileReader(str(corrupt))
  config, _ = profiled_run
  timeline = capture.timeline_path(config.profile_dir, 3)
  with pytest.raises(tfprof.ProfileFileError, match=timeline):
    tfprof.ProfileReader(timeline)


# ---- summary


@pytest.mark.parametrize("name, component, phase", [
    ("bert/embeddings/embedding_lookup", summary.EMBEDDINGS, "forward"),
    ("bert/embeddings/LayerNorm/batchnorm/mul", summary.LAYER_NORM, "forward"),
    ("bert/encoder/layer_0/attention/self/Softmax", summary.ATTENTION, "forward"),
    ("bert/encoder/layer_0/attention/output/dense/MatMul", summary.ATTENTION, "forward"),
    ("bert/encoder/layer_0/attention/output/LayerNorm/moments/mean", summary.LAYER_NORM,
     "forward"),
    ("bert/encoder/layer_11/intermediate/dense/MatMul", summary.FEED_FORWARD, "forward"),
    ("bert/encoder/layer_1/output/dense/BiasAdd", summary.FEED_FORWARD, "forward"),
    ("bert/pooler/dense/Tanh", summary.POOLER, "forward"),
    ("slot_head/dense/Tensordot/MatMul", summary.HEADS, "forward"),
    ("gradients/bert/encoder/layer_0/attention/self/MatMul_grad/MatMul_1", summary.ATTENTION,
     "backward"),
    ("gradients/bert/encoder/layer_1/output/LayerNorm/moments/mean_grad/BroadcastTo",
     summary.LAYER_NORM, "backward"),
    ("gradients/intent_head/dense/MatMul_grad/MatMul", summary.HEADS, "backward"),
    ("bert/encoder/layer_0/attention/self/query/kernel/adam_m", summary.OPTIMIZER, "update"),
    ("clip_by_global_norm/mul_3", summary.OPTIMIZER, "update"),
    ("IteratorGetNext", summary.INPUT_PIPELINE, "input"),
    ("save/RestoreV2", summary.OTHER, "other"),
])
def test_classify_by_name(name, component, phase):
  assert summary.classify_node(name, {}) == (component, phase)


def test_classify_by_code_and_inputs():
  site = "/venv/lib/python3.11/site-packages"
  index = {
      "Mul_18": summary.NodeInfo("Mul", (), (f"{site}/tensorflow/python/ops/math_ops.py",
                                              f"{site}/bert/optimization.py",
                                              "/repo/bert_nlu/optimization.py",
                                              "/repo/bert_nlu/model.py")),
      "truediv": summary.NodeInfo("RealDiv", (), ("/repo/bert_nlu/tasks/nlu.py",
                                                  "/repo/bert_nlu/model.py")),
      "gradients/AddN_3": summary.NodeInfo(
          "AddN", ("gradients/AddN_2", "gradients/bert/encoder/layer_0/output/add_grad/Sum")),
      "gradients/AddN_2": summary.NodeInfo("AddN", ("gradients/Fill",)),
  }
  assert summary.classify_node("Mul_18", index) == (summary.OPTIMIZER, "update")
  assert summary.classify_node("truediv", index) == (summary.HEADS, "forward")
  assert summary.classify_node("gradients/truediv_grad/RealDiv", index) == (summary.HEADS,
                                                                             "backward")
  assert summary.classify_node("gradients/AddN_3", index) == (summary.FEED_FORWARD, "backward")
  assert summary.classify_node("gradients/AddN_2", index) == (summary.OTHER, "backward")
  assert summary.classify_node("Mul_18", {}) == (summary.OTHER, "other")


def test_summary_of_tiny_bert_adds_up(profile_4, tmp_path):
  result = summary.summarize(os.path.dirname(profile_4))  # a directory: its newest profile
  assert result.profile_path == profile_4 and result.steps == [3, 4]
  table = summary.summary_table(result)
  components = table.drop(index="total")
  assert components["micros"].sum() == table.loc["total", "micros"] == result.total_micros
  assert components["percent"].sum() == pytest.approx(100.0)
  for component in summary.MODEL_COMPONENTS + (summary.OPTIMIZER, summary.INPUT_PIPELINE):
    assert table.loc[component, "micros"] > 0, component
  for component in (summary.EMBEDDINGS, summary.ATTENTION, summary.FEED_FORWARD,
                    summary.LAYER_NORM, summary.HEADS):
    assert table.loc[component, "backward_micros"] > 0, component
  assert table.loc[summary.OPTIMIZER, "micros"] == table.loc[summary.OPTIMIZER, "update_micros"]
  as_json = summary.summary_json(result)
  assert sum(c["percent"] for c in as_json["components"].values()) == pytest.approx(100, abs=0.01)
  json.dumps(as_json)
  assert "attention" in summary.format_table(result)
  png = tmp_path / "summary.png"
  summary.write_png(summary.bar_chart(result), str(png))
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_one_step(reader):
  averaged = summary.summarize_reader(reader)
  steps = [summary.summarize_reader(reader, step=step) for step in PROFILE_STEPS]
  totals = sorted(s.total_micros for s in steps)
  assert _lowest_average(reader, totals) <= averaged.total_micros <= totals[1]
  with pytest.raises(tfprof.CommandError):
    summary.summarize_reader(reader, step=7)


def test_forward_op_name():
  assert summary.forward_op_name("gradients/bert/x/MatMul_grad/MatMul_1") == ("bert/x/MatMul",
                                                                              True)
  assert summary.forward_op_name("gradients_1/a/b_grad/c") == ("a/b", True)
  assert summary.forward_op_name("gradients/AddN_7") == ("AddN_7", True)
  assert summary.forward_op_name("bert/x/MatMul") == ("bert/x/MatMul", False)


def test_cli_main_reports_missing_file(capsys, monkeypatch):
  from absl import flags
  flag_values = flags.FlagValues()
  flags.DEFINE_string("profile_path", "/nonexistent/profile_3", "", flag_values=flag_values)
  flags.DEFINE_string("command", "scope", "", flag_values=flag_values)
  flag_values.mark_as_parsed()
  monkeypatch.setattr(flags, "FLAGS", flag_values)
  assert tfprof.main(["tfprof"]) == 1
  assert "error: cannot read profile /nonexistent/profile_3" in capsys.readouterr().err


def test_profile_dir_helpers(tmp_path):
  assert capture.read_profile_steps(str(tmp_path / "none")) == []
  for name in ("profile_2", "profile_10", "profile_x", "timeline-2.json"):
    (tmp_path / name).write_bytes(b"")
  assert capture.read_profile_steps(str(tmp_path)) == [2, 10]
  assert capture.latest_profile(str(tmp_path)) == str(tmp_path / "profile_10")
