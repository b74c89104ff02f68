r"""Does it matter where Adam adds epsilon? Measured on trained runs' second moments, no training.

With bias correction, TensorFlow's Adam kernel (ours, `--adam_bias_correction`) adds epsilon to
the UNcorrected sqrt(v), PyTorch's AdamW to the corrected sqrt(v_hat) = sqrt(v / (1 - b2^t)).
Written in the corrected form, TensorFlow's update is
    m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t)),
so its effective epsilon is eps / sqrt(1 - b2^t): 31.6 eps at update 1, 3.2 eps at 100, 1.35 eps at
800. Epsilon changes an update only where it is not small against sqrt(v_hat). This script reads
the final Adam second moments (`<var>/adam_v`) of finished runs and reports, for each epsilon and
update number, the share of trained weights where the TensorFlow effective epsilon is at least
10% of sqrt(v_hat) (the PyTorch placement's share is that of eps itself, the last update's row
being close to it). Weights whose v is exactly 0 never had a gradient (vocabulary rows no example
uses, positions past the longest input); they are counted apart, and the word embeddings, mostly
such rows, are left out.

  python bench/adam_epsilon.py --runs=/work/runs/sweeps/glue_cola_gap/floor_recipe_i0,... \
      --name=cola

writes bench/results/adam_epsilon_<name>.json. The final moments stand in for the whole run's:
the gradient scale early in training is of the same order (clipped to global norm 1).
"""

import argparse
import datetime
import os
import sys
from typing import Dict, Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import io_utils  # noqa: E402  pylint: disable=g-import-not-at-top
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

BETA_2 = 0.999
SIGNIFICANT = 0.1  # epsilon counts where it is at least this fraction of sqrt(v_hat)


def effective_epsilon(epsilon: float, update_number: int) -> float:
  """TensorFlow's epsilon in the corrected form: eps / sqrt(1 - b2^t)."""
  return epsilon / np.sqrt(1.0 - BETA_2 ** update_number)


def epsilon_shares(second_moments: np.ndarray, final_update: int, epsilons: Sequence[float],
                   update_numbers: Sequence[int]) -> Dict:
  """Shares of weights where epsilon matters, from the second moments after `final_update`.

  Args:
    second_moments: v of every weight considered, flat, float.
    final_update: the update number t at which v was read (its bias correction).
    epsilons, update_numbers: the grid reported.

  Returns:
    {"weights", "never_updated", "sqrt_v_hat_percentiles": {p: value} over updated weights,
     "shares": [{"epsilon", "update", "tensorflow_effective_epsilon", "share"}]}: share of
    updated weights (v > 0) whose sqrt(v_hat) is below effective epsilon / SIGNIFICANT.
  """
  v = np.asarray(second_moments, dtype=np.float64).ravel()
  updated = v[v > 0]
  sqrt_v_hat = np.sqrt(updated / (1.0 - BETA_2 ** final_update))
  shares = []
  for epsilon in epsilons:
    for update in update_numbers:
      eff = effective_epsilon(epsilon, update)
      share = float(np.mean(sqrt_v_hat < eff / SIGNIFICANT)) if sqrt_v_hat.size else 0.0
      shares.append({"epsilon": epsilon, "update": int(update),
                     "tensorflow_effective_epsilon": float(eff), "share": share})
  percentiles = {str(p): float(np.percentile(sqrt_v_hat, p)) if sqrt_v_hat.size else 0.0
                 for p in (1, 10, 50, 90)}
  return {"weights": int(v.size), "never_updated": int(v.size - updated.size),
          "sqrt_v_hat_percentiles": percentiles, "shares": shares}


def read_second_moments(run_dir: str):
  """(flat adam_v of every variable but the word embeddings, global step) of a run's checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(run_dir)
  if not path:
    raise FileNotFoundError(f"{run_dir}: no checkpoint")
  reader = tf.train.load_checkpoint(path)
  names = sorted(n for n in reader.get_variable_to_shape_map()
                 if n.endswith("/adam_v") and "word_embeddings" not in n)
  if not names:
    raise ValueError(f"{path}: no Adam second moments (<var>/adam_v)")
  moments = np.concatenate([reader.get_tensor(n).ravel() for n in names])
  return moments, int(reader.get_tensor("global_step"))


def format_table(report: Dict) -> str:
  lines = [f"share of updated weights where TF's effective epsilon >= {SIGNIFICANT:.0%} of "
           "sqrt(v_hat)", "run | t | epsilon | update 1 | update 100 | last update"]
  for run in report["runs"]:
    for epsilon in report["epsilons"]:
      row = [s for s in run["shares"] if s["epsilon"] == epsilon]
      lines.append(f"{os.path.basename(run['run_dir'].rstrip('/'))} | {run['global_step']} | "
                   f"{epsilon:g} | " + " | ".join(f"{100 * s['share']:.1f}%" for s in row))
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", required=True, help="comma-separated finished run directories")
  parser.add_argument("--name", required=True, help="bench/results/adam_epsilon_<name>.json")
  parser.add_argument("--epsilons", default="1e-6,1e-8")
  args = parser.parse_args()
  epsilons = [float(e) for e in args.epsilons.split(",")]
  runs = []
  for run_dir in args.runs.split(","):
    moments, step = read_second_moments(run_dir)
    runs.append({"run_dir": run_dir, "global_step": step,
                 **epsilon_shares(moments, step, epsilons, (1, 100, step))})
  report = {"benchmark": "adam_epsilon", "significant_fraction": SIGNIFICANT,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([sys.executable, *sys.argv]), "git": provenance.git_state(),
            "epsilons": epsilons, "runs": runs}
  io_utils.atomic_write_json(
      os.path.join(REPO, "bench", "results", f"adam_epsilon_{args.name}.json"), report)
  print(format_table(report))


if __name__ == "__main__":
  main()
