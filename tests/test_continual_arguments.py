"""Bad settings of the continual package get a clear error: the argument's name, what was wrong
with the value, and what to pass instead, before any training starts."""

import math

import pytest
from torch import nn

from nullspace.continual import recipes
from nullspace.continual.benchmarks import colour_gratings, mixed_digits, scrambled_digits, split_digits
from nullspace.continual.cifar100 import split_cifar100
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods import (
    EWC,
    GPM,
    AdamNSCL,
    AdamNSCLMethod,
    FineTune,
    GradientProjectionSGD,
    LwF,
)
from nullspace.continual.models import MLP, PreActResNet18, SmallCNN, model_for
from nullspace.continual.trainer import TrainConfig

NAN = math.nan


def params():
    return list(nn.Linear(3, 2).parameters())


# The examples of the bad-input report, each with the behaviour it should have had.
@pytest.mark.parametrize("build, pattern", [
    (lambda: TrainConfig(batch_size=0), r"batch_size must be a positive integer, got 0\. It is the number of samples"),
    (lambda: TrainConfig(epochs=-1), r"epochs must be a positive integer, got -1\. It is the number of passes"),
    (lambda: AdamNSCLMethod(lr=NAN), r"lr must be a finite number, got nan\. Adam's learning rate"),
    (lambda: FineTune("adam", lr=NAN), r"lr must be a finite number, got nan\. The course uses 1e-3"),
    (lambda: EWC(lr=NAN), r"lr must be a finite number, got nan"),
    (lambda: LwF(lr=NAN), r"lr must be a finite number, got nan"),
    (lambda: AdamNSCLMethod(head_lr=-1e-3), r"head_lr must be positive \(> 0\), got -0\.001\. The current head's"),
    (lambda: EWC(strength=-1.0), r"strength must be non-negative \(≥ 0\), got -1\. It is EWC's λ"),
    (lambda: LwF(temperature=0.0), r"temperature must be positive \(> 0\), got 0\. The logits are divided by it"),
])
def test_the_reported_examples_are_refused_with_a_clear_message(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.parametrize("build, pattern", [
    # training protocol
    (lambda: TrainConfig(seed=-3), r"seed must be an integer ≥ 0, got -3"),
    (lambda: TrainConfig(eval_batch_size=0), r"eval_batch_size must be a positive integer"),
    (lambda: TrainConfig(tracked_tasks=-1), r"tracked_tasks must be an integer ≥ 0"),
    (lambda: TrainConfig(lr_milestones=(60, 30)), r"lr_milestones must be increasing epochs without repeats"),
    (lambda: TrainConfig(lr_milestones=(0,)), r"each of lr_milestones must be a positive integer.*e\.g\. \(30, 60\)"),
    (lambda: TrainConfig(lr_gamma=0.0), r"lr_gamma must be positive \(> 0\)"),
    (lambda: TrainConfig(augmentation="flip"), r"augmentation must be one of 'none', 'crop-flip', got 'flip'"),
    # methods
    (lambda: LwF(strength=-0.5), r"strength must be non-negative.*LwF's λ"),
    (lambda: FineTune("sgd", momentum=1.5), r"momentum must lie in \[0, 1\), got 1\.5"),
    (lambda: FineTune("sgd", head_lr=3e-3), r"head_lr is for Adam: fine-tuning with SGD trains the head at lr"),
    (lambda: FineTune("adam", head_lr=0.0), r"head_lr must be positive \(> 0\), got 0\. The current head's Adam"),
    (lambda: EWC(head_lr=NAN), r"head_lr must be a finite number, got nan\. The current head's Adam"),
    (lambda: LwF(head_lr=-1.0), r"head_lr must be positive \(> 0\), got -1\. The current head's Adam"),
    (lambda: FineTune("rmsprop"), r"optimizer must be one of 'adam', 'sgd', got 'rmsprop'"),
    (lambda: GPM(lr=-0.1), r"lr must be positive \(> 0\), got -0\.1\. SGD's learning rate"),
    (lambda: GPM(momentum=NAN), r"momentum must be a finite number"),
    (lambda: GPM(base_threshold=1.2), r"base_threshold must lie in \[0, 1\], got 1\.2"),
    (lambda: GPM(threshold_step=-0.003), r"threshold_step must be non-negative"),
    (lambda: GPM(samples=0), r"samples must be a positive integer, got 0"),
    (lambda: GPM(basis="union"), r"basis must be one of 'grown', 'pooled'"),
    (lambda: AdamNSCLMethod(later_lr=0.0), r"later_lr must be positive"),
    (lambda: AdamNSCLMethod(normalisation="drop"), r"normalisation must be one of 'freeze', 'ewc'"),
    (lambda: AdamNSCLMethod(normalisation_ewc=-100.0), r"normalisation_ewc must be non-negative.*EWC at 100"),
    (lambda: AdamNSCLMethod(weight_decay=NAN), r"weight_decay must be a finite number"),
    (lambda: AdamNSCLMethod(eps_placement="inside"), r"eps_placement must be one of 'pytorch', 'official'"),
    (lambda: AdamNSCLMethod.paper(a=-10.0), r"MinRatioRule: a must be ≥ 0, got -10"),
    (lambda: AdamNSCL(params(), lr=NAN), r"lr must be a finite number, got nan"),
    (lambda: AdamNSCL(params(), betas=(1.0, 0.999)), r"betas\[0\] must lie in \[0, 1\), got 1"),
    (lambda: AdamNSCL(params(), eps=-1e-8), r"eps must be non-negative"),
    (lambda: AdamNSCL([{"params": params(), "lr": -1.0}]), r"the learning rate of parameter group 0 must be positive"),
    (lambda: GradientProjectionSGD(params(), lr=math.inf), r"lr must be a finite number, got inf"),
    (lambda: TaskCovariances(batch_size=0), r"batch_size must be a positive integer"),
    # benchmarks and models
    (lambda: colour_gratings(num_tasks=0), r"num_tasks must be a positive integer, got 0"),
    (lambda: colour_gratings(noise=-0.3), r"noise must be non-negative"),
    (lambda: colour_gratings(size=2), r"size must be an integer ≥ 4, got 2\. The course CNN pools twice"),
    (lambda: scrambled_digits(noise=NAN), r"noise must be a finite number"),
    (lambda: scrambled_digits(sensor_side=7), r"sensor_side must be an integer ≥ 8.*64 pixels of a digit"),
    (lambda: mixed_digits(sensor_side=7), r"sensor_side must be an integer ≥ 8.*64 pixels of a digit"),
    (lambda: mixed_digits(num_tasks=0), r"num_tasks must be a positive integer, got 0"),
    (lambda: split_digits(test_fraction=1.0), r"test_fraction must lie in \[0, 1\), got 1"),
    (lambda: split_digits(test_fraction=0.0), r"test_fraction must lie strictly between 0 and 1"),
    (lambda: split_cifar100("/nowhere", num_tasks=7), r"num_tasks must be a positive integer that divides the 100 classes"),
    (lambda: split_digits().subset(0), r"num_tasks must be a positive integer, got 0"),
    (lambda: split_digits().subset(6), r"num_tasks must lie in 1\.\.5 \(the benchmark has 5 tasks\), got 6"),
    (lambda: model_for((1, 8, 8), 5, 2, architecture="vgg"), r"architecture must be one of 'cnn', 'mlp', 'resnet18'"),
    (lambda: MLP((1, 8, 8), 5, 2, hidden=()), r"hidden must list at least one layer width"),
    (lambda: MLP((1, 8, 8), 5, 2, hidden=(64, 0)), r"hidden\[1\] must be a positive integer, got 0"),
    (lambda: SmallCNN((1, 8, 8), 5, 2, first_kernel=4), r"first_kernel must be odd"),
    (lambda: SmallCNN((1, 8, 8), 0, 2), r"num_tasks must be a positive integer, got 0"),
    (lambda: PreActResNet18((3, 32, 32), 2, 10, width=0), r"width must be a positive integer"),
    (lambda: recipes.course_methods("mnist"), r"the benchmark name must be one of 'digits', 'gratings', 'scrambled'"),
    (lambda: recipes.train_config("mnist"), r"the benchmark name must be one of"),
    (lambda: recipes.course_methods("scrambled", tuned={"sgd": 0.1}), r"a key of tuned must be one of 'ewc', 'lwf'"),
])
def test_every_setting_is_range_checked(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.parametrize("build, pattern", [
    (lambda: TrainConfig(batch_size=32.0), r"batch_size must be an integer, got 32\.0 \(float\)"),
    (lambda: TrainConfig(epochs=True), r"epochs must be an integer, got True \(bool\)"),
    (lambda: TrainConfig(epochs="5"), r"epochs must be an integer, got '5' \(str\)"),
    (lambda: EWC(strength="1e3"), r"strength must be a real number, got '1e3' \(str\)"),
    (lambda: GPM(samples=12.5), r"samples must be an integer, got 12\.5"),
])
def test_values_of_the_wrong_type_are_refused(build, pattern):
    with pytest.raises(TypeError, match=pattern):
        build()
