"""bert-nlu: fine-tune BERT (Google TF checkpoint format) for joint intent + slot NLU.

Import the submodules you need; importing the package itself does not import TensorFlow.
"""

__version__ = "0.1.0"
