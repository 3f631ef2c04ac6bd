"""Shared fixtures: tiny trained checkpoints and data files, built once per test session."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pudnet.core import PudNet, PudNetConfig
from pudnet.data import load_digits_images, shared_data_root
from pudnet.training import TrainConfig, meta_train

REPO = Path(__file__).resolve().parents[1]
PUDNET = str(Path(sys.executable).parent / 'pudnet')  # the console script of this environment


@pytest.fixture(scope='session')
def digits():
    return load_digits_images()


@pytest.fixture(scope='session')
def digits_checkpoint(tmp_path_factory, digits):
    "A ConvNet-3 PudNet meta-trained for 10 steps on digits 0-5 (a real, if short, training run)."
    path = tmp_path_factory.mktemp('ckpt') / 'digits.safetensors'
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(n_train_classes=6))
    meta_train(model, digits, list(range(6)), TrainConfig(steps=10, tasks_per_step=2), checkpoint=path, progress=False)
    return path


@pytest.fixture(scope='session')
def digits_npz(tmp_path_factory, digits):
    "Digits 6-9 as a user's .npz file (x: N x H x W x C uint8, y: labels)."
    path = tmp_path_factory.mktemp('data') / 'digits69.npz'
    sub = digits.select([6, 7, 8, 9])
    np.savez(path, x=sub.x.permute(0, 2, 3, 1).numpy(), y=sub.y.numpy() - 6)
    return path


def needs_shared_data():
    root = shared_data_root()
    return pytest.mark.skipif(root is None, reason='../shared/datasets not found (set PUDNET_DATA to the folder of the shared dataset copies)')
