"""Build the docs site offline from the notebooks: nbdev's docs processors, fresh `show_doc` output, plotly, mkdocs.

Usage: .venv/bin/python .ci/build_docs.py   (writes _site/; `.ci/run` calls it and fails when it fails)
       .venv/bin/python .ci/build_docs.py --fill nbs/X.ipynb ...   (write fresh show_doc outputs into notebooks; then nbdev_clean)

Quarto (what `nbdev_docs` renders with) cannot be installed offline, so the site is rendered by mkdocs with
mkdocs-material and mkdocs-jupyter (all from PyPI, pinned in settings.ini), over the same processed notebooks:
1. nbdev's own docs processors (`nbdev.serve.proc_nbs`: front matter, hidden and exported cells removed,
   `show_doc` added for exported names without one) write `_proc/`, as for `nbdev_docs`; settings.ini skips
   nbdev's `exec_show_docs`, which would run every cell with an import (slow cells included).
2. Here, every `show_doc` cell is run again in a fresh kernel that imports the notebook's module, so the API
   docs always come from the current code; an error fails the build.
3. Quarto's directives become nbconvert tags (`#| echo: false` -> input removed), the front matter a title.
4. Plotly figures saved as `application/vnd.plotly.v1+json` become HTML that calls the page's plotly.js, a local
   copy from the plotly package (`assets/plotly.min.js`, loaded in <head> by .ci/mkdocs_theme/main.html): no
   network at build time or for readers. The HTML that plotly's `notebook`/`notebook_connected` renderers put before a
   notebook's first figure (plotly.js inline, or an import from cdn.plot.ly) is dropped.
5. Formulas: MathJax 2.7 with its TeX web fonts from Debian (`libjs-mathjax`, `fonts-mathjax`; .ci/run installs them),
   copied into the site (`assets/mathjax`) and configured `TeX-AMS_CHTML-full` (CommonHTML output).
6. `mkdocs build --strict`, then checks: one page per notebook, API docs and figures present, MathJax and its fonts the
   site's own, nothing loaded from the network. tests/test_browser.py then opens every page in Chromium, offline.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import plotly
import plotly.io as pio
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
sys.path.insert(0, str(Path(__file__).parent))
from execute_notebooks import _join_nested_sources  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROC, SRC, SITE = ROOT / '_proc', ROOT / '_mkdocs', ROOT / '_site'
PLOTLY_MIME = 'application/vnd.plotly.v1+json'
_re_directive = re.compile(r'^#\|\s*([\w-]+):?\s*(.*)$')


def notebooks() -> list:
    "The notebooks the site renders: every nbs/**/*.ipynb with no path part starting with '_' or '.' (as nbdev skips them)."
    nbs = ROOT / 'nbs'
    return sorted(p for p in nbs.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(nbs).parts))


MATHJAX = '@mathjax@'  # mkdocs.yml's `custom_mathjax_url`: replaced in each page by the path of the local MathJax copy
MATHJAX_CONFIG = 'TeX-AMS_CHTML-full,Safe'  # TeX input, CommonHTML output with the TeX web fonts (nbconvert's own choice)
# What that configuration loads (the rest of Debian's 50 MB: other fonts and outputs, unpacked sources, is left out)
MATHJAX_PARTS = ('MathJax.js', 'config/TeX-AMS_CHTML-full.js', 'config/Safe.js', 'config/local', 'extensions', 'jax/input/TeX',
                 'jax/element', 'jax/output/CommonHTML', 'fonts/HTML-CSS/TeX/woff', 'fonts/HTML-CSS/TeX/otf')
DEBIAN_MATHJAX = Path('/usr/share/javascript/mathjax')


def mathjax_files() -> Path:
    """MathJax 2.7 with its TeX fonts as Debian ships it (`libjs-mathjax` + `fonts-mathjax`, installed by .ci/run): formulas
    render with no network and with real fonts (jupyter-server-mathjax holds no TeX font: its formulas were set without
    font metrics, and any formula with a prime failed)."""
    root = Path(os.environ.get('PUDNET_MATHJAX', DEBIAN_MATHJAX))
    missing = [part for part in MATHJAX_PARTS if not (root / part).exists()]
    if missing: raise SystemExit(f"FAIL: MathJax with its TeX fonts is not installed at {root} (missing {missing}): "
                                 "apt-get install libjs-mathjax fonts-mathjax (.ci/run does), or set PUDNET_MATHJAX")
    return root


def copy_mathjax(dest: Path):
    "Copy the parts of MathJax the site loads into `dest` (symlinks resolved: the site is self-contained)."
    src = mathjax_files()
    for part in MATHJAX_PARTS:
        (dest / part).parent.mkdir(parents=True, exist_ok=True)
        if (src / part).is_dir(): shutil.copytree(src / part, dest / part)
        else: shutil.copy(src / part, dest / part)


def link_mathjax():
    "Point every page's MathJax script at the site's copy, relative to the page (pages sit at different depths)."
    for page in SITE.rglob('*.html'):
        html = page.read_text()
        if f'src="{MATHJAX}"' not in html: continue
        local = os.path.relpath(SITE / 'assets' / 'mathjax' / 'MathJax.js', page.parent)
        page.write_text(html.replace(f'src="{MATHJAX}"', f'src="{local}?config={MATHJAX_CONFIG}"'))


def nbdev_process():
    "Run nbdev's docs processors over nbs/ into _proc/ (without the Quarto install `nbdev_proc_nbs` attempts)."
    from nbdev.serve import proc_nbs
    shutil.rmtree(PROC, ignore_errors=True)
    proc_nbs(str(ROOT / 'nbs'), n_workers=0, force=True)


def _directives(cell) -> tuple:
    "Split a code cell's leading `#| key: value` lines from its source."
    lines, out = cell.source.splitlines(), {}
    while lines and _re_directive.match(lines[0]):
        k, v = _re_directive.match(lines.pop(0)).groups()
        out[k] = v.strip()
    return out, '\n'.join(lines)


def _module(src_nb: Path) -> str | None:
    "The `default_exp` of a source notebook, if it exports a module."
    for c in read_nb(src_nb).cells:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', c.source, re.MULTILINE)
        if m: return m.group(1)
    return None


def _shell(path: Path, module: str | None) -> CaptureShell:
    "A fresh kernel with `show_doc` and the notebook's module imported."
    shell = CaptureShell(path)
    shell.run_cell('from nbdev.showdoc import show_doc')
    if module: shell.run_cell(f'from pudnet.{module} import *')
    if shell.exc: raise RuntimeError(f"{path.name}: importing pudnet.{module} failed") from shell.exc
    return shell


def _show_doc(shell: CaptureShell, cell, name: str) -> str:
    "Run a `show_doc(...)` cell in `shell`, check it rendered markdown, return the documented name."
    shell.cell(cell)
    if shell.exc: raise RuntimeError(f"{name}: {cell.source!r} failed") from shell.exc
    if not any('text/markdown' in o.get('data', {}) for o in cell.outputs):
        raise RuntimeError(f"{name}: {cell.source!r} rendered nothing")
    return re.match(r'\s*show_doc\(([\w.]+)', cell.source).group(1)


def fill(path: Path):
    "Write fresh show_doc outputs into a source notebook (other cells untouched)."
    nb = read_nb(path)
    shell = _shell(path, _module(path))
    for cell in nb.cells:
        if cell.cell_type == 'code' and cell.source.lstrip().startswith('show_doc('): _show_doc(shell, cell, path.name)
    write_nb(nb, path)
    _join_nested_sources(path)  # execnb's writer splits a plotly Image's `source` into lines; its reader then fails
    print(f"filled show_doc outputs in {path}")


def _front_matter(cell) -> str:
    "Quarto's YAML front matter (nbdev writes title and description) as a markdown title."
    import yaml
    fm = yaml.safe_load(cell.source.strip().strip('-')) or {}
    title, desc = fm.get('title', ''), fm.get('description', '')
    return f"# {title}\n\n> {desc}" if desc else f"# {title}"


def _plain_headings(text: str) -> str:
    """Markdown headings without backticks: mkdocs-jupyter builds the table of contents from the heading's text and
    drops inline code (an empty entry linking nowhere); code blocks are left alone."""
    out, fenced = [], False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith('```'): fenced = not fenced
        out.append(line.replace('`', '') if not fenced and re.match(r'#{1,6} ', line) else line)
    return ''.join(out)


def _plotly_loader(output) -> bool:
    """Is `output` the HTML that plotly's `notebook`/`notebook_connected` renderers display before a notebook's first figure?
    It loads plotly.js, inline (~5 MB) or from cdn.plot.ly (a failed request offline), and reconfigures MathJax; the page
    has its own plotly.js."""
    html = output.get('data', {}).get('text/html')
    if html is None or PLOTLY_MIME in output['data']: return False
    html = ''.join(html)
    return 'window.PlotlyConfig' in html and 'plotly-graph-div' not in html


def convert(path: Path, module: str | None) -> dict:
    "Turn one nbdev-processed notebook into what mkdocs-jupyter renders; returns counts for the checks."
    nb = read_nb(path)
    shell = _shell(path, module)
    cells, documented, n_fig = [], [], 0
    for cell in nb.cells:
        if cell.cell_type == 'raw' and cell.source.lstrip().startswith('---'):
            cell = dict(cell_type='markdown', metadata={}, source=_front_matter(cell))
        elif cell.cell_type == 'markdown': cell.source = _plain_headings(cell.source)
        elif cell.cell_type == 'code':
            d, src = _directives(cell)
            if not src.strip() and not cell.get('outputs'): continue  # exported/hidden cells emptied by nbdev
            cell.source = src
            if src.lstrip().startswith('show_doc('):
                documented.append(_show_doc(shell, cell, path.name))  # fresh API docs from the current code
            if d.get('echo') == 'false':
                cell.metadata['tags'] = [*cell.metadata.get('tags', []), 'remove_input']
            cell['outputs'] = [o for o in cell.get('outputs', []) if not _plotly_loader(o)]
            for o in cell.outputs:
                data = o.get('data', {})
                if PLOTLY_MIME in data:
                    fig = data.pop(PLOTLY_MIME)
                    data['text/html'] = pio.to_html(fig, include_plotlyjs=False, full_html=False, validate=False)
                    n_fig += 1
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop('widgets', None)
    dest = SRC / path.relative_to(PROC)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dest)
    return {'show_doc': documented, 'figures': n_fig}


def check(stats: dict):
    """Fail unless every notebook has a page, every show_doc rendered, every plotly figure has its script, MathJax and its TeX
    fonts are the site's own, and no page loads anything from the network (the browser test then opens every page)."""
    js = SITE / 'assets' / 'plotly.min.js'
    if not js.exists() or js.stat().st_size < 1_000_000: raise SystemExit(f"FAIL: plotly.js missing from the site ({js})")
    fonts = [SITE / 'assets/mathjax' / f for f in ('jax/output/CommonHTML/fonts/TeX/fontdata.js', 'fonts/HTML-CSS/TeX/woff/MathJax_Main-Regular.woff')]
    if not all(f.is_file() for f in fonts): raise SystemExit(f"FAIL: MathJax's TeX fonts missing from the site ({fonts})")
    for name, s in stats.items():
        page = SITE / ('index.html' if name == 'index' else f'{name}/index.html')
        if not page.exists(): raise SystemExit(f"FAIL: no page for nbs/{name}.ipynb ({page})")
        html = page.read_text()
        if html.count('Plotly.newPlot') < s['figures']: raise SystemExit(f"FAIL: {name}: plotly figures not rendered")
        if s['figures'] and not -1 < html.find('plotly.min.js"') < html.find('Plotly.newPlot'):
            raise SystemExit(f"FAIL: {name}: plotly.js is not loaded before the figures")
        for src in re.findall(r'<script src="([^"]*mathjax[^"]*|)"', html, re.I):
            configs = (re.findall(r'config=([\w,-]+)', src) or [''])[0].split(',')
            if not (page.parent / src.split('?')[0]).is_file() or not all((SITE / 'assets/mathjax/config' / f'{c}.js').is_file() for c in configs):
                raise SystemExit(f"FAIL: {name}: MathJax is not loaded from the site (src={src!r}): formulas would not render")
        external = re.findall(r'<script[^>]* src="(?:https?:)?//[^"]*"|<link[^>]* href="(?:https?:)?//[^"]*"[^>]*>|import\s*["\'](?:https?:)?//[^"\']*'
                              r'|url\(["\']?(?:https?:)?//[^)]*\)|require\.config\(', html)
        external = [e for e in external if not e.startswith('<link') or re.search(r'rel="(stylesheet|preload|modulepreload|icon)"', e)]
        if external: raise SystemExit(f"FAIL: {name}: the page loads from the network (fails offline): {external[:3]}")
        for img in re.findall(r'<img [^>]*src="([^"]+)"', html):
            if not img.startswith(('http', 'data:')) and not (page.parent / img).exists():
                raise SystemExit(f"FAIL: {name}: the picture {img} is missing from the site")
        if re.search(r'<span class="md-ellipsis">\s*</span>', html):
            raise SystemExit(f"FAIL: {name}: an empty entry in the table of contents (a heading made only of inline code?)")
        headings = set(re.findall(r'<h[34][^>]*>([\w.]+)<a class="anchor-link"', html))
        missing = [n for n in s['show_doc'] if n not in headings]
        if missing: raise SystemExit(f"FAIL: {name}: show_doc output not rendered for {missing}")


