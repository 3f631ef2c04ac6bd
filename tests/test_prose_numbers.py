"""The prose-number check (.ci/check_prose_numbers.py) on small synthetic notebooks: it flags a number no output or named
record shows, and accepts one that an output or a record shows, rounded, as a percentage or without its sign."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('check_prose_numbers', REPO / '.ci' / 'check_prose_numbers.py')
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def notebook(tmp_path, prose: str, output: str = '', code: str = '', name='nb.ipynb') -> Path:
    "A notebook with one markdown cell and one code cell whose printed output is `output`."
    cells = [{'cell_type': 'markdown', 'metadata': {}, 'source': prose},
             {'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'source': code,
              'outputs': [{'name': 'stdout', 'output_type': 'stream', 'text': [output]}] if output else []}]
    path = tmp_path / name
    path.write_text(json.dumps({'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    return path


def flagged(path, results=None, allowed=None) -> list:
    return [n for n, _ in check.unsupported(path, results or path.parent / 'no-results', allowed or {})]


def test_a_number_no_output_shows_is_flagged(tmp_path):
    assert flagged(notebook(tmp_path, 'PudNet scores 60.04 % here.', 'accuracy 0.5925')) == ['60.04']


@pytest.mark.parametrize('prose, output', [
    ('It scores 59.25 %.', 'accuracy 59.25'),           # the same digits
    ('It scores 59.3 %.', 'accuracy 59.25'),            # rounded to the digits written
    ('It scores 91.04 %.', 'accuracy 0.9104'),          # a fraction written as a percentage
    ('A share of 0.91.', 'share 91.04 %'),              # a percentage written as a fraction
    ('It ends 2.05 points below.', 'gap -2.05 ± 0.51'),  # without its sign
    ('Between 0.91 and 0.81 of its energy.', 'full rank 0.9120, rank 4 0.8149'),
])
def test_a_number_an_output_shows_is_accepted(tmp_path, prose, output):
    assert flagged(notebook(tmp_path, prose, output)) == []


def test_more_digits_than_the_output_shows_are_flagged(tmp_path):
    "The output 0.91 does not say 91.04 %, nor 0.915."
    assert flagged(notebook(tmp_path, 'It keeps 91.04 % and 0.915 of its energy.', 'share 0.91')) == ['91.04', '0.915']


def test_whole_percentages_and_ranges_are_checked(tmp_path):
    "A whole number written as a percentage is a measurement too: each end of a range needs its source."
    assert flagged(notebook(tmp_path, '91-94 % of its energy', 'full rank 0.91, rank 4 0.81')) == ['94']
    assert flagged(notebook(tmp_path, '81-91 % of its energy', 'full rank 0.91, rank 4 0.81')) == []
    assert flagged(notebook(tmp_path, 'a 95 % confidence interval, 90 % of it', 'share 0.90')) == []  # a level, then a share


def test_code_formulas_links_and_versions_are_not_measurements(tmp_path):
    prose = ('Set `lr=0.001` and $$\\eta = 0.5,$$ see [the run](results/cpu/run-1.5/), '
             'torch 2.14.1 and <img width="0.75">.')
    assert flagged(notebook(tmp_path, prose)) == []


def test_a_measurement_in_an_inline_formula_is_checked(tmp_path):
    "Measured numbers are often typeset ($+0.70 \\pm 0.76$ points): an inline formula is prose to the check."
    assert flagged(notebook(tmp_path, 'the step adds $+0.70 \\pm 0.76$ points', 'gain 0.70 ± 0.76')) == []
    assert flagged(notebook(tmp_path, 'the step adds $+0.70 \\pm 0.76$ points', 'gain 0.70')) == ['0.76']


def test_a_named_record_supports_a_number_and_an_unnamed_one_does_not(tmp_path):
    results = tmp_path / 'results'
    (results / 'cpu' / 'fair').mkdir(parents=True)
    (results / 'cpu' / 'fair' / 'records.json').write_text(json.dumps(
        [{'method': 'PudNet', 'mean': 0.5664999976754188, 'ci95': 0.023, 'accs': [0.6123] * 30}]))
    named = notebook(tmp_path, 'PudNet scores 56.65 %.', code="load_run('results/cpu/fair')", name='named.ipynb')
    unnamed = notebook(tmp_path, 'PudNet scores 56.65 %.', name='unnamed.ipynb')
    assert flagged(named, results) == [] and flagged(unnamed, results) == ['56.65']
    per_task = notebook(tmp_path, 'One task scored 61.23 %.', code="load_run('results/cpu/fair')", name='task.ipynb')
    assert flagged(per_task, results) == ['61.23']  # a record's per-task list is no summary a prose number quotes


def test_the_allowlist_names_its_numbers(tmp_path):
    path = notebook(tmp_path, "The paper's PudNet scores 73.33 %.")
    key = path.as_posix()
    assert flagged(path) == ['73.33']
    assert flagged(path, allowed={key: {'73.33': "the paper's Table I"}}) == []
    for nb, numbers in check.ALLOWED.items():  # every entry of the real allowlist says why
        assert (REPO / nb).exists(), nb
        assert all(isinstance(reason, str) and len(reason) > 10 for reason in numbers.values()), nb


def test_the_check_runs_over_the_book():
    "The script sees the notebooks the site renders, and finds numbers in their prose to check."
    books = check.notebooks()
    assert len(books) > 20
    assert sum(len(check.prose_numbers(md)) for p in books for md in check.markdown_cells(json.loads(p.read_text()))) > 100
