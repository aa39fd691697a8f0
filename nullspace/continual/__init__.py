"""Continual learning (Adam-NSCL, Wang et al., CVPR 2021): benchmarks, models, trainer, methods."""
