"""The learned step (nbs/16_learned_step, the method) and its experiment drivers (nbs/experiments/06_learned_step_runs,
`pudnet.step_runs`): the step reads the labels, meta-training reaches the step sizes through the step, the network it
is given is never changed, and the method stands apart from its experiments."""
import subprocess
import sys

import pytest
import torch

from pudnet.data import to_float
from pudnet.fast import DevicePool
from pudnet.learned_step import CheckedStep, LearnedStep, StepConfig, adapted_network, step_swap, train_step
from pudnet.targets import build_target
from pudnet.tasks import load_protocol_data, protocol_tasks


def _labelled(digits, classes, per_class=6):
    idx = torch.cat([torch.nonzero(digits.y == c).flatten()[:per_class] for c in classes])
    return to_float(digits.x[idx]), torch.tensor([classes.index(int(c)) for c in digits.y[idx]])


def test_the_step_reads_the_labels_and_leaves_the_network_alone(digits):
    torch.manual_seed(0)
    net = build_target('convnet3', 1, 16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    step = LearnedStep(net, alpha0=0.1)
    x, y = _labelled(digits, [0, 1, 2])
    a = adapted_network(net, step, x, y, 3).state_dict()
    shuffled = adapted_network(net, step, x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))], 3)
    assert not torch.equal(a['2.0.weight'], shuffled.state_dict()['2.0.weight']), "the step ignored the labels"
    again = adapted_network(net, step, x.flip(0), y.flip(0), 3).state_dict()  # the order of the images does not matter
    torch.testing.assert_close(a['2.0.weight'], again['2.0.weight'], rtol=1e-4, atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "adapted_network changed its input"


def test_meta_training_moves_the_step_sizes_and_the_swap_scores_every_row(digits):
    torch.manual_seed(0)
    data = load_protocol_data('digits-set')
    pool = DevicePool(data.meta_train, data.train_classes)
    start = build_target('convnet3', 1, 16).eval()
    net, step, history = train_step(start, pool, StepConfig(ways=4, n_shot=4, q_per_class=3, augment=False), steps=3)
    assert len(history) == 3 and all(h['loss'] == h['loss'] for h in history)
    assert not torch.allclose(step.alpha('2.0.weight').detach(), torch.full((16,), 0.01)), "alpha got no gradient"
    assert not torch.equal(net.state_dict()['0.0.weight'], start.state_dict()['0.0.weight']), "net_lr > 0 trains the net"
    rows = step_swap(net, step, protocol_tasks(data, 2), start)
    assert all(len(a) == 2 and all(0 <= v <= 1 for v in a) for a in rows.values())


def test_the_entropy_term_reads_the_unlabelled_images_and_trains(digits):
    torch.manual_seed(0)
    net = build_target('convnet3', 1, 16)
    x, y = _labelled(digits, [0, 1, 2])
    u1, _ = _labelled(digits, [3, 4, 5], per_class=5)
    u2, _ = _labelled(digits, [6, 7, 8], per_class=5)
    step = LearnedStep(net, alpha0=0.1, entropy=1.0)
    w1, w2 = (adapted_network(net, step, x, y, 3, u).state_dict()['2.0.weight'] for u in (u1, u2))
    assert not torch.equal(w1, w2), "the entropy term ignored the unlabelled images"
    plain = adapted_network(net, LearnedStep(net, alpha0=0.1), x, y, 3, u1).state_dict()['2.0.weight']
    assert not torch.equal(w1, plain), "a step without the entropy term must not read the unlabelled images"
    data = load_protocol_data('digits-set')
    cfg = StepConfig(ways=4, n_shot=4, q_per_class=3, entropy=1.0, n_unlabelled=3, augment=False)
    _, trained, history = train_step(net, DevicePool(data.meta_train, data.train_classes), cfg, steps=2)
    assert trained.entropy == 1.0 and len(history) == 2


def test_tasks_of_several_domains_get_the_other_domain_row(digits):
    from dataclasses import replace
    from pudnet.learned_step import STEP_DOMAIN_ROW, STEP_ROWS
    torch.manual_seed(0)
    tasks = protocol_tasks(load_protocol_data('digits-set'), 4)
    net = build_target('convnet3', 1, 16).eval()
    step = LearnedStep(net, alpha0=0.5)
    assert STEP_DOMAIN_ROW not in step_swap(net, step, tasks, net), "one domain: no row for another domain"
    alternating = [replace(t, domain=d) for t, d in zip(tasks, 'abab')]  # the next task is always of the other domain
    rows = step_swap(net, step, alternating, net)
    assert list(rows) == [*STEP_ROWS, STEP_DOMAIN_ROW]
    assert rows[STEP_DOMAIN_ROW] == rows[STEP_ROWS[1]], "the other domain's step must be the next such task's"
    paired = [replace(t, domain=d) for t, d in zip(tasks, 'aabb')]  # task 0 borrows task 2's step, task 1 task 2's, ...
    rows = step_swap(net, step, paired, net)
    assert rows[STEP_DOMAIN_ROW][1] == rows[STEP_ROWS[1]][1] and rows[STEP_DOMAIN_ROW][3] == rows[STEP_ROWS[1]][3]


def test_a_pudnet_composed_with_the_step_trains_through_both(digits):
    from pudnet.core import PudNet, PudNetConfig
    from pudnet.learned_step import STEP_NET_ROW, STEP_PREDICTION_ROW, STEP_ROWS, predicted_networks, pudnet_weights, train_pudnet_step
    torch.manual_seed(0)
    data = load_protocol_data('digits-set')
    pool = DevicePool(data.meta_train, data.train_classes)
    start = build_target('convnet3', 1, 16).eval()
    model = PudNet(PudNetConfig.for_arch('convnet3', in_channels=1, image_size=28, n_train_classes=6, width=16,
                                         base_weights=True)).warm_start(start)
    x, _ = _labelled(digits, [0, 1, 2])
    w = pudnet_weights(model, x)
    assert set(w) == {n for n, _ in start.named_parameters()}, "every parameter of the target, by its name"
    w['2.0.weight'].sum().backward()
    assert model.generators[2].conv2.weight.grad is not None, "the predicted weights must reach the generators"
    cfg = StepConfig(ways=4, n_shot=4, q_per_class=3, n_unlabelled=3, augment=False, net_lr=1e-2)
    trained, step, history = train_pudnet_step(model, pool, cfg, steps=3)
    assert len(history) == 3 and all(h['loss'] == h['loss'] for h in history)
    assert not torch.allclose(step.alpha('2.0.weight').detach(), torch.full((16,), 0.01)), "alpha got no gradient"
    tasks = protocol_tasks(data, 3)
    before, after = predicted_networks(model, tasks), predicted_networks(trained, tasks)
    assert torch.equal(before[0].state_dict()['2.0.weight'], start.state_dict()['2.0.weight'])
    assert not torch.equal(after[0].state_dict()['2.0.weight'], after[1].state_dict()['2.0.weight']), "one per dataset"
    rows = step_swap(after, step, tasks, start)
    assert STEP_NET_ROW in rows and STEP_PREDICTION_ROW in rows and all(len(a) == 3 for a in rows.values())
    # the prediction alone swapped: with one network for every task it is the task's own stepped network
    same = step_swap([after[0]] * 3, step, tasks, start)
    assert same[STEP_PREDICTION_ROW] == same[STEP_ROWS[0]] and same[STEP_NET_ROW] == same[STEP_ROWS[2]]


def test_the_untrained_row_is_the_start_before_pretraining_and_joins_the_table(digits):
    from pudnet.evaluation import make_record
    from pudnet.step_runs import STEP_RANDOM_ROW, step_random, step_table
    from pudnet.meta_baselines import score_feature_net
    [untrained] = step_random('digits-set', 3, width=16)
    tasks = protocol_tasks(load_protocol_data('digits-set'), 3)
    torch.manual_seed(0)  # train_pretrained(seed=0) starts from this network
    net = build_target('convnet3', 1, 16)
    assert untrained['accs'] == [score_feature_net(net, t, 'cpu', amp=False) for t in tasks]
    rows = step_swap(net.eval(), LearnedStep(net, alpha0=0.5), tasks, net)
    records = [make_record('digits-set', row, 'convnet3', tasks, a, [0.0] * 3, 'cpu', meta_steps=0) for row, a in rows.items()]
    table = step_table({'run': records + [untrained]})
    assert f"| {STEP_RANDOM_ROW} |" in table and '| own minus the untrained network |' in table
    assert 'untrained' not in step_table({'run': records}), "no row without its record"


def test_max_alpha_keeps_every_step_size_at_most_it(digits):
    from dataclasses import replace
    data = load_protocol_data('digits-set')
    pool = DevicePool(data.meta_train, data.train_classes)
    start = build_target('convnet3', 1, 16).eval()
    cfg = StepConfig(ways=4, n_shot=4, q_per_class=3, augment=False, alpha_lr=1.0, max_alpha=0.02)
    largest = lambda step: max(step.alpha(n).max().item() for n, _ in start.named_parameters())
    torch.manual_seed(0)
    _, free, _ = train_step(start, pool, replace(cfg, max_alpha=None), steps=3)
    assert largest(free) > 0.02, "without a limit, an Adam rate of 1 on log alpha takes some step sizes past 0.02"
    torch.manual_seed(0)
    _, clipped, _ = train_step(start, pool, cfg, steps=3)
    assert largest(clipped) <= 0.02 * (1 + 1e-5)


def test_n_steps_takes_the_same_step_again_from_where_the_last_one_ended(digits):
    torch.manual_seed(0)
    net = build_target('convnet3', 1, 16)
    x, y = _labelled(digits, [0, 1, 2])
    once = adapted_network(net, LearnedStep(net, alpha0=0.1), x, y, 3)
    twice = adapted_network(once, LearnedStep(net, alpha0=0.1), x, y, 3).state_dict()
    two_steps = adapted_network(net, LearnedStep(net, alpha0=0.1, n_steps=2), x, y, 3).state_dict()
    for k, v in two_steps.items():
        if v.is_floating_point(): torch.testing.assert_close(v, twice[k], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(two_steps['2.0.weight'], once.state_dict()['2.0.weight']), "the second step did nothing"
    data = load_protocol_data('digits-set')
    cfg = StepConfig(ways=4, n_shot=4, q_per_class=3, augment=False, n_steps=2)
    _, step, history = train_step(net, DevicePool(data.meta_train, data.train_classes), cfg, steps=2)
    assert step.n_steps == 2 and len(history) == 2 and all(h['loss'] == h['loss'] for h in history)


def test_a_checked_step_refuses_a_step_that_overshoots_and_keeps_its_choices(digits):
    torch.manual_seed(0)
    net = build_target('convnet3', 1, 16)
    x, y = _labelled(digits, [0, 1, 2], per_class=8)
    p = to_float(digits.x[digits.y <= 2][:150])  # the task's P: BatchNorm statistics for the check
    wild = CheckedStep(LearnedStep(net, alpha0=1e4))
    adapted = adapted_network(net, wild, x, y, 3, p).state_dict()
    assert wild.chosen == [0.0], "a step that wrecks the held-out accuracy was taken"
    assert torch.equal(adapted['2.0.weight'], net.state_dict()['2.0.weight']), "s = 0 must keep the network"
    step = LearnedStep(net, alpha0=0.5)
    only_step = adapted_network(net, CheckedStep(step, (1.0,)), x, y, 3, p).state_dict()
    torch.testing.assert_close(only_step['2.0.weight'], adapted_network(net, step, x, y, 3).state_dict()['2.0.weight'])
    with pytest.raises(ValueError, match='at least 4'):
        adapted_network(net, CheckedStep(step), *_labelled(digits, [0, 1, 2], per_class=3), 3, p)
    with pytest.raises(ValueError, match="images of the task's P"):
        adapted_network(net, CheckedStep(step), x, y, 3)


def test_checked_step_experiment_scores_the_stepped_rows_twice_from_one_run(digits):
    from pudnet.learned_step import STEP_ROWS
    from pudnet.step_runs import checked_step_experiment
    cfg = StepConfig(ways=4, n_shot=4, q_per_class=3, n_unlabelled=3, augment=False)
    records, learned = checked_step_experiment('digits-set', n_tasks=2, pretrain_epochs=1, cfg=cfg, width=8, steps=2,
                                               scales=(0.0, 1.0))
    plain = {r['method']: r for r in records if 'step_check' not in r}
    checked = {r['method']: r for r in records if 'step_check' in r}
    assert set(plain) == set(checked) and checked[STEP_ROWS[0]]['step_check'] == [0.0, 1.0]
    for row in STEP_ROWS[2:]: assert checked[row]['accs'] == plain[row]['accs'], "rows without a step are the same"
    assert len(learned['chosen']) == 2 and set(learned['chosen']) <= {0.0, 1.0} and learned['meta_steps'] == 2


def test_step_experiment_on_a_number_of_tasks_shares_the_start_of_the_composed_run(digits):
    "`steps` makes the step-only control see as many tasks as a `pudnet_step_experiment`, from the same start."
    from pudnet.learned_step import STEP_ROWS
    from pudnet.step_runs import pudnet_step_experiment, step_experiment
    cfg = StepConfig(ways=4, n_shot=4, q_per_class=3, augment=False, net_lr=1e-6, max_alpha=1.0)
    alone, learned = step_experiment('digits-set', n_tasks=2, pretrain_epochs=1, cfg=cfg, width=8, steps=3)
    composed, _ = pudnet_step_experiment('digits-set', n_tasks=2, pretrain_epochs=1, cfg=cfg, width=8, steps=3)
    assert learned['meta_steps'] == 3 and {r['meta_steps'] for r in alone + composed} == {3}
    start = lambda records: next(r['accs'] for r in records if r['method'] == STEP_ROWS[3])
    assert start(alone) == start(composed), "both start from the same Pretrained network"
    assert learned['step_config']['net_lr'] == 1e-6


def test_the_method_imports_without_its_experiments():
    "pudnet.learned_step is the method: it neither loads nor holds the experiment drivers, which build on it."
    code = ('import sys, pudnet.learned_step as m; '
            'print("pudnet.step_runs" in sys.modules, any(hasattr(m, n) for n in ("step_experiment", "step_table"))); '
            'import pudnet.step_runs as r; print(r.step_swap is m.step_swap)')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False', 'False', 'True'], r.stdout
