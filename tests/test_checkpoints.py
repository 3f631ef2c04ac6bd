"""Checkpoints: atomic writes, a SIGKILLed run that resumes to the same parameters, the non-finite guard."""
import os
import random
import signal
import subprocess
import time

import pytest
import torch

from conftest import PUDNET
from pudnet.core import PudNet, PudNetConfig, atomic_write_bytes, load_tensors
from pudnet.training import TrainConfig, meta_train

TRAIN = ['train', '--protocol', 'digits-set', '--steps', '24', '--tasks_per_step', '1', '--checkpoint_every', '3', '--quiet']


def _step(path):
    return int(load_tensors(path, kinds=('train',))[1]['step'])


def test_kill_at_a_random_moment_and_resume_reaches_the_uninterrupted_parameters(tmp_path):
    killed, straight = tmp_path / 'killed.safetensors', tmp_path / 'straight.safetensors'
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(2.0, 9.0)  # start-up takes ~2 s; 24 steps take ~10 s more
    print(f"killing after {delay:.2f} s (seed {seed})")
    proc = subprocess.Popen([PUDNET, *TRAIN, '--checkpoint', str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if killed.exists():  # whatever survived the kill is a complete checkpoint, written at an interval boundary
        step = _step(killed)
        assert step % 3 == 0 or step == 24, step
    assert not any(p.name.startswith('killed') and p != killed for p in tmp_path.iterdir() if not p.name.startswith('.'))
    subprocess.run([PUDNET, *TRAIN, '--checkpoint', str(killed)], check=True, capture_output=True, timeout=600)
    subprocess.run([PUDNET, *TRAIN, '--checkpoint', str(straight)], check=True, capture_output=True, timeout=600)
    a, b = PudNet.load(killed), PudNet.load(straight)
    assert _step(killed) == _step(straight) == 24
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(x, y), name
    history = load_tensors(killed, kinds=('train',))[0]['history']
    assert history.shape[0] == 24 and torch.equal(history[:, 0], torch.arange(24, dtype=torch.float64))


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / 'f.bin'
    atomic_write_bytes(target, b'old contents')
    real_fsync = os.fsync
    def crash(fd): raise OSError('disk gone')
    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(OSError, match='disk gone'): atomic_write_bytes(target, b'new' * 1000)
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert target.read_bytes() == b'old contents'
    assert [p.name for p in tmp_path.iterdir()] == ['f.bin']  # the temporary file was removed


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, digits, monkeypatch):
    import pudnet.training as tr
    real, calls = tr.task_losses, []
    def blow_up_at_step_3(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 4: out['loss'] = out['loss'] * float('nan')
        return out
    monkeypatch.setattr(tr, 'task_losses', blow_up_at_step_3)
    ckpt = tmp_path / 'ck.safetensors'
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(n_train_classes=6))
    with pytest.raises(FloatingPointError, match=r'non-finite loss nan at step 3.*last good checkpoint: .*ck.safetensors \(step 2\)'):
        meta_train(model, digits, list(range(6)), TrainConfig(steps=8, tasks_per_step=1, checkpoint_every=2), checkpoint=ckpt, progress=False)
    assert _step(ckpt) == 2
    PudNet.load(ckpt)  # intact and loadable