def main():
    t0 = time.perf_counter()
    nbdev_process()
    shutil.rmtree(SRC, ignore_errors=True)
    (SRC / 'assets').mkdir(parents=True)
    shutil.copy(Path(plotly.__file__).parent / 'package_data' / 'plotly.min.js', SRC / 'assets' / 'plotly.min.js')
    copy_mathjax(SRC / 'assets' / 'mathjax')
    shutil.copytree(ROOT / 'nbs' / 'images', SRC / 'nbs' / 'images')  # the pictures pages link as nbs/images/... (as the README does)
    stats = {}
    for src in notebooks():
        rel = src.relative_to(ROOT / 'nbs')
        proc = PROC / rel
        if not proc.exists(): raise SystemExit(f"FAIL: nbdev did not process {src}")
        stats[rel.with_suffix('').as_posix()] = convert(proc, _module(src))
    shutil.rmtree(SITE, ignore_errors=True)
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '-f', str(ROOT / 'mkdocs.yml')], cwd=ROOT)
    if r.returncode: raise SystemExit(f"FAIL: mkdocs build --strict exited with {r.returncode}")
    link_mathjax()
    check(stats)
    print(f"docs: {len(stats)} notebooks, {sum(len(s['show_doc']) for s in stats.values())} show_doc, "
          f"{sum(s['figures'] for s in stats.values())} plotly figures -> {SITE} in {time.perf_counter() - t0:.0f} s")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--fill']:
        for p in sys.argv[2:]: fill(Path(p).resolve())
    else: main()
