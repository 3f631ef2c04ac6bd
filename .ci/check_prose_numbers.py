r"""Every number in a notebook's prose is measured and shown: flag those that no output or committed record supports.

Usage: .venv/bin/python .ci/check_prose_numbers.py [nbs/X.ipynb ...]   (default: every notebook the docs site renders;
       `.ci/run` calls it after the docs build and fails when it fails)

What is checked: in the markdown cells, every number written with a decimal point (`60.04`, `0.91`, `-2.05`) and every
whole number written as a percentage (`95 %`, each end of a range `91-94 %`). Numbers in inline code, display equations ($$...$$),
link targets and HTML tags are settings or markup, not measurements, and are skipped (inline formulas are checked: a
measured $+0.70 \pm 0.76$ is written there), as are version strings (`2.14.1`) and
confidence levels (`95 % interval`).

What supports a number: a number in one of the notebook's own outputs (text, tables, plotly figures' data), or a scalar
of a committed record (`results/**/*.json`, curves and per-task lists of over 20 values left out) that the notebook
names: its path under `results/`, its file name, or its folder's name quoted or as a path segment (`'fair'`, `cpu/fair/`).
Forms that agree: the same value rounded to the digits written (0.91044 supports 0.91 and 0.9104), as a percentage
(0.9104 supports 91.04 and 91.0 %; 91.04 supports 0.9104), and without its sign (`-2.05` supports "2.05 points below").
A number written with more digits than its source shows is not supported (the output 0.91 does not support 91.04).

What is allowed without a source: the numbers in ALLOWED below, each with its reason (numbers the paper reports,
quoted as the paper's; constants of a definition).

Exit status 1 with `file: number (context)` lines when a number is not supported, 0 otherwise.
"""
import bisect
import json
import math
import re
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'results'
MAX_LIST = 20  # longer lists in records are per-task values or histories: a prose number is never one of them

# Numbers a notebook may write with no output or record behind them, each with its reason. Keys: the notebook's path
# from the repository root; values: {number as written: reason}.
ALLOWED = {
    'nbs/experiments/01_gpu_h100.ipynb': {
        '73.33': "the paper's Table I (PudNet, ResNet-18, CIFAR100-set), quoted as the paper's beside our run",
        '51.05': "the paper's Table II (PudNet, CIFAR100 to CIFAR-10), quoted as the paper's beside our run",
    },
    'nbs/index.ipynb': {
        '3.10': 'the Python version the package needs ("Python 3.10+"), not a measurement',
    },
}

# -- the numbers in prose ------------------------------------------------------------------------------------------
_skip = re.compile(r'```.*?```|`[^`\n]*`|\$\$.*?\$\$|\\\(.*?\\\)|\\\[.*?\\\]|\]\([^)]*\)|<[^>\n]*>|https?://\S+', re.S)
_decimal = re.compile(r'(?<![\w.])[-+−]?(\d+\.\d+)(?![\d]|\.\d|e[-+]?\d)')
_percent = re.compile(r'(?<![\w.,])(\d+)(?:\s*[-–]\s*(\d+))?\s*%')
_level = re.compile(r'\s*(?:confidence|CI\b|interval|percentile)')


def prose_numbers(text: str) -> list:
    "The (number as written, context) pairs of a markdown text that need a source: decimals and whole percentages."
    text = _skip.sub(' ', text)
    found = []
    for m in _decimal.finditer(text):
        found.append((m.group(1), m.start(1)))
    for m in _percent.finditer(text):
        if _level.match(text, m.end()): continue  # "95 % interval": a confidence level, part of a definition
        found.extend((g, m.start(i)) for i, g in ((1, m.group(1)), (2, m.group(2))) if g)
    return [(n, ' '.join(text[max(0, at - 40):at + len(n) + 30].split())) for n, at in sorted(found, key=lambda f: f[1])]


# -- the numbers that support it -----------------------------------------------------------------------------------
_number = re.compile(r'(?<![\w.])[-+−]?(\d+(?:\.\d+)?)(?:e([-+]?\d+))?')


def _text_values(text: str) -> list:
    "(value, decimals shown) of every number in a text; decimals None for a number in exponent form (exact)."
    out = []
    for m in _number.finditer(text):
        digits, exp = m.group(1), m.group(2)
        if exp: out.append((float(f'{digits}e{exp}'), None))
        else: out.append((float(digits), len(digits.split('.')[1]) if '.' in digits else 0))
    return out


def _json_values(obj, long_lists: bool = True) -> list:
    """(value, None) of every number in a JSON object (exact), numbers inside its strings as shown. Without `long_lists`,
    a record's per-task lists of over MAX_LIST numbers and its training `history` are left out."""
    out = []
    def walk(o):
        if isinstance(o, bool): return
        if isinstance(o, (int, float)): out.append((float(o), None))
        elif isinstance(o, str): out.extend(_text_values(o))
        elif isinstance(o, dict): [walk(v) for k, v in o.items() if long_lists or k != 'history']
        elif isinstance(o, list) and (long_lists or len(o) <= MAX_LIST or any(isinstance(v, dict) for v in o)):
            [walk(v) for v in o]
    walk(obj)
    return out


