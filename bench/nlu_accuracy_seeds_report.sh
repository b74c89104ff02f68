#!/usr/bin/env bash
# Rebuilds reports/nlu_accuracy_seeds.{md,png,_dev_curves.csv} from committed results only
# (issue #18: every seed of every recipe tried over seeds, the ensembles and the distilled student).
set -euo pipefail
cd "$(dirname "$0")/.."
R=bench/results
A=bench/results/attempts
exec .venv/bin/python bench/accuracy_report.py --name nlu_accuracy_seeds \
  --run "SNIPS|recipe before slot substitution|$A/snips_recipe_before_augmentation_seeds.json" \
  --run "SNIPS|ensemble of seeds 42-43 before slot substitution|$A/snips_recipe_before_augmentation_ensemble.json" \
  --run "SNIPS|published recipe (slot substitution 0.5)|$R/snips_seeds.json" \
  --run "SNIPS|ensemble of its seeds|$R/snips_ensemble.json" \
  --run "ATIS|recipe before slot substitution|$A/atis_recipe_before_augmentation_seeds.json" \
  --run "ATIS|published recipe (slot substitution 0.5)|$R/atis_seeds.json" \
  --run "ATIS|same recipe, rerun on the AVX-512 VM|$A/atis_seeds_rerun_avx512.json" \
  --run "ATIS|ensemble of the rerun's seeds|$R/atis_ensemble.json" \
  --run "ATIS|distilled from that ensemble (T 2, alpha 0.5), first student, resumed once|$A/atis_distill_seed42.json" \
  --run "ATIS|distilled from that ensemble (T 2, alpha 0.5), over seeds|$A/atis_distill_seeds_seeds.json"
