"""The room map (nbs/17_headroom): the domains are what they say, the room is the paired difference (zero for a network
against itself), the networks of a seed are the ones the definition names, and the committed summary has the schema of
the room-map issue and is what its records give."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pudnet.data import ImageData
from pudnet.headroom import (ALL_LABELS, CELL_KEYS, DOMAINS, FIXED_ALL, MADE_ALL, MIXES, TEN_SHOTS, all_labels_task,
                             check_summary, domain_images, fine_tune, headroom_cells, headroom_networks, invert_images,
                             probe_accuracy, room_matrix, rotate_images)
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
