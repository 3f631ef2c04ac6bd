"""Run notebooks in place and keep their outputs (for readers and the docs), skipping cells flagged slow/gpu.

Usage: .venv/bin/python .ci/execute_notebooks.py nbs/00_data.ipynb [...]; then `nbdev_clean`.
Slow/gpu cells keep whatever outputs they already had (from the real runs that produced the committed results).
"""
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
    print(f'executed {path}')


if __name__ == '__main__':
    if len(sys.argv) > 2:  # one fresh process per notebook: no state leaks from one notebook into the next
        import subprocess
        for p in sys.argv[1:]: subprocess.run([sys.executable, __file__, p], check=True)
    else: run(Path(sys.argv[1]))
