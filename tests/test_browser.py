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
def jupyterlab(tmp_path, request):
    "JupyterLab on 127.0.0.1 serving a copy of the demo notebook; its demo checkpoint is pre-cached (a short real training)."
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium) to run the browser test")
    try: import playwright.sync_api  # noqa: F401
    except ImportError as e: pytest.skip(f"the playwright Python package is not installed ({e}): pip install -e '.[dev]'")
    digits_checkpoint = request.getfixturevalue('digits_checkpoint')  # only once we know the test can run
    work, cache = tmp_path / 'lab', tmp_path / 'cache'
    work.mkdir(); cache.mkdir()
    shutil.copy(REPO / 'nbs' / '13_demo.ipynb', work / 'demo.ipynb')  # a copy: the browser saves outputs into it
    shutil.copy(digits_checkpoint, cache / 'pudnet-digits-40x2.safetensors')  # what digits_checkpoint() would cache
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
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            button = page.locator('.pudnet-demo button', has_text='Predict')
            button.wait_for(timeout=120_000)  # all cells ran: the widget is there
            # the class picker shows the choice as tags: a cross removes one, typing a name and Enter adds one
            tags = page.locator('.pudnet-demo .jupyter-widget-tag-close')  # one cross per chosen class
            assert tags.count() == 4 and page.locator('.pudnet-demo', has_text='4 of 10 classes chosen').count() == 1
            tags.last.click()  # digit 9 leaves the choice
            page.locator('.pudnet-demo', has_text='3 of 10 classes chosen').wait_for(timeout=10_000)
            picker = page.locator('.pudnet-demo .jupyter-widget-tagsinput')
            picker.click(position={'x': picker.bounding_box()['width'] - 10, 'y': 10})  # a click beside the tags opens the text box
            page.locator('.pudnet-demo .jupyter-widget-taginput').fill('9')
            page.locator('.pudnet-demo .jupyter-widget-taginput').press('Enter')
            page.locator('.pudnet-demo .jupyter-widget-taginput').press('Tab')  # the input commits on change (Enter, or leaving it)
            page.locator('.pudnet-demo', has_text='4 of 10 classes chosen').wait_for(timeout=10_000)
            assert tags.count() == 4
            button.click()
            status = page.locator('.pudnet-demo .widget-html-content', has_text='accuracy').first
            status.wait_for(timeout=90_000)
            text = status.inner_text()
            assert 'PudNet predicted a convnet3' in text and '(4 classes' in text, text
            # the floors beside PudNet, with numbers: an untrained network and the swap, scored the same way
            assert 'Scored the same way: an untrained network' in text and "predicted from the other classes' images" in text, text
            assert text.count('%') >= 3, text
            page.locator('.pudnet-demo', has_text='Race finished').wait_for(timeout=180_000)  # Adam's 10 epochs, live
            plots = page.locator('.pudnet-demo .js-plotly-plot')
            page.wait_for_function("document.querySelectorAll('.pudnet-demo .js-plotly-plot').length >= 6", timeout=60_000)
            titles = ' | '.join(page.locator('.pudnet-demo .gtitle').all_text_contents())
            for want in ('Query images', 'Accuracy per class', 'Confusion matrix', 'PudNet', 'Convolution weights', 'Dataset sketches'):
                assert want in titles, f"{want!r} not among the rendered plot titles: {titles}"
            assert plots.count() == 6
            grid = page.locator('.pudnet-demo .js-plotly-plot', has_text='Query images')
            assert grid.locator('image').count() == 1  # the image grid rendered as a picture
            assert 'Adam' in page.locator('.pudnet-demo').inner_text()
            page.locator('.pudnet-demo').screenshot(path=str(SHOTS / 'widget.png'))
            if os.environ.get('PUDNET_UPDATE_SCREENSHOT'):  # the README's picture: a 256-colour PNG keeps it small
                from PIL import Image
                Image.open(SHOTS / 'widget.png').convert('RGB').quantize(256).save(REPO / 'nbs' / 'images' / 'widget.png', optimize=True)
        except Exception:
            try: page.screenshot(path=str(SHOTS / 'failure.png'), full_page=True)
            except Exception: pass
            raise
        finally: browser.close()


def test_the_docs_site_renders_formulas_and_pictures_offline():
    "The built docs site (`.ci/build_docs.py` -> _site/, before the tests in CI) opened as a reader would, from files, offline."
    site = REPO / '_site'
    if not (site / '02_sketch' / 'index.html').exists(): pytest.skip("no built docs site: run .ci/build_docs.py first")
    if not Path(CHROMIUM).exists(): pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package to run the browser test")
    try: from playwright.sync_api import sync_playwright
    except ImportError as e: pytest.skip(f"the playwright Python package is not installed ({e}): pip install -e '.[dev]'")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox', '--disable-gpu'])
        try:
            page = browser.new_page()
            page.route('http*://**', lambda route: route.abort())  # offline: any request to the internet fails
            page.goto((site / '02_sketch' / 'index.html').as_uri())
            page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && "
                                   "document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG').length > 0", timeout=60_000)
            text = page.inner_text('article')
            assert '\\frac' not in text and '$$' not in text, "a formula of the sketch chapter was left as raw TeX"
            page.goto((site / 'index.html').as_uri())
            sizes = page.eval_on_selector_all('article img', 'imgs => imgs.map(i => i.naturalWidth)')
            assert sizes and min(sizes) > 0, f"a picture on the home page did not load: widths {sizes}"
        finally: browser.close()
