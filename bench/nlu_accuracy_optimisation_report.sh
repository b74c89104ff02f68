#!/usr/bin/env bash
# Rebuilds reports/nlu_accuracy_optimisation.{md,png,_dev_curves.csv} from committed results only.
set -euo pipefail
cd "$(dirname "$0")/.."
A=bench/results/attempts
exec .venv/bin/python bench/accuracy_report.py --name nlu_accuracy_optimisation \
  --run "SNIPS|CRF recipe, seed 42|$A/snips_crf_recipe_published_until_layer_decay.json" \
  --run "SNIPS|CRF recipe, seed 43|$A/snips_crf_seed43.json" \
  --run "SNIPS|+ weight averaging 0.999|$A/snips_crf_weight_average_0999.json" \
  --run "SNIPS|+ layer decay 0.8 (published until slot substitution)|$A/snips_published_before_augmentation.json" \
  --run "SNIPS|+ layer decay 0.8, seed 43|$A/snips_crf_layer_decay_08_seed43.json" \
  --run "SNIPS|+ layer decay 0.7|$A/snips_crf_layer_decay_07.json" \
  --run "SNIPS|+ layer decay 0.9|$A/snips_crf_layer_decay_09.json" \
  --run "SNIPS|+ layer decay 0.8 + averaging 0.999|$A/snips_crf_layer_decay_08_weight_average_0999.json" \
  --run "ATIS|CRF recipe, seed 42|$A/atis_crf_recipe_published_until_layer_decay.json" \
  --run "ATIS|CRF recipe, seed 43|$A/atis_crf_seed43.json" \
  --run "ATIS|+ weight averaging 0.999|$A/atis_crf_weight_average_0999.json" \
  --run "ATIS|+ layer decay 0.8|$A/atis_crf_layer_decay_08.json" \
  --run "ATIS|+ layer decay 0.8, seed 43 (published until slot substitution)|$A/atis_published_before_augmentation.json" \
  --run "ATIS|+ layer decay 0.7, seed 43|$A/atis_crf_layer_decay_07_seed43.json" \
  --run "ATIS|+ layer decay 0.9, seed 43|$A/atis_crf_layer_decay_09_seed43.json" \
  --run "ATIS|+ layer decay 0.8 + averaging 0.999|$A/atis_crf_layer_decay_08_weight_average_0999.json" \
  --run "ATIS|+ layer decay 0.8, 20 epochs|$A/atis_crf_layer_decay_08_20_epochs.json" \
  --notes reports/notes/nlu_accuracy_findings.md
