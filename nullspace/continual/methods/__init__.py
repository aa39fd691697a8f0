"""Continual-learning methods, one module each, behind the :class:`ContinualMethod` interface."""

from nullspace.continual.methods.adam_nscl import AdamNSCL, AdamNSCLMethod
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.methods.ewc import EWC
from nullspace.continual.methods.finetune import FineTune
from nullspace.continual.methods.gpm import GPM, GradientProjectionSGD
from nullspace.continual.methods.lwf import LwF

__all__ = [
           "EWC",
           "GPM",
           "AdamNSCL",
           "AdamNSCLMethod",
           "ContinualMethod",
           "FineTune",
           "GradientProjectionSGD",
           "LwF",
]