def output_values(nb: dict) -> list:
    "The numbers of a notebook's outputs: printed text, rich text, and the data of saved figures."
    vals = []
    for cell in nb['cells']:
        for o in cell.get('outputs', []):
            if 'text' in o: vals.extend(_text_values(''.join(o['text'])))
            for mime, data in o.get('data', {}).items():
                if isinstance(data, (dict, list)) and mime.endswith('json'): vals.extend(_json_values(data))
                elif mime.startswith('text/'): vals.extend(_text_values(''.join(data) if isinstance(data, list) else data))
    return vals


@lru_cache(None)
def record_files(results: Path = RESULTS) -> tuple:
    "The committed records a number may come from: results/**/*.json, curves left out."
    return tuple(sorted(p for p in Path(results).rglob('*.json') if p.name != 'curves.json'))


@lru_cache(None)
def record_values(path: Path) -> tuple:
    return tuple(_json_values(json.loads(path.read_text()), long_lists=False))


def _names(path: Path, results: Path) -> list:
    """How a notebook may name a record: its path under results/ (`results/cpu/fair/records.json`), its folder's path
    (`cpu/fair`, `results/cpu/fair/`), its folder's name quoted or as a path segment (`'fair'`), its file's name where no
    other record shares it (`headline.json`)."""
    rel = path.relative_to(results)
    end = r'(?![\w-])'
    names = [re.escape(f'results/{rel.as_posix()}'), re.escape(rel.name) + end if _unique_name(rel.name, results) else None]
    if rel.parent != Path('.'):
        folder = rel.parent.as_posix()
        names += [re.escape(folder) + end, rf"""(?:['"/`]{re.escape(rel.parent.name)}{end}|(?<![\w-]){re.escape(rel.parent.name)}['"/`])"""]
    return [n for n in names if n]


def _unique_name(name: str, results: Path) -> bool:
    return sum(p.name == name for p in record_files(results)) == 1


def named_records(nb_text: str, results: Path = RESULTS) -> list:
    "The committed records a notebook's text (code, prose and outputs) names."
    return [p for p in record_files(results) if any(re.search(n, nb_text) for n in _names(p, results))]


class Support:
    "The values that support a notebook's prose: exact ones and ones shown with some decimals, as sorted lists."
    def __init__(self, values):
        self.by_decimals = {}
        for v, d in values:
            if not math.isfinite(v): continue  # a NaN would break the sorted lists' order
            self.by_decimals.setdefault(d, []).append(abs(v))
        for vs in self.by_decimals.values(): vs.sort()

    def _near(self, vs, x, tol) -> bool:
        i = bisect.bisect_left(vs, x - tol)
        return i < len(vs) and vs[i] <= x + tol

    def supports(self, written: str) -> bool:
        "Whether some value, rounded to the digits written (as it is, as a percentage, or as a fraction), is `written`."
        x = float(written)
        d = len(written.split('.')[1]) if '.' in written else 0
        for shown, vs in self.by_decimals.items():
            for scale, shift in ((1, 0), (100, 2), (0.01, -2)):  # as it is; a fraction as a percentage; a percentage as a fraction
                if scale < 1 and shown == 0: continue  # a whole number shown (a count, a size) is no percentage
                e = None if shown is None else shown - shift  # the decimals the source shows, in the prose's unit
                if e is not None and e < d: continue  # more digits written than the source shows
                tol = 1e-9 if e == d else 0.5 * 10 ** -d + (0 if e is None else 0.5 * 10 ** -e)  # rounding the source to d digits
                if self._near(vs, x / scale, tol / scale + 1e-12): return True
        return False


# -- the check -----------------------------------------------------------------------------------------------------
def markdown_cells(nb: dict) -> list:
    return [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown']


def unsupported(path: Path, results: Path = RESULTS, allowed: dict = ALLOWED) -> list:
    "(number, context) of each number in the notebook's prose that no output, named record or allowance supports."
    nb = json.loads(Path(path).read_text())
    text = json.dumps(nb)  # everything the notebook shows or runs: it names its records somewhere in it
    support = Support(output_values(nb) + [v for p in named_records(text, Path(results)) for v in record_values(p)])
    try: key = Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError: key = Path(path).as_posix()
    return [(n, ctx) for md in markdown_cells(nb) for n, ctx in prose_numbers(md)
            if n not in allowed.get(key, {}) and not support.supports(n)]


def notebooks() -> list:
    "The notebooks the docs site renders: nbs/**/*.ipynb with no path part starting with '_' or '.'."
    nbs = ROOT / 'nbs'
    return sorted(p for p in nbs.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(nbs).parts))


def main(paths: list) -> int:
    flagged = 0
    for p in [Path(p) for p in paths] or notebooks():
        for n, ctx in unsupported(p):
            flagged += 1
            print(f'{p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p}: {n}  (... {ctx} ...)')
    if flagged:
        print(f'FAIL: {flagged} numbers in prose that no output or committed record shows (write the number an output shows, '
              'show it, or add it to ALLOWED in .ci/check_prose_numbers.py with the reason)')
        return 1
    print('== every number in the notebooks\' prose is shown by an output or a committed record')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
