"""vlforge: build Qwen-VL-style training data and train on it."""

__version__ = "0.1.0"
