"""The reproduction report (nbs/reproduction.ipynb): every claim row links an existing record and has one of the three
verdicts, the clean-protocol rows are the headline's, and the committed table is what the records say today."""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / 'nbs' / 'reproduction.ipynb'
VERDICTS = ('reproduced', 'not reproduced', 'not testable here')


def _notebook() -> dict:
    return json.loads(PAGE.read_text())


def _claims_table(nb: dict) -> str:
    "The committed output of the cell that prints the claims' table."
    for cell in nb['cells']:
        for o in cell.get('outputs', []):
            text = ''.join(o.get('data', {}).get('text/markdown', []))
            if text.startswith('| # | claim |'): return text
    raise AssertionError("nbs/reproduction.ipynb has no claims table in its outputs: run .ci/execute_notebooks.py on it")


def _rows(table: str) -> list:
    "The table's rows as dicts of its columns."
    lines = table.strip().splitlines()
    header = [h.strip() for h in lines[0].strip('|').split('|')]
    return [dict(zip(header, (c.strip() for c in line.strip('|').split('|')))) for line in lines[2:]]


@pytest.fixture(scope='module')
def rows():
    return _rows(_claims_table(_notebook()))


def test_every_claim_links_a_record_and_has_a_verdict(rows):
    assert len(rows) >= 20, len(rows)
    for r in rows:
        verdict = r['verdict'].strip('*')
        assert verdict in VERDICTS, (r['#'], verdict)
        record = re.fullmatch(r'`(results/[^`]+)`', r['record'])
        assert record, (r['#'], r['record'])
        assert (REPO / record.group(1)).exists(), (r['#'], record.group(1))
        assert r['ours'] and r['claim'], r['#']
    assert {r['verdict'].strip('*') for r in rows} == set(VERDICTS), "each verdict occurs: the report is no rubber stamp"


def test_clean_rows_are_the_headline_and_the_rest_say_exploration(rows):
    for r in rows:
        if r['protocol'].startswith('clean'): assert r['record'] == '`results/headline.json`', r['#']
        elif r['verdict'].strip('*') != 'not testable here': assert r['protocol'].startswith('exploration'), r['#']
    assert any(r['protocol'].startswith('clean') for r in rows)


def test_the_committed_table_is_what_the_records_say(monkeypatch):
    "Run the page's definitions (they only read JSON) and compare the table with the committed output."
    nb = _notebook()
    code = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']
    defining = [src for src in code if 'def claims_table' in src or 'def records(' in src]
    assert len(defining) == 2, "the page's helpers and claims cells"
    monkeypatch.chdir(REPO / 'nbs')  # the page reads ../results
    ns = {}
    for src in defining: exec(compile(src, str(PAGE), 'exec'), ns)
    evidence = [c.evidence() for c in ns['CLAIMS']]
    assert ns['claims_table'](ns['CLAIMS'], evidence).strip() == _claims_table(nb).strip(), \
        "the records changed: run .ci/execute_notebooks.py nbs/reproduction.ipynb"
