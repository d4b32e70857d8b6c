"""blindspots: the 'Mind the Pad' blind-spot study as a reproducible pipeline."""

import os

# Model Garden 2.20 is written against tf_keras (Keras 2). TensorFlow reads
# this variable when it is first imported, so it is set before any import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
