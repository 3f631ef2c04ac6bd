"""The library follows the book: short functions and classes (named steps a reader can follow), and no import cycle
between pudnet's modules (a module is read after the ones it imports)."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = {p.stem: p for p in sorted((REPO / 'pudnet').glob('*.py')) if p.name != '_modidx.py'}
MAX_FUNCTION_LINES, MAX_CLASS_LINES = 60, 120


def span(node):
    "Lines from a def/class line to its last line, decorators excluded."
    return node.end_lineno - node.lineno + 1


def long_definitions(path):
    "[(qualified name, kind, lines)] for every function/method over MAX_FUNCTION_LINES and class over MAX_CLASS_LINES."
    over = []
    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name, is_class = f'{prefix}{child.name}', isinstance(child, ast.ClassDef)
                if span(child) > (MAX_CLASS_LINES if is_class else MAX_FUNCTION_LINES):
                    over.append((name, 'class' if is_class else 'function', span(child)))
                visit(child, f'{name}.')
            else: visit(child, prefix)
    visit(ast.parse(path.read_text()), f'{path.stem}.')
    return over


def top_level_imports(path):
    "The pudnet modules a module imports at its top level (anywhere in it, its bottom included; not inside functions)."
    imported = set()
    def visit(statements):
        for node in statements:
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module: imported.add(node.module.split('.')[0])
                elif node.level == 1: imported.update(a.name for a in node.names)
                elif node.level == 0 and node.module == 'pudnet': imported.update(a.name for a in node.names)
                elif node.level == 0 and (node.module or '').startswith('pudnet.'):
                    imported.add(node.module.split('.')[1])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split('.')[1] for a in node.names if a.name.startswith('pudnet.'))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):  # still the module's level: `if`, `try/except`
                for field in ('body', 'orelse', 'finalbody', 'handlers'):
                    for sub in getattr(node, field, []):
                        visit(sub.body if isinstance(sub, ast.ExceptHandler) else [sub])
    visit(ast.parse(path.read_text()).body)
    return imported & set(MODULES)


def import_cycles(graph):
    "Every cycle in a {module: imported modules} graph, each as a path [a, b, ..., a] (depth-first search)."
    cycles, state = [], {}
    def walk(node, path):
        state[node] = 'open'
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open': cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state: walk(nxt, path + [nxt])
        state[node] = 'done'
    for node in sorted(graph):
        if node not in state: walk(node, [node])
    return cycles


def test_the_shape_checks_see_what_they_should(tmp_path):
    "The checks on a made-up module: a long class and function (decorators not counted) are found by name; cycles."
    probe = tmp_path / 'probe.py'
    probe.write_text('class Big:\n' + '    x = 1\n' * 130 + '\n@decorator\ndef long():\n' + '    y = 1\n' * 60
                     + '\n@decorator\ndef fits():\n' + '    y = 1\n' * 59
                     + 'try:\n    from .core import PudNet\nexcept ImportError: pass\nimport pudnet.data\n'
                     + 'def later():\n    from . import cli\n')
    assert long_definitions(probe) == [('probe.Big', 'class', 131), ('probe.long', 'function', 61)]
    assert top_level_imports(probe) == {'core', 'data'}
    assert import_cycles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [['a', 'b', 'a']]
    assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []


def test_no_function_or_class_is_too_long():
    over = [o for p in MODULES.values() for o in long_definitions(p)]
    for name, kind, lines in over: print(f'{name}: {kind} of {lines} lines')
    assert not over, ('over the limits (function %d, class %d lines): ' % (MAX_FUNCTION_LINES, MAX_CLASS_LINES)
                      + ', '.join(f'{n} ({k}, {l} lines)' for n, k, l in over))


def test_no_import_cycle_between_modules():
    graph = {m: top_level_imports(p) for m, p in MODULES.items()}
    cycles = import_cycles(graph)
    for c in cycles: print('import cycle: ' + ' -> '.join(c))
    assert not cycles, 'import cycles: ' + '; '.join(' -> '.join(c) for c in cycles)


def test_the_core_finds_the_extensions_by_name():
    "The core never imports the extensions' module; a config that switches one on finds it (in a fresh process)."
    code = ('import sys; from pudnet.core import PudNet, PudNetConfig; before = "pudnet.extensions" in sys.modules; '
            'm = PudNet(PudNetConfig(base_weights=True, predict_bn=True, sketch_pool="attention")); '
            'print(before, type(m.base).__name__, type(m.bn_generators).__name__, type(m.sketch).__name__, '
            'm.warm_start(m.template) is m)')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False', 'BaseKernels', 'BatchNormOffsets', 'AttentionSketch', 'True'], r.stdout
