"""The demo notebook as a person uses it: JupyterLab in headless Chromium, run all cells, press Predict, see the figures.

Needs Debian's chromium (/usr/bin/chromium, or $PUDNET_CHROMIUM) and the `playwright` Python package (dev extras);
never `playwright install`. Without them the test is skipped with the reason. Screenshot: runs/browser-test/widget.png
(set PUDNET_UPDATE_SCREENSHOT=1 to also refresh the committed nbs/images/widget.png).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get('PUDNET_CHROMIUM', '/usr/bin/chromium')
SHOTS = REPO / 'runs' / 'browser-test'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _kill_group(proc: subprocess.Popen):
    "Stop JupyterLab and its kernels: SIGTERM to the process group, SIGKILL if still there after 10 s."
    if proc.poll() is not None: return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: return
        try: proc.wait(wait); return
        except subprocess.TimeoutExpired: pass


def _shutdown_kernels(base: str, token: str):
    "Ask the server to stop its kernels (they run in their own sessions, outside the server's process group)."
    try:
        with urllib.request.urlopen(f'{base}/api/kernels?token={token}', timeout=5) as r: kernels = json.load(r)
        for k in kernels:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method='DELETE'), timeout=10)
    except OSError: pass


@pytest.fixture
def jupyterlab(tmp_path):
    "JupyterLab on 127.0.0.1 serving a copy of the demo notebook, with an empty checkpoint cache: Predict trains one."
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium) to run the browser test")
    try: import playwright.sync_api  # noqa: F401
    except ImportError as e: pytest.skip(f"the playwright Python package is not installed ({e}): pip install -e '.[dev]'")
    work, cache = tmp_path / 'lab', tmp_path / 'cache'
    work.mkdir(); cache.mkdir()
    shutil.copy(REPO / 'nbs' / '26_demo.ipynb', work / 'demo.ipynb')  # a copy: the browser saves outputs into it
    port, token = _free_port(), 'pudnet-test-' + os.urandom(8).hex()
    env = {**os.environ, 'PUDNET_CACHE': str(cache), 'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]),
           'JUPYTER_CONFIG_DIR': str(tmp_path / 'jupyter-config'), 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'jupyter-runtime')}
    labconfig = tmp_path / 'jupyter-config' / 'labconfig'
    labconfig.mkdir(parents=True)  # no "get notified about news?" pop-up over the widget
    (labconfig / 'page_config.json').write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    log = open(tmp_path / 'jupyterlab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}', '--ServerApp.open_browser=False',
                             '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
                            + (['--allow-root'] if os.geteuid() == 0 else []),
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None: pytest.fail(f"JupyterLab exited ({proc.returncode}): {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status?token={token}', timeout=2); break
            except OSError:
                if time.monotonic() > deadline: pytest.fail(f"JupyterLab did not answer within 60 s: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f'http://127.0.0.1:{port}/lab/tree/demo.ipynb?token={token}'
    finally:
        _shutdown_kernels(f'http://127.0.0.1:{port}', token)
        _kill_group(proc)
        log.close()


# records what the demo shows after each change on the page: the status line, and the checkpoint bar's fill while shown
RECORD_JS = """() => {
  window.__demo = [];
  const root = document.querySelector('.pudnet-demo');
  const record = () => {
    const bar = root.querySelector('.pudnet-train-bar'), status = root.querySelector('.pudnet-status');
    const fill = bar && bar.offsetParent !== null ? bar.querySelector('.progress-bar') : null;
    window.__demo.push({t: performance.now(), bar: fill ? parseFloat(fill.style.width || fill.style.height || '0') : null,
                        status: status ? status.innerText : ''});
  };
  window.__demo_start = performance.now();
  new MutationObserver(record).observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def _tag_names(demo) -> list:
    return [t.strip() for t in demo.locator('.jupyter-widget-tagsinput div.jupyter-widget-tag').all_inner_texts()]


def test_demo_notebook_in_chromium(jupyterlab):
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        try: browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox', '--disable-gpu'])
        except Exception as e: pytest.skip(f"{CHROMIUM} could not be started by Playwright: {e}")
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 3000})
            page.set_default_timeout(60_000)
            page.goto(jupyterlab)
            page.locator('.jp-Notebook').wait_for()
            page.locator('#jp-main-statusbar').get_by_text('Idle').wait_for(timeout=90_000)  # the kernel has started
            assert page.locator('.jp-Notebook img').count() == 0  # no picture of a widget that does not run yet
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            demo = page.locator('.pudnet-demo').first  # the digits demo (a second one, on the mixture, needs the shared data)
            button = demo.locator('button', has_text='Predict')
            button.wait_for(timeout=120_000)  # the widget is there
            # and the cells after it have run: the kernel answers the widget at once (the mixed demo, when the shared
            # copies are found, first loads its data)
            page.locator('#jp-main-statusbar').get_by_text('Idle').wait_for(timeout=300_000)
            # unseen by default: the digits checkpoint learns 0-5, the demo opens on 6-9 and says none was seen
            demo.filter(has_text='4 of 10 classes chosen').wait_for(timeout=10_000)
            assert _tag_names(demo) == ['6', '7', '8', '9'], _tag_names(demo)
            assert 'seen in meta-training' not in demo.locator('.pudnet-class-picker').inner_text()
            # the class picker: a cross removes a tag; a name typed in the box and Enter adds one; other text is cleared
            demo.locator('.jupyter-widget-tag-close').last.click()  # digit 9 leaves the choice
            demo.filter(has_text='3 of 10 classes chosen').wait_for(timeout=10_000)
            entry = demo.locator('.pudnet-class-picker input[placeholder="type a class name, then Enter"]')
            entry.fill('9')
            entry.press('Enter')  # Enter alone, no Tab or click elsewhere
            demo.filter(has_text='4 of 10 classes chosen').wait_for(timeout=10_000)
            assert _tag_names(demo) == ['6', '7', '8', '9'], _tag_names(demo)
            entry.fill('bicycle')
            entry.press('Enter')
            demo.locator('.pudnet-class-picker', has_text="no class called 'bicycle'").wait_for(timeout=10_000)
            page.wait_for_function("document.querySelector('.pudnet-demo .pudnet-class-picker input[placeholder^=\"type a class\"]').value === ''",
                                   timeout=10_000)
            assert _tag_names(demo) == ['6', '7', '8', '9']
            page.evaluate(RECORD_JS)
            button.click()  # the cache is empty: the widget meta-trains the digits checkpoint first, then predicts
            status = demo.locator('.pudnet-status', has_text='Scored the same way')
            status.wait_for(timeout=480_000)  # the checkpoint meta-trains first (236 s on 2 cores at load average 8)
            text = status.inner_text()
            log = page.evaluate('window.__demo')
            # the checkpoint bar advanced while the checkpoint trained: several fills between empty and full
            fills = sorted({e['bar'] for e in log if e['bar'] is not None})
            assert len([f for f in fills if 0 < f < 100]) >= 3 and fills[-1] == 100, fills
            # PudNet's own result was on screen before the floors were
            first = next(i for i, e in enumerate(log) if 'PudNet predicted' in e['status'])
            floors = next(i for i, e in enumerate(log) if 'Scored the same way' in e['status'])
            assert first < floors and 'Scored the same way' not in log[first]['status'], log[first]['status']
            print(f"\nPredict -> first result {(log[first]['t'] - page.evaluate('window.__demo_start')) / 1000:.1f} s, "
                  f"floors {(log[floors]['t'] - log[first]['t']) / 1000:.1f} s later (the checkpoint trained first)")
            assert 'PudNet predicted a convnet3' in text and '(4 classes' in text, text
            # the floors beside PudNet, with numbers, and the lesson of the swap, with a link to its chapter
            assert 'Scored the same way: an untrained network' in text and "predicted from other classes' images" in text, text
            assert 'does not depend on these images' in text, text
            assert status.locator('a[href$="12_swap/"]').count() == 1
            assert text.count('%') >= 3, text
            demo.filter(has_text='Race finished').wait_for(timeout=180_000)  # Adam's 10 epochs, live
            plots = demo.locator('.js-plotly-plot')
            page.wait_for_function("document.querySelector('.pudnet-demo').querySelectorAll('.js-plotly-plot').length >= 6", timeout=60_000)
            titles = ' | '.join(demo.locator('.gtitle').all_text_contents())
            for want in ('Query images', 'Accuracy per class', 'Confusion matrix', 'PudNet', 'Convolution weights', 'Dataset sketches'):
                assert want in titles, f"{want!r} not among the rendered plot titles: {titles}"
            assert plots.count() == 6
            grid = demo.locator('.js-plotly-plot', has_text='Query images')
            assert grid.locator('image').count() == 1  # the image grid rendered as a picture
            assert 'Adam' in demo.inner_text()
            demo.screenshot(path=str(SHOTS / 'widget.png'))
            if os.environ.get('PUDNET_UPDATE_SCREENSHOT'):  # the README's picture: a 256-colour PNG keeps it small
                from PIL import Image
                Image.open(SHOTS / 'widget.png').convert('RGB').quantize(256).save(REPO / 'nbs' / 'images' / 'widget.png', optimize=True)
            # a new choice clears the results of the old one
            demo.locator('.jupyter-widget-tag-close').first.click()
            page.wait_for_function("document.querySelector('.pudnet-demo').querySelectorAll('.js-plotly-plot').length === 0", timeout=30_000)
            demo.locator('.pudnet-status', has_text='Press Predict').wait_for(timeout=10_000)
        except Exception:
            try: page.screenshot(path=str(SHOTS / 'failure.png'), full_page=True)
            except Exception: pass
            raise
        finally: browser.close()


