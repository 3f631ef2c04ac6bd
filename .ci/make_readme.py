"""Render nbs/index.ipynb (outputs included) to README.md; cells flagged `#| echo: false` show only their output.

Usage: .venv/bin/python .ci/make_readme.py   (after .ci/execute_notebooks.py nbs/index.ipynb)
"""
from pathlib import Path

import nbformat
from nbconvert import MarkdownExporter

root = Path(__file__).resolve().parents[1]
nb = nbformat.read(root / 'nbs' / 'index.ipynb', as_version=4)
for cell in nb.cells:
    if cell.cell_type == 'code' and cell.source.lstrip().startswith('#| echo: false'):
        cell.metadata.setdefault('transient', {})['remove_source'] = True
        cell.source = ''
body, _ = MarkdownExporter().from_notebook_node(nb)
body = body.replace('```\n\n```\n', '')  # the emptied input cells
(root / 'README.md').write_text(body)
print(f"wrote {root / 'README.md'}")
