#!/bin/bash
# oneDNN on (TF 2.15's default on this CPU) vs off, bench/throughput.py's steady state, interleaved.
cd /work/wt/studies
PY=/work/main/.venv/bin/python
for rep in 1 2; do
  for onednn in 1 0; do
    TF_ENABLE_ONEDNN_OPTS=$onednn $PY bench/throughput.py --no_peer --no_fixed --repeats=1 --latency_samples=5 \
      --train_steps=100 --num_examples=13084 --seed=42 --data_dir=/work/shared/data/snips \
      --bert_dir=/root/.cache/bert_nlu/all-MiniLM-L6-v2 --work_dir=/work/runs/onednn_ab/w_${onednn}_${rep} \
      --out=/work/runs/onednn_ab/onednn${onednn}_r${rep}.json > /work/runs/onednn_ab/onednn${onednn}_r${rep}.log 2>&1
  done
done
