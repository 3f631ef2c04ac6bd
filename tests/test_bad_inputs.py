"""Bad input gets a clear error that names the problem, from the Python API and from the command line."""
import pickle
import subprocess

import numpy as np
import pytest
import torch

from conftest import PUDNET
from pudnet.core import PudNet, PudNetConfig, PrototypeClassifier, load_tensors
from pudnet.data import ImageData, load_npz, load_user_data, to_float
from pudnet.evaluation import user_tasks
from pudnet.targets import build_target


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return PudNet(PudNetConfig())


@pytest.fixture(scope='module')
def rgb_model():
    torch.manual_seed(0)
    return PudNet(PudNetConfig(in_channels=3, image_size=32))


@pytest.mark.parametrize('images, message', [
    (torch.randn(28, 28), 'of shape (N, C, H, W)'),
    (torch.randn(2, 5, 1, 28, 28), 'of shape (N, C, H, W)'),
    (torch.randn(1, 28, 28), 'add a batch dimension'),
    (torch.randn(4, 3, 28, 28), 'adapt_images'),
    (torch.randn(4, 1, 32, 32), 'expects (28, 28)'),
    (torch.zeros(0, 1, 28, 28), 'empty'),
    (torch.full((4, 1, 28, 28), float('inf')), 'NaN or Inf'),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), 'to_float'),
    (np.zeros((4, 1, 28, 28), dtype=np.float32), 'a torch Dataset or a DataLoader'),
])
def test_predict_refuses_bad_images(model, images, message):
    with pytest.raises((ValueError, TypeError), match=None) as e: model.predict(images)
    assert message in str(e.value)


def test_grayscale_into_rgb_model_is_refused_with_a_fix(rgb_model):
    with pytest.raises(ValueError, match='1 channels but the model expects 3.*adapt_images'):
        rgb_model.predict(torch.randn(8, 1, 32, 32))


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'vgg11'.*convnet3"): PudNetConfig(arch='vgg11')
    with pytest.raises(ValueError, match='unknown architecture'): build_target('alexnet')


def test_one_class_and_empty_datasets(model):
    one = ImageData(torch.zeros(30, 1, 28, 28, dtype=torch.uint8), torch.zeros(30), ['only'])
    with pytest.raises(ValueError, match='1 class; classification needs at least 2'): user_tasks(one, model)
    empty = ImageData(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0), ['a', 'b'])
    with pytest.raises(ValueError, match='empty'): user_tasks(empty, model)
    net = model.predict(torch.rand(10, 1, 28, 28) * 2 - 1)
    with pytest.raises(ValueError, match='at least 2 classes'):
        PrototypeClassifier.from_labelled(net, torch.randn(5, 1, 28, 28), torch.zeros(5, dtype=torch.long))


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r'labels must lie in 0..1'):
        ImageData(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 2]), ['a', 'b'])


def test_checkpoint_of_another_architecture(digits_checkpoint):
    with pytest.raises(ValueError, match="PudNet for 'convnet3', not 'resnet18'"): PudNet.load(digits_checkpoint, arch='resnet18')


def test_truncated_and_garbage_checkpoints(digits_checkpoint, tmp_path):
    raw = digits_checkpoint.read_bytes()
    for name, data in [('cut.safetensors', raw[:len(raw) // 3]), ('head.safetensors', raw[:6]), ('junk.safetensors', b'not a checkpoint' * 10),
                       ('empty.safetensors', b'')]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match='truncated or corrupted'): PudNet.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match='does not exist'): PudNet.load(tmp_path / 'missing.safetensors')


class _Payload:
    "Unpickling this object creates a marker file: proof that a loader executed code."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (self.marker, 'w'))


