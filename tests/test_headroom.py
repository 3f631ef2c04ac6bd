"""The room map (nbs/17_headroom): the domains are what they say, the room is the paired difference (zero for a network
against itself), the networks of a seed are the ones the definition names, and the committed summary has the schema of
the room-map issue and is what its records give."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pudnet.data import ImageData, to_float
from pudnet.headroom import (ALL_LABELS, CELL_KEYS, DOMAINS, FIXED_ALL, MADE_ALL, MIXES, PUDNET_KEYS, SKETCH_SOURCES,
                             TEN_SHOTS, all_labels_task, check_summary, domain_images, fine_tune, headroom_cells,
                             headroom_networks, invert_images, probe_accuracy, room_matrix, room_pudnet,
                             room_pudnet_rows, rotate_images, score_room_pudnet, UNTRAINED, untrained_accuracies)
from pudnet.meta_baselines import evaluate_feature_net
from pudnet.targets import build_target
from pudnet.tasks import sample_task

REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / 'results' / 'headroom' / 'summary.json'


def _images(n=4, c=3, size=32, seed=0):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_inverted_and_rotated_domains_are_what_they_say():
    x = _images()
    assert torch.equal(invert_images(x).int() + x.int(), torch.full_like(x, 255).int())
    assert torch.equal(rotate_images(x)[..., 0, :], x[..., :, -1])  # the right column becomes the top row (CCW)
    assert torch.equal(rotate_images(rotate_images(x)), x.flip(-1).flip(-2))
    grey = ImageData(_images(c=1, size=28), torch.zeros(4, dtype=torch.long), ['a'])
    plain = domain_images(grey)
    assert plain.shape == (3, 32, 32)
    assert torch.equal(domain_images(grey, 'rot90').x, rotate_images(plain.x))
    assert torch.equal(domain_images(grey, 'invert').x, 255 - plain.x)
    assert [DOMAINS[d].transform for d in MIXES['conflicting']] == ['none', 'invert', 'none', 'rot90']


def _record(made, fixed, domain='a'):
    return {'domains': {domain: {'accs': {'specialist': made, 'shared-longer': fixed}}}}


def test_room_is_the_paired_difference_in_points():
    recs = [_record([0.5, 0.6], [0.5, 0.6]), _record([0.5, 0.6], [0.5, 0.6])]
    assert np.array_equal(room_matrix(recs, 'a'), np.zeros((2, 2)))
    m = room_matrix([_record([0.7, 0.5], [0.6, 0.55]), _record([0.4, 0.9], [0.4, 0.8])], 'a')
    assert np.allclose(m, [[10, -5], [0, 10]])
    assert np.allclose(room_matrix([_record([0.7], [0.6])], 'a', made='shared-longer', fixed='specialist'), [[-10]])


def test_a_seed_trains_the_shared_network_its_longer_copy_and_a_specialist_per_domain():
    toy = ImageData(_images(8 * 30), torch.arange(8).repeat_interleave(30), [f'c{i}' for i in range(8)],
                    ['a'] * 4 + ['b'] * 4)
    nets, infos = headroom_networks(toy, width=4, seed=0, n_tasks=8)
    assert sorted(nets) == ['shared', 'shared-longer', 'specialist/a', 'specialist/b']
    assert [infos[k]['steps'] for k in sorted(nets)] == [8, 2, 2, 2]
    w = lambda k: nets[k].state_dict()['0.0.weight']
    assert not torch.equal(w('specialist/a'), w('specialist/b')) and not torch.equal(w('shared'), w('specialist/a'))


@pytest.mark.skipif(not SUMMARY.exists(), reason='no committed room map yet')
def test_the_committed_summary_has_the_schema_and_matches_its_records():
    summary = check_summary(json.loads(SUMMARY.read_text()))
    assert summary['cells'] and all(set(CELL_KEYS) <= set(c) for c in summary['cells'])
    assert summary['cells'] == headroom_cells(SUMMARY.parent)
    for c in summary['cells']:
        assert len(c['seeds']) >= 3 and np.isfinite(c['headroom_ci95']) and c['labels'] in (TEN_SHOTS, ALL_LABELS)
    assert summary['pudnet'] == room_pudnet_rows(SUMMARY.parent / 'pudnet')
    assert all(set(PUDNET_KEYS) <= set(r) and r['step'] is False for r in summary['pudnet'])


def _seed_record(seed, made, fixed):
    return {'mix': 'toy', 'width': 8, 'labels': '10 per class', 'n_tasks': 40, 'continue_tasks': 10, 'seed': seed,
            'made': 'specialist', 'fixed': 'shared-longer', 'seconds': 1.0,
            'domains': {'a': {'classes': 'validation', 'accs': {'specialist': made, 'shared-longer': fixed}}}}


def test_a_cell_is_the_mean_room_over_seeds_and_tasks_and_needs_three_seeds(tmp_path):
    sub = tmp_path / 'toy-w8-n40'
    sub.mkdir()
    rooms = [([0.6, 0.7], [0.5, 0.7]), ([0.5, 0.5], [0.5, 0.4]), ([0.8, 0.6], [0.7, 0.6])]  # 10, 0 / 0, 10 / 10, 0
    for s, (made, fixed) in enumerate(rooms[:2]):
        (sub / f'seed{s}.json').write_text(json.dumps(_seed_record(s, made, fixed)))
    assert headroom_cells(tmp_path) == []  # two seeds are not a cell yet
    (sub / 'seed2.json').write_text(json.dumps(_seed_record(2, *rooms[2])))
    [cell] = headroom_cells(tmp_path)
    assert cell['headroom'] == 5.0 and cell['seeds'] == [0, 1, 2] and cell['budget'] == 50 and cell['tasks'] == 2
    assert cell['headroom_ci95'] > 0 and check_summary({'cells': [cell], 'pudnet': []})


def test_a_summary_without_the_schema_is_refused():
    with pytest.raises(ValueError, match="'cells' and 'pudnet'"): check_summary({'cells': []})
    cell = dict.fromkeys(CELL_KEYS, 0) | {'seeds': [0, 1], 'mix': 'm'}
    with pytest.raises(ValueError, match='< 3'): check_summary({'cells': [cell], 'pudnet': []})
    with pytest.raises(ValueError, match='lacks'): check_summary({'cells': [{'mix': 'm'}], 'pudnet': []})


def test_with_all_labels_a_cell_is_the_better_made_minus_the_better_fixed(tmp_path):
    sub = tmp_path / 'toy-w8-n40-all'
    sub.mkdir()
    accs = {'shared-longer': [0.5, 0.5], 'shared-longer probe': [0.6, 0.7], 'fine-tuned': [0.6, 0.6], 'scratch': [0.8, 0.8]}
    for s in range(3):
        r = _seed_record(s, None, None) | {'labels': ALL_LABELS, 'made': list(MADE_ALL), 'fixed': list(FIXED_ALL)}
        r['domains'] = {'a': {'classes': 'validation', 'accs': accs}}
        (sub / f'seed{s}.json').write_text(json.dumps(r))
    [cell] = headroom_cells(tmp_path)
    assert (cell['made'], cell['fixed'], cell['labels']) == ('scratch', 'shared-longer probe', ALL_LABELS)
    assert abs(cell['headroom'] - 15.0) < 1e-9 and set(cell['accuracy']) == set(accs)


def test_all_labels_fine_tuning_and_the_probe_read_every_image_of_p():
    data = ImageData(_images(40, seed=1), torch.arange(4).repeat_interleave(10), list('abcd'))
    task = sample_task(data, None, range(4), 4, 6, 4, 2, seed=0)
    assert len(all_labels_task(task).shot_x) == len(task.p_x) == 24 and len(task.shot_x) == 8
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    before = {n: p.clone() for n, p in net.state_dict().items()}
    tuned = fine_tune(net, task, epochs=1, lr=1e-2, batch_size=8, seed=0)
    assert all(torch.equal(p, before[n]) for n, p in net.state_dict().items())  # the start is left as it was
    assert not torch.equal(tuned[0].weight, net[0].weight)
    assert 0 <= probe_accuracy(net, task) <= 1


def _toy_mix(per_class=60):
    return ImageData(_images(8 * per_class), torch.arange(8).repeat_interleave(per_class), [f'c{i}' for i in range(8)],
                     ['a'] * 4 + ['b'] * 4)


@pytest.mark.parametrize('variant', ['mean sketch', 'kernel banks'])
def test_a_pudnet_that_ignores_its_data_has_swap_gaps_of_exactly_zero(variant):
    toy = _toy_mix(30)
    nets, _ = headroom_networks(toy, width=4, seed=0, n_tasks=4)
    model = room_pudnet(nets['shared'], 4, 8, variant)  # untrained: it predicts the shared network for any P
    tasks = {d: [sample_task(toy, None, c, 4, 12, 5, 3, seed=i) for i in range(2)]
             for d, c in (('a', range(4)), ('b', range(4, 8)))}
    accs, sketches = score_room_pudnet(model, {'shared-longer': nets['shared']}, tasks, TEN_SHOTS)
    for d in tasks:
        assert {m: accs[d][m] for m in SKETCH_SOURCES} == dict.fromkeys(SKETCH_SOURCES, accs[d]['shared-longer'])
        assert sketches[d].shape == (2, model.config.sketch_dim)


def test_the_layer_statistics_variant_starts_as_the_shared_network_and_reads_the_classes_in_no_order():
    toy = _toy_mix(30)
    nets, _ = headroom_networks(toy, width=4, seed=0, n_tasks=4)
    model = room_pudnet(nets['shared'], 4, 8, 'layer statistics')
    tasks = {d: [sample_task(toy, None, c, 4, 12, 5, 3, seed=i) for i in range(2)]
             for d, c in (('a', range(4)), ('b', range(4, 8)))}
    accs, sketches = score_room_pudnet(model, {'shared-longer': nets['shared']}, tasks, ALL_LABELS)
    for d in tasks:  # untrained, every sketch predicts the shared network: all of P's labels, both readouts
        for readout in ('', ' probe'):
            assert {m: accs[d][m + readout] for m in SKETCH_SOURCES} == dict.fromkeys(SKETCH_SOURCES,
                                                                                     accs[d]['shared-longer' + readout])
    assert sketches['a'].shape == (2, model.config.sketch_dim + sum(2 * d * d for d in model.sizes))
    task = tasks['a'][0]
    x = to_float(task.p_x)
    assert torch.allclose(model.sketch(x, None, task.p_y), model.sketch(x, None, (task.p_y + 1) % 4), atol=1e-5)
    first = next(iter(model.shapes))
    with torch.no_grad():
        model.statistics['toward0'].normal_()  # now each task's statistics move the first kernel
        moved = [model.generate(s[None])[first] for s in sketches['a']]
    assert not torch.allclose(moved[0], moved[1])

def test_the_untrained_floor_is_a_fresh_network_scored_with_the_tasks_own_statistics_and_labels():
    toy = _toy_mix(30)
    tasks = {d: [sample_task(toy, None, c, 4, 12, 5, 3, seed=i) for i in range(2)]
             for d, c in (('a', range(4)), ('b', range(4, 8)))}
    floor = untrained_accuracies(tasks, 4, seed=3, labels=TEN_SHOTS)
    torch.manual_seed(3)
    net = build_target('convnet3', 3, 4)
    assert floor['b'][UNTRAINED] == evaluate_feature_net(net, tasks['b'], 'cpu', amp=False)['acc']
    with_all = untrained_accuracies(tasks, 4, seed=3, labels=ALL_LABELS)['a']
    assert set(with_all) == {UNTRAINED, UNTRAINED + ' probe'} and all(0 <= a <= 1 for v in with_all.values() for a in v)


def _pudnet_record(seed, accs):
    return {'mix': 'toy', 'width': 8, 'labels': TEN_SHOTS, 'seed': seed, 'pudnet_steps': 40, 'made': 'specialist',
            'selected_on': 'fixed before testing', 'variant': 'mean sketch', 'domains': {'a': accs}}


def test_capture_is_pudnets_gain_over_the_best_fixed_network_as_a_share_of_the_room(tmp_path):
    sub = tmp_path / 'toy-w8-n40'
    sub.mkdir()
    accs = {'shared-longer': [0.5, 0.6], 'shared-matched': [0.5, 0.55], 'specialist': [0.65, 0.65],
            'pudnet': [0.6, 0.6], 'pudnet swap': [0.55, 0.6], 'pudnet other domain': [0.6, 0.6],
            'pudnet mean sketch': [0.5, 0.5], 'untrained': [0.4, 0.45]}
    for s in range(3): (sub / f'seed{s}.json').write_text(json.dumps(_pudnet_record(s, accs)))
    [row] = room_pudnet_rows(tmp_path)
    assert (row['fixed'], row['made'], row['pudnet']) == ('shared-longer', 'specialist', 'pudnet')  # the better fixed
    assert np.isclose(row['room'], 10.0) and np.isclose(row['pudnet_minus_fixed'], 5.0) and row['capture'] == 0.5
    for s in range(3):  # no room: the specialist as good as the fixed network, so no share of it is defined
        (sub / f'seed{s}.json').write_text(json.dumps(_pudnet_record(s, accs | {'specialist': [0.5, 0.6]})))
    assert room_pudnet_rows(tmp_path)[0]['capture'] is None
    assert np.isclose(row['swap_gap'], 2.5) and row['other_domain_gap'] == 0 and np.isclose(row['mean_sketch_gap'], 10)
    assert np.isclose(row['pudnet_minus_untrained'], 17.5)  # the floor: the untrained network, same readout
    assert check_summary({'cells': [], 'pudnet': [row]})
    with pytest.raises(ValueError, match='< 3'): check_summary({'cells': [], 'pudnet': [row | {'seeds': [0]}]})
    with pytest.raises(ValueError, match='lacks'): check_summary({'cells': [], 'pudnet': [{'mix': 'toy'}]})


def test_the_channel_selection_picks_the_channel_that_carries_the_classes_and_scores_every_swap():
    from pudnet.headroom import ChannelBank, select_channels, score_channel_selection, selection_overlap
    bank = ChannelBank(width=8, seed=0)
    with torch.no_grad():
        bank.kernels[0].normal_(0, 0.01)[:, 0] = 0  # every layer-1 channel reads noise from green and blue ...
        bank.kernels[0][5] = 0
        bank.kernels[0][5, 0, 1, 1] = 1.0  # ... but channel 5, which reads red alone
    y = torch.arange(4).repeat_interleave(10)
    x = torch.rand(40, 3, 32, 32)
    x[:, 0] = y[:, None, None] / 4 + 0.05 * torch.rand(40, 32, 32)  # the class is how red the image is
    picks = select_channels(bank, [(x, y)], keep=2)
    assert 5 in picks[0].tolist()
    assert [p.tolist() for p in select_channels(bank, [(x, (y + 1) % 4)], keep=2)] == [p.tolist() for p in picks]
    toy = _toy_mix(30)
    tasks = {d: [sample_task(toy, None, c, 4, 12, 5, 3, seed=i) for i in range(2)]
             for d, c in (('a', range(4)), ('b', range(4, 8)))}
    accs, chosen = score_channel_selection(bank, {'shared-longer': build_target('convnet3', 3, 2).eval()}, tasks, keep=2)
    for d in tasks:  # both readouts of every network PudNet's rows compare, on every task
        assert {m + r for m in SKETCH_SOURCES for r in ('', ' probe')} <= set(accs[d])
        assert all(len(v) == 2 for v in accs[d].values())
    overlap = selection_overlap(chosen)
    assert all(0 <= v <= 1 for v in overlap['same domain'] + overlap['different domains'])
