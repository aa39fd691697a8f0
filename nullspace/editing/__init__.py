"""The AlphaEdit half: fact world, teaching model, keys and values, editing methods, evaluation."""

import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    # huggingface_hub (imported by transformers) loads tqdm.auto, which warns "IProgress not
    # found" in Jupyter kernels without ipywidgets; that warning would land in every lesson.
    warnings.simplefilter("ignore", TqdmWarning)
    import huggingface_hub  # noqa: F401