# Before any page script: record MathJax's own error signals (a TeX parse error is shown as its source by noErrors, so the
# page alone may not say it failed), and every JavaScript error.
_DOCS_INIT_JS = """window.__problems = [];
window.addEventListener('error', e => window.__problems.push('script error: ' + e.message));
window.MathJax = {AuthorInit: function () {
  ['Math Processing Error', 'TeX Jax - parse error', 'MathML Jax - parse error'].forEach(m => MathJax.Hub.Register.MessageHook(m,
    a => window.__problems.push(m + ': ' + String(a[2] || a[1] || '').slice(0, 120))));
}};"""

# After typesetting: what a reader would see wrong on the page, and what the formulas used
_DOCS_PAGE_JS = r"""() => {
  const problems = [...window.__problems], q = s => [...document.querySelectorAll(s)];
  const scripts = q('script[type^="math/tex"]');
  const unset = scripts.filter(s => !document.getElementById(s.id + '-Frame'));
  if (unset.length) problems.push(`${unset.length} formulas not typeset, e.g. ${unset[0].textContent.slice(0, 80)}`);
  const errors = q('.MathJax_Error, .mjx-merror, .mjx-noError, merror');
  if (errors.length) problems.push(`${errors.length} MathJax error elements, e.g. ${errors[0].textContent.slice(0, 80)}`);
  if (document.body.innerText.includes('Math Processing Error')) problems.push('"Math Processing Error" on the page');
  const undef = q('.mjx-chtml .mjx-mtext').filter(e => /^\s*\\[a-zA-Z]/.test(e.textContent));  // noUndefined's red \name
  if (undef.length) problems.push(`undefined TeX macros: ${undef.map(e => e.textContent.trim()).slice(0, 5)}`);
  const raw = [], w = document.createTreeWalker(document.querySelector('article') || document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = w.nextNode());) {  // TeX MathJax did not find: text outside code, formulas and the hidden copy-button text
    if (n.parentElement.closest('code, pre, script, style, .MathJax_Preview, .mjx-chtml, .MJX_Assistive_MathML, .clipboard-copy-txt')) continue;
    const m = n.textContent.match(/\$[^$\n]*\$|\\[a-zA-Z]+[{_^]|\\\(|\\\[/);
    if (m) raw.push(m[0].slice(0, 60));
  }
  if (raw.length) problems.push(`raw TeX left in the text: ${raw.slice(0, 5)}`);
  // MathJax's TeX fonts: each as a local() face (absent here: the system's copies are hidden) and a web face `...w` (the site's)
  const webFonts = [...document.fonts].filter(f => /^MJXc-TeX-.*w$/.test(f.family));
  const badFonts = webFonts.filter(f => f.status === 'error').map(f => f.family);
  if (badFonts.length) problems.push(`TeX fonts that failed to load: ${badFonts}`);
  if (scripts.length && !webFonts.some(f => f.status === 'loaded')) problems.push('formulas set without the site\'s TeX fonts');
  const output = window.MathJax && MathJax.Hub && MathJax.Hub.outputJax['jax/mml'] ? MathJax.Hub.outputJax['jax/mml'][0].id : null;
  if (scripts.length && output !== 'CommonHTML') problems.push(`MathJax output ${output}, not CommonHTML with the TeX fonts`);
  const blank = q('article img').filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src').slice(0, 60));
  if (blank.length) problems.push(`pictures not shown: ${blank}`);
  const figs = q('.plotly-graph-div'), undrawn = figs.filter(d => !d.querySelector('.main-svg'));
  if (undrawn.length) problems.push(`${undrawn.length} of ${figs.length} plotly figures not drawn`);
  const primed = scripts.filter(s => s.textContent.includes("'"));
  const primesDrawn = primed.filter(s => (document.getElementById(s.id + '-Frame') || {textContent: ''}).textContent.includes('\u2032'));
  if (primesDrawn.length < primed.length) problems.push(`${primed.length - primesDrawn.length} formulas with a prime drawn without it`);
  return {problems, formulas: scripts.length, primes: primesDrawn.length, figures: figs.length, pictures: q('article img').length,
          prime_id: primesDrawn.length ? primesDrawn[0].id + '-Frame' : null};
}"""


