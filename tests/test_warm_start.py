"""Base kernels and a warm start (`PudNetConfig(base_weights=True)`, `PudNet.warm_start`): a PudNet started from a network
trained the usual way predicts exactly that network at first, then learns per-dataset residuals on both training paths,
saves and loads, and refuses networks that do not fit."""
import copy

import pytest
import torch
from torch import nn

from pudnet.core import PudNet, PudNetConfig, calibrate_batchnorm
from pudnet.data import to_float
from pudnet.fast import DevicePool, FastPredictor, fast_meta_train
from pudnet.meta_baselines import train_pretrained
from pudnet.targets import build_target
from pudnet.training import TrainConfig, meta_train

CONFIG = dict(n_train_classes=6, width=16, base_weights=True)


def _tensors(net): return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope='module')
def pretrained(digits):
    "A ConvNet-3 and its classifier head, trained with cross-entropy on digits 0-5 for one epoch."
    net, info, head = train_pretrained(DevicePool(digits, list(range(6))), 'convnet3', width=16, epochs=1, amp=False, return_head=True)
    assert info['steps'] > 0
    return net, head


def test_a_warm_started_pudnet_first_predicts_the_pretrained_network(digits, pretrained):
    net, head = pretrained
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(**CONFIG)).warm_start(net, head)
    x = to_float(digits.select([6, 7]).x[:80])
    predicted = model.predict(x)
    expected = calibrate_batchnorm(copy.deepcopy(net), x)  # the same network, its BatchNorm statistics from the new dataset
    for k, v in expected.state_dict().items():
        torch.testing.assert_close(predicted.state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(model.head.weight, head.weight)


def test_a_warm_started_pudnet_learns_dataset_residuals_saves_and_loads(tmp_path, digits, pretrained):
    net, head = pretrained
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(**CONFIG)).warm_start(net, head)
    base0 = model.base['0__0__weight'].detach().clone()
    fast_meta_train(model, DevicePool(digits, list(range(6))), TrainConfig(steps=6, tasks_per_step=2, p_per_class=12, q_per_class=5, lr=1e-3),
                    amp=False)
    assert not torch.equal(model.base['0__0__weight'], base0), "the base kernels are meta-learned too"
    x1, x2 = to_float(digits.select([6, 7]).x[:60]), to_float(digits.select([8, 9]).x[:60])
    w1, w2 = model.predict(x1).state_dict()['0.0.weight'], model.predict(x2).state_dict()['0.0.weight']
    assert not torch.equal(w1, w2), "after meta-training the generators' residuals depend on the dataset"
    torch.testing.assert_close(FastPredictor(model, sample_size=None).predict(x1)['0.0.weight'].float(), w1, rtol=1e-4, atol=1e-5)
    model.save(tmp_path / 'm.safetensors')
    again = PudNet.load(tmp_path / 'm.safetensors')
    assert again.config.base_weights and again.base is not None
    a, b = _tensors(model.predict(x1)), _tensors(again.predict(x1))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_base_kernels_train_on_the_reference_path_from_a_random_start(digits):
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(**CONFIG))
    assert all(g.conv2.weight.abs().sum() == 0 for g in model.generators), "the generators start at zero"
    history = meta_train(model, digits, list(range(6)), TrainConfig(steps=4, tasks_per_step=2), progress=False)
    assert all(h['loss'] == h['loss'] for h in history)
    assert all(g.conv2.weight.abs().sum() > 0 for g in model.generators), "and then learn"


def test_warm_start_refuses_what_does_not_fit(pretrained):
    net, head = pretrained
    with pytest.raises(ValueError, match='base_weights=True'):
        PudNet(PudNetConfig(n_train_classes=6, width=16)).warm_start(net)
    with pytest.raises(ValueError, match=r"build_target\('convnet3', 1, 32\)"):  # a network of another width
        PudNet(PudNetConfig(n_train_classes=6, width=32, base_weights=True)).warm_start(net)
    with pytest.raises(ValueError, match='input channels'):
        PudNet(PudNetConfig(**CONFIG)).warm_start(build_target('resnet18', 1))
    with pytest.raises(ValueError, match='10 meta-train classes'):
        PudNet(PudNetConfig(**{**CONFIG, 'n_train_classes': 10})).warm_start(net, head)
