"""Every module imports on its own in a fresh interpreter (a notebook can hide a missing import), and matches its notebook."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (REPO / 'pudnet').glob('*.py') if not p.stem.startswith('_'))


@pytest.fixture(scope='module')
def fresh_imports():
    "Every module imported in its own fresh interpreter, all started at once (each import is mostly torch's): {module: (returncode, stderr)}."
    procs = {m: subprocess.Popen([sys.executable, '-c', f'import pudnet.{m}'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True) for m in MODULES}
    errors = {m: p.communicate(timeout=300)[1] for m, p in procs.items()}
    return {m: (p.returncode, errors[m]) for m, p in procs.items()}


@pytest.mark.parametrize('module', MODULES)
def test_module_imports_in_fresh_process(module, fresh_imports):
    code, err = fresh_imports[module]
    assert code == 0, err


def test_every_module_has_a_notebook():
    "A renamed or deleted notebook leaves its old module behind: every module must come from a notebook's default_exp."
    exported = set()
    for nb in (REPO / 'nbs').rglob('*.ipynb'):
        for cell in json.loads(nb.read_text())['cells']:
            for line in ''.join(cell['source']).splitlines():
                if line.startswith('#| default_exp '): exported.add(line.split()[-1])
    assert set(MODULES) - {'__init__'} <= exported, f"modules without a notebook: {set(MODULES) - exported}"
    assert exported <= set(MODULES), f"notebooks whose module is missing (run nbdev_export): {exported - set(MODULES)}"


def test_every_notebook_reads_with_execnb():
    "nbdev reads notebooks with execnb: one output it cannot read (a nested 'source' split into lines) breaks every nbdev command."
    from execnb.nbio import read_nb
    for nb in sorted((REPO / 'nbs').rglob('*.ipynb')):
        if '.ipynb_checkpoints' not in nb.parts: read_nb(nb)


def test_the_cli_starts_without_torchvision():
    "torchvision's import (its models pull in torch._dynamo) costs as much as the rest of the package: only a ResNet loads it."
    code = ('import sys, pudnet.cli, pudnet.bench, pudnet.learned_step; print(any(m.startswith("torchvision") for m in sys.modules)); '
            'from pudnet.targets import resnet18; resnet18(); print("torchvision.models" in sys.modules)')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False', 'True'], r.stdout
