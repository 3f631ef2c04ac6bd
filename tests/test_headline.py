"""The pre-registered headline: results/headline.json is what its records say, every row meets the clean protocol,
and the README's results table is exactly its rows."""
import json
import math
from pathlib import Path

import pytest

from pudnet.headline import PAPER, RECIPES, VALIDATION, headline_rows, headline_table, validation_choice

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / 'results' / 'headline.json'


@pytest.fixture(scope='module')
def rows():
    return json.loads(HEADLINE.read_text())


def test_every_row_meets_the_protocol(rows):
    assert rows, "results/headline.json has no rows"
    for r in rows:
        assert {'method', 'protocol', 'seeds', 'selected_on', 'mean', 'ci95', 'records'} <= set(r), r['method']
        assert len(set(r['seeds'])) >= 3, f"{r['protocol']} {r['method']}: {r['seeds']} (at least 3 seeds)"
        assert r['selected_on'] in ('validation', 'fixed before testing'), r['selected_on']
        assert 0 <= r['mean'] <= 1 and math.isfinite(r['ci95']) and r['ci95'] > 0, r
        assert all((ROOT / f).exists() for f in r['records']), r['records']
    for protocol in {r['protocol'] for r in rows}:
        assert protocol in RECIPES
        methods = [r['method'] for r in rows if r['protocol'] == protocol]
        assert methods[0] == RECIPES[protocol].pudnet_row and len(methods) <= 10, methods
        # the floors stand beside PudNet: the untrained network and the swap of the prediction alone
        assert {'Random network (untrained)', "PudNet [weights from another task's P]"} <= set(methods), methods


def test_the_rows_are_their_records(rows):
    again = headline_rows(ROOT / 'results' / 'headline', root=ROOT)
    assert [(r['protocol'], r['method']) for r in again] == [(r['protocol'], r['method']) for r in rows]
    for a, b in zip(again, rows):
        for k in ('mean', 'ci95', 'pudnet_minus', 'pudnet_minus_ci95'):
            assert (k in a) == (k in b) and (k not in a or abs(a[k] - b[k]) < 1e-12), (a['method'], k)


def test_the_readme_shows_exactly_the_headline_rows(rows):
    readme = (ROOT / 'README.md').read_text()
    table = headline_table(rows)
    assert table in readme, "README.md's results table is not headline_table(results/headline.json): run .ci/make_readme.py"
    protocols = tuple(f"| {p} |" for p in {r['protocol'] for r in rows})
    shown = [line for line in readme.splitlines() if line.startswith(protocols)]
    assert shown == table.splitlines()[2:], "the README shows result rows that are not the headline's"


@pytest.mark.parametrize('protocol', sorted(VALIDATION))
def test_a_protocol_with_validation_classes_runs_what_they_chose(protocol):
    choice = validation_choice(protocol, ROOT / 'results' / 'headline' / 'validation')
    assert all(len(c['seeds']) >= 3 for c in choice['candidates'].values()), choice['candidates']
    assert RECIPES[protocol].options == choice['options'] and RECIPES[protocol].selected_on == 'validation'
    assert choice['chosen'] == PAPER or choice['chosen'] in RECIPES[protocol].pudnet_row  # the row says which variant


def test_a_protocol_enters_the_headline_once_all_its_seeds_are_in(tmp_path):
    import shutil
    (tmp_path / 'fashion-set').mkdir()
    for s in (0, 1): shutil.copy(ROOT / 'results' / 'headline' / 'fashion-set' / f'seed{s}.json', tmp_path / 'fashion-set')
    assert headline_rows(tmp_path, root=tmp_path) == []  # two seeds of three: not yet
    shutil.copy(ROOT / 'results' / 'headline' / 'fashion-set' / 'seed2.json', tmp_path / 'fashion-set')
    rows = headline_rows(tmp_path, root=tmp_path)
    assert {r['protocol'] for r in rows} == {'fashion-set'} and all(r['seeds'] == [0, 1, 2] for r in rows)
