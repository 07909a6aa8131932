("The house plan, checked: modules import one way (no cycle, nothing upward, no private names), stage notebooks "
 "share code.")
import ast, json, re
from pathlib import Path
from conftest import ROOT

# Bottom to top: a module may import only the modules before it. README's layout table says the same.
LAYERS = ['store', 'plan', 'numerals', 'normalise', 'score', 'manifest', 'sentences', 'channel', 'data', 'corpus',
          'model', 'stage_config', 'train', 'checkpoints', 'stage', 'infer', 'transcribe', 'evaluate', 'release',
          'experiment', 'rehearsal', 'wheelhouse']
PKG = ROOT / 'fun_asr_8k'

def project_imports(path: Path) -> list[tuple[str, list[str], int]]:
    "(module imported, names taken from it, line) of every project import in a module, those inside functions too."
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: mod = node.module or ''
            elif (node.module or '').startswith('fun_asr_8k.'): mod = node.module.split('.', 1)[1]
            elif node.module == 'fun_asr_8k': mod = ''
            else: continue
            if mod: out.append((mod.split('.')[0], [a.name for a in node.names], node.lineno))
            else: out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name.split('.')[1], [], node.lineno) for a in node.names if a.name.startswith('fun_asr_8k.')]
    return out

def modules() -> list[str]:
    return sorted(p.stem for p in PKG.glob('*.py') if not p.name.startswith('_'))

def test_every_module_has_a_layer():
    assert sorted(LAYERS) == modules(), f'modules without a layer (add them to LAYERS and the README): {modules()}'

def test_imports_point_down_only():
    upward = []
    for m in modules():
        for imported, names, line in project_imports(PKG / f'{m}.py'):
            if LAYERS.index(imported) >= LAYERS.index(m):
                upward.append(f'fun_asr_8k/{m}.py:{line} imports {imported} '
                              f'(layer {LAYERS.index(imported)} >= {LAYERS.index(m)})')
    assert not upward, '\n'.join(upward)

def test_no_private_name_crosses_a_module():
    private = [f'fun_asr_8k/{m}.py:{line} imports {n} from {imported}' for m in modules()
               for imported, names, line in project_imports(PKG / f'{m}.py') for n in names if n.startswith('_')]
    assert not private, '\n'.join(private)

def test_the_scan_sees_imports_inside_functions(tmp_path):
    (tmp_path / 'x.py').write_text('from .store import write_atomic\ndef f():\n    from fun_asr_8k.train import _tail\n'
                                   '    import fun_asr_8k.model\n')
    assert project_imports(tmp_path / 'x.py') == [('store', ['write_atomic'], 1), ('train', ['_tail'], 3),
                                                  ('model', [], 4)]

def test_funasr_comes_after_store():
    "store imports funasr lean (91_store): a module that imports funasr at its top imports the project first."
    late = []
    for m in modules():
        body = ast.parse((PKG / f'{m}.py').read_text()).body
        first = lambda hit: next((n.lineno for n in body if isinstance(n, (ast.Import, ast.ImportFrom)) and hit(n)),
                                 None)
        funasr = first(lambda n: any(a.name.split('.')[0] == 'funasr' for a in n.names) if isinstance(n, ast.Import)
                       else (n.module or '').split('.')[0] == 'funasr')
        project = first(lambda n: isinstance(n, ast.ImportFrom) and n.level == 1)
        if funasr and m != 'store' and (project is None or project > funasr):
            late.append(f'fun_asr_8k/{m}.py:{funasr} imports funasr before the project (and so before store)')
    assert not late, '\n'.join(late)

def test_the_package_imports_funasr_lean():
    "Every module imported, the last layer first: funasr's own __init__ (every model family) never ran."
    import subprocess, sys
    code = ('import importlib, sys; [importlib.import_module(f"fun_asr_8k.{m}") for m in sys.argv[1:]]; '
            'import funasr; print(funasr._fa8k_full, sum(k.startswith("funasr.models.") and k.count(".") == 2 '
            'for k in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code, *reversed(LAYERS)], capture_output=True, text=True, check=True)
    full, families = out.stdout.split()
    assert (full, int(families) <= 6) == ('False', True), out.stdout

def code_cells(nb: str) -> list[str]:
    cells = json.loads((ROOT / 'nbs' / f'{nb}.ipynb').read_text())['cells']
    return [''.join(c['source']) for c in cells
            if c['cell_type'] == 'code' and 'parameters' not in c.get('metadata', {}).get('tags', [])]

def parameters(nb: str) -> dict:
    cells = json.loads((ROOT / 'nbs' / f'{nb}.ipynb').read_text())['cells']
    src = [''.join(c['source']) for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert len(src) == 1, f'{nb}: {len(src)} parameters cells, papermill needs exactly one'
    names = {}
    for node in ast.parse(src[0]).body:
        if isinstance(node, ast.Assign): names[node.targets[0].id] = ast.literal_eval(node.value)
    return names

def test_stage_notebooks_differ_only_in_parameters_and_prose():
    stages = ['10_stage1', '20_stage2', '30_stage3']
    assert code_cells(stages[0]) == code_cells(stages[1]) == code_cells(stages[2])
    p = {nb: parameters(nb) for nb in stages}
    assert [p[nb]['stage'] for nb in stages] == ['stage1', 'stage2', 'stage3']
    assert all({k: v for k, v in p[nb].items() if k != 'stage'}
               == {k: v for k, v in p[stages[0]].items() if k != 'stage'}
               for nb in stages)

def test_lines_are_short():
    "At most 120 characters a line in the package (ruff's E501 for tests/ and bench/); nbdev's `__all__` line aside."
    long = [f'{p.relative_to(ROOT)}:{n}: {len(l)} characters'
            for p in sorted(PKG.glob('*.py')) if p.name != '_modidx.py'
            for n, l in enumerate(p.read_text().splitlines(), 1) if len(l) > 120 and not l.startswith('__all__ = [')]
    assert not long, '\n'.join(long)

def test_the_readme_is_short_and_its_table_is_the_committed_runs():
    "The README fits a first read, its results are the committed smoke run's own lines, and every link it holds exists."
    readme = (ROOT / 'README.md').read_text()
    assert len(readme.splitlines()) <= 160, f'README.md: {len(readme.splitlines())} lines'
    report = (ROOT / 'reports' / 'smoke' / 'README.md').read_text()
    lines = readme.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith('| what the model organism must show |'))
    organism = [l for l in lines[start:] if l.startswith('|') or l is lines[start]]
    organism = organism[:next((i for i, l in enumerate(lines[start:]) if not l.startswith('|')), len(organism))]
    assert organism and all(l in report for l in organism), [l for l in organism if l not in report]
    for doc in (ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))):
        for target in re.findall(r'\]\(([^)#]+)(?:#[^)]*)?\)', doc.read_text()):
            if '://' in target: continue
            assert (doc.parent / target).exists(), f'{doc.relative_to(ROOT)} links to {target}, which is not there'
        text = doc.read_text()
        assert 'this round' not in text and '/work/' not in text, f'{doc.relative_to(ROOT)}: history or a local path'
