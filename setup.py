"""bert-nlu: BERT fine-tuning for joint intent + slot NLU on TF 2.15 Estimators."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements():
  with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="bert-nlu",
    version="0.1.0",
    description="Fine-tune BERT (Google TF checkpoints) for intent classification + slot filling",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["bert_nlu", "bert_nlu.*", "profiling", "profiling.*"]),
    py_modules=["run_bert_nlu"],
    install_requires=_requirements(),
    extras_require={"test": ["pytest==8.3.3", "hypothesis==6.115.0"]},
    entry_points={
        "console_scripts": [
            "bert-nlu-train = run_bert_nlu:run_main",
            "bert-nlu-convert = bert_nlu.convert:run_main",
            "bert-nlu-predict = bert_nlu.predict:run_main",
            "bert-nlu-data-stats = bert_nlu.data.stats:run_main",
        ],
    },
)
