"""The bench and the GPU suite, smoke-tested on CPU: the same script and code paths the GPU runs, with the `smoke` preset."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PUDNET

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ['PudNet', 'Random network (untrained)', 'Pretrained', 'Meta-Baseline', 'ProtoNet', 'Adam scratch 1 ep', 'Adam scratch 2 ep',
            'GC scratch 2 ep', 'PudNet + fine-tuning 1 ep', 'PudNet w/o KL', 'PudNet metric loss only',
            'PudNet metric loss only, Pretrained start', 'PudNet, Pretrained start, before meta-training',
            'Pretrained [own BN statistics]', 'Random network (untrained) [own BN statistics]',
            "PudNet [weights from another task's P]", "PudNet [weights from a meta-train task's P]", 'PudNet [weights from mean sketch]']


_BLOCK_NOTEBOOK_PACKAGES = """import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('plotly', 'ipywidgets', 'traitlets'): raise ImportError(f'{name} is not on the GPU machine')
sys.meta_path.insert(0, Block())
"""


def test_gpu_suite_modules_import_without_notebook_packages():
    "The lent GPU machine has torch, fastcore and fastprogress but no plotly or ipywidgets: what the GPU suite runs imports without them."
    code = _BLOCK_NOTEBOOK_PACKAGES + "import pudnet.cli, pudnet.bench, pudnet.speed\nprint('imported')"
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == 'imported', r.stderr[-3000:]
    # and the blocker works: the notebooks' results module does need plotly
    r = subprocess.run([sys.executable, '-c', code.replace('pudnet.speed', 'pudnet.results')], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and 'plotly is not on the GPU machine' in r.stderr


def test_gpu_suite_script_smoke_on_cpu(tmp_path):
    "`.ci/gpu_suite.sh` (the GPU suite) runs end to end on CPU with the smoke preset and writes records, curves and a log."
    env = {**os.environ, 'PATH': f"{Path(sys.executable).parent}:{os.environ['PATH']}", 'PUDNET_COMMIT': 'test',
           'PUDNET_SPEED_ARGS': '--protocols digits-set --arch convnet3 --n_tasks 1 --device cpu'}
    out = tmp_path / 'out'
    r = subprocess.run(['bash', '.ci/gpu_suite.sh', str(out), str(tmp_path / 'no-data'), '--preset', 'smoke', '--device', 'cpu'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {'records.json', 'curves.json', 'log.txt', 'console.log', 'nvidia-smi.txt'}
    speed = json.loads((out / 'speed' / 'digits-set' / 'records.json').read_text())  # the speed run comes first
    assert speed[-1]['method'] == 'meta-training' and speed[-1]['tasks_per_second'] > 0 and speed[0]['commit'] == 'test'
    records = json.loads((out / 'records.json').read_text())
    assert not [x for x in records if 'failed' in x or 'skipped' in x], [x for x in records if 'failed' in x or 'skipped' in x]
    methods = {x['method'] for x in records}
    for m in EXPECTED: assert m in methods, (m, sorted(methods))
    main = [x for x in records if x['protocol'] == 'digits-set' and not x.get('subset') and x['arch'] == 'convnet3'
            and x['method'] in ('PudNet', 'Pretrained', 'ProtoNet', 'Meta-Baseline', 'Random network (untrained)')]
    assert len({tuple(x['seeds']) for x in main}) == 1, 'every method must be scored on the same tasks'
    variant = [x for x in records if x['method'] == 'PudNet metric loss only']  # a main variant: scored like PudNet
    assert variant[0]['variant'] == {'use_head_loss': False, 'use_kl_loss': False} and variant[0]['steps'] == 20
    started = [x for x in records if x['method'] == 'PudNet metric loss only, Pretrained start'][0]  # starts from Pretrained's network
    assert started['variant']['base_weights'] and started['variant']['lr'] == 1e-4 and started['pretrain_seconds'] > 0
    assert started['seeds'] == main[0]['seeds']
    for x in records:
        assert 0 <= x['mean'] <= 1 and x['commit'] == 'test' and x['torch'] and x['device']
    ablation = {x['method']: x for x in records if x.get('group') == 'ablation'}
    assert set(ablation) == {'PudNet (ablation reference)', 'PudNet w/o KL'}, sorted(ablation)
    assert ablation['PudNet w/o KL']['steps'] == ablation['PudNet (ablation reference)']['steps']  # variants train as long as the reference
    for x in records:  # per-task accuracies, for paired differences; the BatchNorm treatment of every row
        assert len(x['accs']) == x['n_tasks'] and abs(sum(x['accs']) / len(x['accs']) - x['mean']) < 1e-9
    assert {x['bn'] for x in records if x['method'].startswith(('Pretrained', 'Random network'))} == {'task', 'fixed'}
    assert {x['bn'] for x in main if x['method'] == 'PudNet'} == {'task'}
    swap = {x['swap']: x for x in records if x.get('group') == 'swap' and x['method'].startswith('PudNet [')}
    assert set(swap) == {'own P', "another task's P", "a meta-train task's P", 'mean sketch'}, sorted(swap)
    own = [x for x in main if x['method'] == 'PudNet'][0]
    assert swap['own P']['accs'] == own['accs'][:len(swap['own P']['accs'])]  # the swap test's own-P row is PudNet's own score
    assert swap['own P']['gap'] == 0 and all(len(x['spread']) == 3 for x in swap.values())  # ConvNet-3: three predicted layers
    curves = json.loads((out / 'curves.json').read_text())
    hist = curves['digits-set convnet3 PudNet']['history']
    assert len(hist) == 20 and all(h['loss'] == h['loss'] for h in hist)  # max_steps=20, finite losses


def test_bench_bad_preset_is_a_clear_error(tmp_path):
    r = subprocess.run([PUDNET, 'bench', '--preset', 'tpu', '--out', str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'unknown preset' in r.stderr and 'gpu' in r.stderr, r.stderr


def test_bench_unknown_protocol_is_a_clear_error(tmp_path):
    r = subprocess.run([PUDNET, 'bench', '--preset', 'smoke', '--protocols', 'imagenet-set', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'unknown protocol' in r.stderr, r.stderr


@pytest.mark.parametrize('option', ['--variants', '--ablations'])
def test_bench_unknown_variant_is_a_clear_error(tmp_path, option):
    r = subprocess.run([PUDNET, 'bench', '--preset', 'smoke', option, 'full PudNet,no sketch', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown PudNet variants ['no sketch']" in r.stderr and 'metric loss only' in r.stderr, r.stderr
    assert not (tmp_path / 'records.json').exists()  # refused before any work


def test_bench_variants_and_ablations_options(tmp_path):
    """`--variants 'metric loss only'`: that PudNet alone is trained, and the scratch-task and fine-tuning rows carry its name;
    `--ablations`: those ablation rows replace the preset's, after the reference."""
    env = {**os.environ, 'PUDNET_COMMIT': 'test'}
    r = subprocess.run([PUDNET, 'bench', '--preset', 'smoke', '--variants', 'metric loss only', '--ablations', 'metric only + base kernels',
                        '--device', 'cpu', '--out', str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    records = [x for x in json.loads((tmp_path / 'records.json').read_text()) if 'method' in x]
    pudnets = {(x['method'], bool(x.get('subset'))) for x in records if x['method'].startswith('PudNet') and not x.get('group')}
    assert pudnets == {('PudNet metric loss only', False), ('PudNet metric loss only', True),
                       ('PudNet metric loss only + fine-tuning 1 ep', True),
                       ('PudNet metric loss only, Pretrained start', False),  # the smoke preset's Pretrained-start rows
                       ('PudNet, Pretrained start, before meta-training', False)}, sorted(pudnets)
    ablation = {x['method']: x for x in records if x.get('group') == 'ablation'}
    assert set(ablation) == {'PudNet (ablation reference)', 'PudNet metric only + base kernels'}, sorted(ablation)
    based = ablation['PudNet metric only + base kernels']
    assert based['variant']['base_weights'] and based['steps'] == ablation['PudNet (ablation reference)']['steps']


def test_warm_up_leaves_the_model_and_the_random_state_as_they_were(digits):
    "The untimed warm-up step before a timed trainer must not change what that trainer then does."
    import torch
    from pudnet.bench import warm_up
    from pudnet.core import PudNet, PudNetConfig
    from pudnet.fast import DevicePool
    from pudnet.training import TrainConfig
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(n_train_classes=6, width=16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    warm_up(model, DevicePool(digits, list(range(6))), TrainConfig(steps=5, tasks_per_step=2, p_per_class=12, q_per_class=5),
            amp=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the warm-up trained the model itself"
    assert torch.equal(rng, torch.get_rng_state()), "the warm-up moved the global random state"
    assert model.training, "the warm-up changed the model's mode"
