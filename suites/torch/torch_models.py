"""The torch suite's three small models and the recipe of its one training step.

Shared by make_golden.py (which initialises them from fixed seeds and ships
their ``state_dict`` in golden/) and by the tests (which only load those
weights). Dropout is 0 everywhere, so every forward and backward pass is
deterministic.
"""

from __future__ import annotations

import torch
from torch import nn

BATCH = 4
CLASSES = 10
MLP_IN = 32
CNN_SHAPE = (3, 16, 16)
SEQ, D_MODEL, HEADS, D_FF = 8, 32, 4, 64
INIT_SEED = 20240601
NAMES = ("mlp", "cnn", "transformer")

# One optimiser step (the golden holds the parameters after it).
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(MLP_IN, 64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.Tanh(),
            nn.Linear(64, CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1, groups=16),  # depthwise
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TinyTransformer(nn.Module):
    """One nn.TransformerEncoderLayer (4 heads, GELU) over a sequence, mean-pooled into a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            d_model=D_MODEL,
            nhead=HEADS,
            dim_feedforward=D_FF,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
        )
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


def build(name: str) -> nn.Module:
    """A freshly initialised model (random weights: load the shipped state_dict for the real ones)."""
    return {"mlp": MLP, "cnn": CNN, "transformer": TinyTransformer}[name]()


def input_shape(name: str) -> tuple[int, ...]:
    return {"mlp": (BATCH, MLP_IN), "cnn": (BATCH, *CNN_SHAPE), "transformer": (BATCH, SEQ, D_MODEL)}[name]


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One SGD step (momentum, weight decay) on the cross-entropy loss; returns the loss before the step.

    The gradients stay in ``p.grad`` so that the caller can compare them.
    """
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.detach()
