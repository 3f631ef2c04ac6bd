"""Run notebooks in place and keep their outputs (for readers and the docs), skipping cells flagged slow/gpu.

Usage: .venv/bin/python .ci/execute_notebooks.py nbs/00_data.ipynb [...]; then `nbdev_clean`.
Slow/gpu cells keep whatever outputs they already had (from the real runs that produced the committed results).
"""
import json
import sys
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.foundation import working_directory

SKIP = {'slow', 'gpu'}


def _skip(cell):
    if cell.cell_type != 'code': return True
    first = cell.source.lstrip().splitlines()[:1]
    return bool(first) and first[0].startswith('#|') and first[0][2:].strip() in SKIP


def run(path: Path):
    nb = read_nb(path)
    old = {id(c): c.get('outputs', []) for c in nb.cells}
    shell = CaptureShell(path)
    with working_directory(path.parent):
        shell.run_all(nb, exc_stop=True, preproc=_skip)
    for c in nb.cells:  # flagged cells keep their earlier outputs
        if c.cell_type == 'code' and _skip(c): c['outputs'] = old[id(c)]
    write_nb(nb, path)
    _join_nested_sources(path)
    print(f'executed {path}')


def _join(o):
    "Join every list under a 'source' key back into one string (a plotly Image's `source` is a data URI, not lines)."
    if isinstance(o, dict): return {k: ''.join(v) if k == 'source' and isinstance(v, list) else _join(v) for k, v in o.items()}
    return [_join(v) for v in o] if isinstance(o, list) else o


def _join_nested_sources(path: Path):
    "execnb's writer splits every 'source' key into lines, also inside outputs, and its reader then fails on them: undo it there."
    nb = json.loads(path.read_text())
    for c in nb['cells']:
        if c['cell_type'] == 'code': c['outputs'] = [_join(o) for o in c.get('outputs', [])]
        else: c.pop('outputs', None)  # a markdown cell has none (the flagged-cell restore above gives it an empty list)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


if __name__ == '__main__':
    if len(sys.argv) > 2:  # one fresh process per notebook: no state leaks from one notebook into the next
        import subprocess
        for p in sys.argv[1:]: subprocess.run([sys.executable, __file__, p], check=True)
    else: run(Path(sys.argv[1]))