def test_the_docs_site_renders_formulas_and_pictures_offline(tmp_path):
    """Every page of the built docs site (`.ci/build_docs.py` -> _site/, before the tests in CI), opened as a reader would, from
    files, offline: no request fails (a missing file, a font, anything from the internet), no script error, every formula
    typeset by MathJax's CommonHTML output with its TeX fonts and no error (primes included), every picture and figure drawn."""
    site = REPO / '_site'
    if not (site / 'index.html').exists(): pytest.skip("no built docs site: run .ci/build_docs.py first")
    if not Path(CHROMIUM).exists(): pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package to run the browser test")
    try: from playwright.sync_api import sync_playwright
    except ImportError as e: pytest.skip(f"the playwright Python package is not installed ({e}): pip install -e '.[dev]'")
    nbs = REPO / 'nbs'
    notebooks = [p for p in nbs.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(nbs).parts)]
    # every page a reader reaches from files (404.html is for a web server: it links /assets/... from the server's root)
    pages = sorted(p for p in site.rglob('index.html') if p.relative_to(site).parts[0] not in ('assets', 'search'))
    assert len(pages) >= len(notebooks), f"the site has {len(pages)} pages for {len(notebooks)} notebooks: build it again"
    problems, totals = {}, dict(formulas=0, primes=0, figures=0, pictures=0)
    # a reader's machine has no MathJax fonts installed: hide any this one has (Debian's fonts-mathjax puts them in the system's
    # fonts, where MathJax would find them and never load the site's copies)
    fonts_conf = tmp_path / 'fonts.conf'
    fonts_conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                          '<include ignore_missing="yes">/etc/fonts/fonts.conf</include>'
                          '<selectfont><rejectfont><glob>*MathJax*</glob></rejectfont></selectfont>'
                          f'<cachedir>{tmp_path / "fontconfig-cache"}</cachedir></fontconfig>')
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox', '--disable-gpu'],
                                     env={**os.environ, 'FONTCONFIG_FILE': str(fonts_conf)})
        try:
            page = browser.new_page()
            failed = []
            page.on('requestfailed', lambda r: failed.append(f'request failed: {r.url[-100:]} ({r.failure})'))
            page.on('response', lambda r: r.status >= 400 and failed.append(f'HTTP {r.status}: {r.url[-100:]}'))
            page.on('pageerror', lambda e: failed.append(f'script error: {str(e)[:200]}'))
            page.route('http*://**', lambda route: route.abort())  # offline: any request to the internet fails
            page.add_init_script(_DOCS_INIT_JS)
            prime_shot = None
            for path in pages:
                failed.clear()
                page.goto(path.as_uri())
                page.wait_for_function("!window.MathJax || !MathJax.Hub || (MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running)",
                                       timeout=60_000)
                page.evaluate("() => new Promise(done => window.MathJax && MathJax.Hub && MathJax.Hub.Queue ? MathJax.Hub.Queue(done) : done())")
                page.evaluate("() => document.fonts.ready.then(() => null)")
                page.wait_for_load_state('networkidle')
                r = page.evaluate(_DOCS_PAGE_JS)
                for k in totals: totals[k] += r[k]
                if r['prime_id'] and prime_shot is None:
                    SHOTS.mkdir(parents=True, exist_ok=True)  # a look at a formula with a prime, as set with the TeX fonts
                    prime_shot = SHOTS / 'docs-prime-formula.png'
                    page.locator(f"[id='{r['prime_id']}']").screenshot(path=str(prime_shot))
                if failed or r['problems']: problems[path.relative_to(site).as_posix()] = [*failed, *r['problems']]
        finally: browser.close()
    assert not problems, '\n'.join(f'{p}: {"; ".join(v)}' for p, v in problems.items())
    assert totals['formulas'] > 100 and totals['primes'] > 0 and totals['figures'] > 10 and totals['pictures'] > 0, \
        f"the check saw too little of the site to say it renders: {totals}"
    print(f"docs site: {len(pages)} pages, {totals}: no failed request, no MathJax error")
