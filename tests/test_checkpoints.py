"""Checkpoints: atomic writes, a SIGKILLed run that resumes to the same parameters, the non-finite guard."""
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import PUDNET
from pudnet.core import PudNet, PudNetConfig, atomic_write_bytes, load_tensors
from pudnet.training import TrainConfig, meta_train, previous_checkpoint

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
    prev = previous_checkpoint(killed)  # the checkpoint before the last, kept while the run is unfinished
    assert not any(p.name.startswith('killed') and p not in (killed, prev) for p in tmp_path.iterdir() if not p.name.startswith('.'))
    if prev.exists(): assert _step(prev) == _step(killed) - 3, (_step(prev), _step(killed))
    subprocess.run([PUDNET, *TRAIN, '--checkpoint', str(killed)], check=True, capture_output=True, timeout=600)
    assert not prev.exists()  # the finished run removed it
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


def test_the_checkpoint_before_the_last_is_kept_and_named_when_a_run_diverges(tmp_path, digits, monkeypatch):
    "Divergence may begin before it is caught: the error names the last checkpoint and the one before it, both intact."
    import pudnet.training as tr
    real, calls = tr.task_losses, []
    def blow_up_at_step_5(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 6: out['loss'] = out['loss'] * float('nan')
        return out
    monkeypatch.setattr(tr, 'task_losses', blow_up_at_step_5)
    ckpt = tmp_path / 'ck.safetensors'
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(n_train_classes=6, width=8))
    with pytest.raises(FloatingPointError) as e:
        meta_train(model, digits, list(range(6)), TrainConfig(steps=8, tasks_per_step=1, checkpoint_every=2), checkpoint=ckpt, progress=False)
    prev = tmp_path / 'ck.prev.safetensors'
    assert f"last good checkpoint: {ckpt} (step 4), and the one before it: {prev} (step 2)" in str(e.value), str(e.value)
    assert (_step(ckpt), _step(prev)) == (4, 2)
    PudNet.load(prev)


def test_a_checkpoint_whose_prediction_is_not_finite_is_not_saved(tmp_path, digits, monkeypatch):
    "Finite parameters of sane size are not enough: the network predicted for the step's first task must be sane too."
    import pudnet.training as tr
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(n_train_classes=6, width=8))
    real = tr._probe
    def overflow_before_step_3s_check(data, classes, cfg, step):
        if step == 3:
            with torch.no_grad():
                for p in model.generators.parameters(): p.fill_(1e5)  # within MAX_MAGNITUDE; its predictions overflow
        return real(data, classes, cfg, step)
    monkeypatch.setattr(tr, '_probe', overflow_before_step_3s_check)
    ckpt = tmp_path / 'ck.safetensors'
    with pytest.raises(FloatingPointError, match=r'after step 3, the predicted network holds NaN or Inf.*not saved; '
                                                 r'last good checkpoint: .*ck.safetensors \(step 2\)'):
        meta_train(model, digits, list(range(6)), TrainConfig(steps=6, tasks_per_step=1, checkpoint_every=2), checkpoint=ckpt, progress=False)
    assert _step(ckpt) == 2


def test_a_second_process_training_into_the_same_checkpoint_is_refused(tmp_path):
    "Two `pudnet train` runs (different seeds) on one --checkpoint: the second is refused while the first holds it."
    ck = tmp_path / 'ck.safetensors'
    first = subprocess.Popen([PUDNET, 'train', '--steps', '100000', '--tasks_per_step', '1', '--width', '8', '--checkpoint', str(ck),
                              '--quiet'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / '.ck.safetensors.lock').exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() is not None else 'no lock'
            time.sleep(0.2)
        second = subprocess.run([PUDNET, 'train', '--seed', '1', '--steps', '2', '--tasks_per_step', '1', '--width', '8',
                                 '--checkpoint', str(ck), '--quiet'], capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and f'another process (pid {first.pid}) is training into {ck}' in second.stderr, second.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()



class Killed(BaseException):
    "A SIGKILL between two file-system operations: those before it done, none after."


@pytest.mark.parametrize('can_swap', [True, False])
def test_a_kill_between_any_two_file_operations_keeps_the_checkpoints_consistent(tmp_path, monkeypatch, can_swap):
    "Saving step 9 over step 6 (step 3 kept), killed before its 1st, 2nd, ... file operation, until one save completes."
    import pudnet.training as tr
    ckpt = tmp_path / 'ck.safetensors'
    prev = previous_checkpoint(ckpt)
    def write(step): return lambda path: path.write_text(str(step))
    real = {'replace': os.replace, 'link': os.link, 'unlink': Path.unlink,
            'exchange': tr._exchange if can_swap else (lambda a, b: False)}
    for allowed in range(20):
        for p in (ckpt, prev): p.unlink(missing_ok=True)  # step 6 with step 3 before it, as two files of their own
        tr.save_keeping_previous(ckpt, write(3))
        tr.save_keeping_previous(ckpt, write(6))
        ops = []
        def counted(name):
            def op(*args, **kwargs):
                if len(ops) == allowed: raise Killed(name)
                ops.append(name)
                return real[name](*args, **kwargs)
            return op
        with monkeypatch.context() as m:
            m.setattr(os, 'replace', counted('replace'))
            m.setattr(os, 'link', counted('link'))
            m.setattr(Path, 'unlink', counted('unlink'))
            m.setattr(tr, '_exchange', counted('exchange'))
            try: tr.save_keeping_previous(ckpt, write(9))
            except Killed: completed = False
            else: completed = True
        last = int(ckpt.read_text())
        kept = int(prev.read_text()) if prev.exists() else None
        assert last in (6, 9), (ops, last)
        # beside the last checkpoint: nothing, or the one before it (without a swap, for an instant, the same one)
        assert kept in (None, last - 3) or (not can_swap and kept == last), (ops, last, kept)
        if completed: break
    assert completed and (last, kept) == (9, 6), (ops, last, kept)
    assert ops == (['unlink', 'exchange', 'replace'] if can_swap else ['unlink', 'exchange', 'unlink', 'link', 'replace', 'replace'])
