"""Example models and the classifier LightningModule used by demos, benchmarks and tests."""

from lightning_compress.models.classifier import Classifier
from lightning_compress.models.lenet import LeNet5, LeNet300100
from lightning_compress.models.mobilenet import InvertedResidual, SmallMobileNet
from lightning_compress.models.registry import MODELS, build_model
from lightning_compress.models.resnet import BasicBlock, SmallResNet
from lightning_compress.models.transformer import PatchTransformer
from lightning_compress.models.vgg import SmallVGG

__all__ = [
    "MODELS",
    "BasicBlock",
    "Classifier",
    "InvertedResidual",
    "LeNet5",
    "LeNet300100",
    "PatchTransformer",
    "SmallMobileNet",
    "SmallResNet",
    "SmallVGG",
    "build_model",
]
