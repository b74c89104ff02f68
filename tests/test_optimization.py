"""Learning-rate schedules against their closed forms."""

import math

import numpy as np
import pytest

from bert_nlu import optimization
from bert_nlu.compat import tf

PEAK, TOTAL, WARMUP = 1e-3, 100, 10
STEPS = [0, 1, 5, 9, 10, 11, 30, 55, 99, 100, 150]


def _rates(schedule, warmup=WARMUP):
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    rate = optimization.learning_rate_schedule(step, PEAK, TOTAL, warmup, schedule)
    with tf.Session() as session:
      return [session.run(rate, {step: s}) for s in STEPS]


def _closed_form(schedule, s, warmup=WARMUP):
  start = PEAK / 25 if schedule == "one_cycle" else 0.0
  if s < warmup:
    return start + (PEAK - start) * s / warmup
  if schedule == "linear":
    return PEAK * (1 - min(s, TOTAL) / TOTAL)
  end = PEAK / 25 / 1e4 if schedule == "one_cycle" else 0.0
  progress = min(1.0, (s - warmup) / (TOTAL - warmup))
  return end + (PEAK - end) * (1 + math.cos(math.pi * progress)) / 2


@pytest.mark.parametrize("schedule", optimization.LEARNING_RATE_SCHEDULES)
@pytest.mark.parametrize("warmup", [WARMUP, 0])
def test_schedules_match_their_closed_forms(schedule, warmup):
  expected = [_closed_form(schedule, s, warmup) for s in STEPS]
  np.testing.assert_allclose(_rates(schedule, warmup), expected, rtol=1e-5, atol=1e-9)  # float32 near 0


def test_hand_computed_points():
  linear, cosine, one_cycle = (_rates(name) for name in ("linear", "cosine", "one_cycle"))
  at = STEPS.index
  assert linear[at(5)] == pytest.approx(5e-4) and cosine[at(5)] == pytest.approx(5e-4)
  assert one_cycle[at(0)] == pytest.approx(4e-5)  # starts at peak / 25
  assert linear[at(10)] == pytest.approx(9e-4)  # bert's decay line from step 0
  assert cosine[at(10)] == pytest.approx(1e-3) and one_cycle[at(10)] == pytest.approx(1e-3)
  assert cosine[at(55)] == pytest.approx(5e-4)  # half way through the decay: cos(pi/2) = 0
  assert cosine[at(100)] == pytest.approx(0.0, abs=1e-12)
  assert one_cycle[at(150)] == pytest.approx(4e-9)  # ends at peak / 25 / 1e4


def test_unknown_schedule_is_refused():
  with tf.Graph().as_default(), pytest.raises(ValueError, match="step_decay"):
    optimization.learning_rate_schedule(tf.constant(1, tf.int64), PEAK, TOTAL, WARMUP,
                                        "step_decay")