def test_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'PWNED'
    evil = tmp_path / 'evil.safetensors'
    evil.write_bytes(pickle.dumps({'model': _Payload(str(marker))}))
    torch.save({'x': _Payload(str(marker))}, tmp_path / 'evil.pt')
    for path in (evil, tmp_path / 'evil.pt'):
        with pytest.raises(ValueError, match='pickled .pt files are refused'): PudNet.load(path)
    assert not marker.exists(), 'loading executed the pickle payload'


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({'w': torch.zeros(3)}, tmp_path / 'other.safetensors')
    with pytest.raises(ValueError, match='not a pudnet'): load_tensors(tmp_path / 'other.safetensors')


@pytest.mark.parametrize('arrays, message', [
    ({'x': np.zeros((4, 8, 8, 1), np.uint8)}, "lacks ['y']"),
    ({'x': np.zeros((4, 8, 8, 1), np.float32), 'y': np.zeros(4, int)}, 'must be uint8'),
    ({'x': np.zeros((4, 8), np.uint8), 'y': np.zeros(4, int)}, 'N x H x W x C'),
    ({'x': np.zeros((4, 8, 8, 1), np.uint8), 'y': np.zeros(3, int)}, 'one label per image'),
    ({'x': np.zeros((4, 8, 8, 1), np.uint8), 'y': np.zeros(4, float)}, 'integer labels'),
])
def test_bad_npz_files(tmp_path, arrays, message):
    np.savez(tmp_path / 'd.npz', **arrays)
    with pytest.raises(ValueError) as e: load_npz(tmp_path / 'd.npz')
    assert message in str(e.value)


def test_missing_data_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'): load_user_data(tmp_path / 'nothing')


def test_cli_reports_user_errors_in_one_line(tmp_path, digits_checkpoint):
    cases = [
        (['evaluate', str(tmp_path / 'missing.safetensors'), '--protocol', 'digits-set'], 'does not exist'),
        (['evaluate', str(digits_checkpoint), '--protocol', 'cifar100-set'], 'expects 1x28x28 images'),
        (['evaluate', str(digits_checkpoint), '--protocol', 'digits-set', '--arch', 'resnet34'], "not 'resnet34'"),
        (['evaluate', str(digits_checkpoint)], 'exactly one of --protocol'),
        (['train', '--arch', 'vgg', '--steps', '1'], 'unknown architecture'),
        (['train', '--protocol', 'imagenet-set', '--steps', '1'], 'unknown protocol'),
        (['fly'], 'unknown command'),
    ]
    runs = [subprocess.Popen([PUDNET, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args, _ in cases]
    for (args, message), run in zip(cases, runs):  # all started at once: each spends its time importing torch
        out, err = run.communicate(timeout=300)
        assert run.returncode == 2, (args, out, err)
        assert message in err and 'Traceback' not in err, (args, err)


def test_more_ways_than_the_head_is_fine_and_more_than_the_data_is_refused(model, digits):
    "The auxiliary head (6 classes) is not used at test time: a 10-way task works; asking for more classes than exist does not."
    from pudnet.evaluation import evaluate_pudnet
    tasks = user_tasks(digits, model, ways=10, n_tasks=1)
    assert tasks[0].ways == 10 and 0 <= evaluate_pudnet(model, tasks)['acc'][0] <= 1
    with pytest.raises(ValueError, match='cannot build 11-way tasks from 10 classes'): user_tasks(digits, model, ways=11)


def test_wrong_dtype_and_size_from_the_cli_are_adapted_or_refused(tmp_path, digits_checkpoint):
    np.savez(tmp_path / 'tiny.npz', x=np.zeros((20, 8, 8), np.uint8), y=np.arange(20) % 2)
    np.savez(tmp_path / 'floats.npz', x=np.zeros((20, 8, 8), np.float32), y=np.arange(20) % 2)
    r = subprocess.run([PUDNET, 'predict', str(digits_checkpoint), str(tmp_path / 'tiny.npz'), '--out', str(tmp_path / 'n.safetensors')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'adapting 20 images of (1, 8, 8) to 1x28x28' in r.stdout, r.stderr
    r = subprocess.run([PUDNET, 'predict', str(digits_checkpoint), str(tmp_path / 'floats.npz')], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'must be uint8' in r.stderr
