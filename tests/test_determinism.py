"""Seeded runs reproduce their own numbers exactly."""
import torch

from pudnet.core import PudNet, PudNetConfig
from pudnet.evaluation import evaluate_pudnet
from pudnet.tasks import load_protocol_data, protocol_tasks
from pudnet.training import TrainConfig, meta_train


def _run(seed):
    data = load_protocol_data('digits-set')
    torch.manual_seed(seed)
    model = PudNet(PudNetConfig(n_train_classes=6))
    history = meta_train(model, data.meta_train, data.train_classes, TrainConfig(steps=8, tasks_per_step=2, seed=seed), progress=False)
    accs = evaluate_pudnet(model, protocol_tasks(data, 4))['acc']
    return [{k: v for k, v in h.items() if k != 'seconds'} for h in history], accs, model.state_dict()


def test_seeded_run_reproduces_itself():
    h1, a1, s1 = _run(0)
    h2, a2, s2 = _run(0)
    assert h1 == h2 and a1 == a2
    assert all(torch.equal(x, y) for x, y in zip(s1.values(), s2.values()))


def test_another_seed_gives_another_run():
    h1, _, _ = _run(0)
    h3, _, _ = _run(1)
    assert h1 != h3


def test_protocol_tasks_are_fixed_by_their_seeds():
    data = load_protocol_data('digits-set', meta_train=False)
    a, b = protocol_tasks(data, 3), protocol_tasks(data, 3)
    for x, y in zip(a, b): assert torch.equal(x.p_x, y.p_x) and torch.equal(x.q_y, y.q_y) and torch.equal(x.shot_idx, y.shot_idx)
