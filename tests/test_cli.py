"""The command line end to end: the demo with a reduced budget, train -> evaluate -> predict on a user's data."""
import json
import subprocess

import numpy as np
import torch
from PIL import Image

from conftest import PUDNET
from pudnet.core import load_network


def run(*args, timeout=600):
    r = subprocess.run([PUDNET, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_help_lists_the_commands():
    out = run('--help')
    for cmd in ('demo', 'train', 'evaluate', 'predict'): assert cmd in out


def test_demo_reduced_budget(tmp_path):
    out = run('demo', '--steps', 30, '--test_tasks', 10, '--scratch_tasks', 2, '--epochs', '1,3', '--out', tmp_path, '--quiet')
    assert 'PudNet' in out and 'Adam scratch 3 ep' in out
    # the floors, on the same tasks, with PudNet minus each (paired)
    assert 'Random network (untrained)' in out and "weights from another task's P" in out and 'PudNet minus it' in out
    records = json.loads((tmp_path / 'results.json').read_text())
    assert [r['method'] for r in records] == ['PudNet', 'Random network (untrained)', "PudNet [weights from another task's P]",
                                              'PudNet', 'Adam scratch 1 ep', 'Adam scratch 3 ep']
    floors = records[1:3]
    assert all(r['n_tasks'] == 10 and r['seeds'] == records[0]['seeds'] and 'pudnet_minus_ci95' in r for r in floors)
    pud = records[0]
    assert pud['protocol'] == 'digits-set' and pud['n_tasks'] == 10 and pud['seeds'] == list(range(10))
    assert pud['mean'] > 0.6, pud  # 30 steps already beat chance (0.25) by far
    assert (tmp_path / 'pudnet-digits.safetensors').exists()


def test_train_evaluate_predict_on_user_data(tmp_path, digits, digits_npz):
    ckpt = tmp_path / 'ck.safetensors'
    run('train', '--protocol', 'digits-set', '--steps', 6, '--tasks_per_step', 2, '--checkpoint', ckpt, '--quiet')
    out = run('evaluate', ckpt, '--data', digits_npz, '--ways', 3, '--tasks', 3, '--out', tmp_path / 'r.json', '--quiet')
    records = json.loads((tmp_path / 'r.json').read_text())
    assert records[0]['n_tasks'] == 3 and 0 <= records[0]['mean'] <= 1
    # an RGB ImageFolder of 32x32 images, resized and turned grey for the 28x28 grey checkpoint
    for i, (x, y) in enumerate(zip(digits.x[:40], digits.y[:40])):
        (tmp_path / 'folder' / str(int(y))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.repeat(x[0].numpy()[..., None], 3, -1)).resize((32, 32)).save(tmp_path / 'folder' / str(int(y)) / f'{i}.png')
    out = run('predict', ckpt, tmp_path / 'folder', '--out', tmp_path / 'net.safetensors')
    assert 'adapting 40 images of (3, 32, 32) to 1x28x28' in out
    net = load_network(tmp_path / 'net.safetensors')
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 576)


def test_predict_reads_a_sample_or_all(tmp_path, digits_checkpoint, digits_npz):
    out = run('predict', digits_checkpoint, digits_npz, '--out', tmp_path / 'a.safetensors')
    assert '(read: a sample of 64)' in out, out  # pudnet.fast.SAMPLE_SIZE
    out = run('predict', digits_checkpoint, digits_npz, '--out', tmp_path / 'b.safetensors', '--sample_size', 0)
    assert f"(read: {len(np.load(digits_npz)['y'])})" in out, out  # --sample_size 0: every image
    a, b = load_network(tmp_path / 'a.safetensors'), load_network(tmp_path / 'b.safetensors')
    x = torch.zeros(2, 1, 28, 28)
    assert not torch.equal(a[0][1].running_mean, b[0][1].running_mean)  # BatchNorm statistics of a sample vs of all images
    assert torch.allclose(a(x), a(x)) and a(x).shape == b(x).shape


def test_bench_speed_writes_its_records(tmp_path, digits_checkpoint):
    out = run('bench', '--speed', '--protocols', 'digits-set', '--n_tasks', 1, '--checkpoint', digits_checkpoint, '--out', tmp_path,
              '--device', 'cpu')
    assert 'meta-training:' in out and ('speed-up' in out or 'never reached' in out), out
    records = json.loads((tmp_path / 'digits-set' / 'records.json').read_text())
    assert [r['method'] for r in records][-1] == 'meta-training' and records[0]['checkpoint'] == str(digits_checkpoint)

def test_train_and_bench_build_the_same_config(tmp_path, monkeypatch):
    """One source of defaults: for the same architecture the CLI and the bench make the same PudNetConfig (a ResNet: eta 0.5,
    rank-16 generators), and the config options (`--eta`, `--no-use_kl_loss`) reach the configs meta-training gets."""
    from types import SimpleNamespace
    from pudnet import bench, cli
    from pudnet.tasks import get_protocol
    seen = []
    monkeypatch.setattr(cli, 'meta_train', lambda model, data, classes, cfg, **kw: seen.append((model.config, cfg)) or [])
    p = get_protocol('digits-set')
    pool = SimpleNamespace(x=torch.zeros(1, p.channels, p.image_size, p.image_size), classes=list(range(6)))
    assert cli.main(['train', '--arch', 'resnet18', '--steps', '1', '--checkpoint', str(tmp_path / 'a.safetensors'), '--quiet']) == 0
    model_config, _ = seen[-1]
    assert model_config == bench._model_config(bench.bench_config('cpu'), 'resnet18', pool)
    assert (model_config.eta, model_config.gen_rank) == (0.5, 16)
    assert cli.main(['train', '--eta', '0.3', '--no-use_kl_loss', '--sketch_labels', '--steps', '1',
                     '--checkpoint', str(tmp_path / 'b.safetensors'), '--quiet']) == 0
    model_config, train_config = seen[-1]
    assert model_config == bench._model_config(bench.bench_config('cpu'), 'convnet3', pool, eta=0.3, sketch_labels=True)
    assert (train_config.use_kl_loss, train_config.use_head_loss) == (False, True)
