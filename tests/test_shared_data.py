"""The real datasets in ../shared/datasets: protocols build from them (skipped, with the reason, where they are absent)."""
import hashlib

import numpy as np
import pytest
import torch

from conftest import needs_shared_data
from pudnet.data import load_shared
from pudnet.tasks import load_protocol_data, protocol_tasks

pytestmark = needs_shared_data()


def test_fashion_set_tasks():
    data = load_protocol_data('fashion-set')
    assert data.meta_train.y.unique().tolist() == list(range(6))
    t = protocol_tasks(data, 1)[0]
    assert t.p_x.shape == (2000, 1, 28, 28) and t.q_x.shape == (4000, 1, 28, 28)  # 500 train / all 1000 test per class
    assert t.classes == [6, 7, 8, 9]


def test_cifar100_decodes_exactly_and_splits_80_20():
    test = load_shared('cifar100', 'test')
    first_file = np.ascontiguousarray(test.x[:5000].permute(0, 2, 3, 1).numpy()).tobytes()  # the README's checksum is over N x H x W x C
    assert hashlib.sha256(first_file).hexdigest() == 'b0d44c657c26be3f5270bbdbef84d5d7cbf7bf7f2e3fd2fb2732cecf99ed43ab'

    assert test.x.shape == (10000, 3, 32, 32) and torch.bincount(test.y).tolist() == [100] * 100
    data = load_protocol_data('cifar100-set', meta_train=False)
    assert len(data.test_classes) == 20 and 'whale' in [data.test_p.classes[c] for c in data.test_classes]


def test_cifar100_to_cifar10_first_task_uses_the_whole_split():
    data = load_protocol_data('cifar100-to-cifar10', meta_train=False)
    t0, t1 = protocol_tasks(data, 2)
    assert len(t0.p_x) == 10000 and len(t1.p_x) == 5000 and len(t0.q_x) == 10000 and t0.ways == 10
