("An offline GPU node: a wheelhouse made here installs into a fresh venv with no index, beside the node's own "
 "torch, and the training and evaluation import (and run) without PyAV.")
import json, os, subprocess, sys
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path
import pytest
from conftest import ROOT, cli
from fun_asr_8k.plan import RELEASED_TINY
from fun_asr_8k.wheelhouse import canonical, closure

TRAINING = 'import fun_asr_8k.stage, fun_asr_8k.evaluate, fun_asr_8k.infer, fun_asr_8k.experiment, fun_asr_8k.rehearsal'

def test_training_and_evaluation_import_without_pyav():
    r = subprocess.run([sys.executable, '-c', f"import sys; sys.modules['av'] = None\n{TRAINING}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]

def test_setup_installs_the_versions_the_committed_report_recorded():
    "constraints.txt, which `./run setup` installs, holds the committed smoke run's versions; this venv holds its pins."
    pins = dict(line.split('==') for line in (ROOT / 'constraints.txt').read_text().splitlines()
                if line and not line.startswith('#'))
    recorded = json.loads((ROOT / 'reports' / 'smoke' / 'run.json').read_text())['versions']
    differ = {n: (v, pins.get(canonical(n))) for n, v in recorded.items()
              if n not in ('python', 'torch') and pins.get(canonical(n)) != v}
    assert not differ, f'run.json against constraints.txt: {differ}'
    assert not set(pins) & set(closure('torch')), 'torch and what it needs are installed first, on their own'
    def here(n):
        try: return version(n)
        except PackageNotFoundError: return None
    stale = {n: (v, here(n)) for n, v in pins.items() if here(n) not in (v, None)}
    assert not stale, f'this venv against constraints.txt (./run lock after an upgrade): {stale}'

def node_python(d: Path) -> Path:
    "A Python whose site-packages hold torch and what torch needs, nothing else: a GPU node's, in miniature."
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(d)], check=True)
    py = d / 'bin' / 'python'
    site = Path(subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in closure('torch'):
        dist = distribution(name)
        for top in {f.parts[0] for f in dist.files if f.parts[0] != '..'}:
            if not (site / top).exists(): (site / top).symlink_to(dist.locate_file(top))
    return py

@pytest.fixture(scope='module')
def offline_venv(tmp_path_factory) -> Path:
    "`./run setup` from a wheelhouse with no index reachable, into a fresh venv made by the node's Python."
    d = tmp_path_factory.mktemp('offline')
    node = node_python(d / 'node')
    (d / 'node-freeze.txt').write_text('\n'.join(closure('torch')) + '\n')
    r = subprocess.run([cli('fa8k-wheelhouse'), d / 'wheels', '--have', d / 'node-freeze.txt'], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    info = json.loads((d / 'wheels' / 'wheelhouse.json').read_text())
    assert 'torch' in info['left_out'] and 'av' in info['left_out'] and not list((d / 'wheels').glob('av-*.whl'))
    env = dict(os.environ, FA8K_PYTHON=str(node), FA8K_VENV=str(d / 'venv'), FA8K_TORCH='',
               FA8K_WHEELHOUSE=str(d / 'wheels'), PIP_NO_INDEX='1', PIP_INDEX_URL='http://127.0.0.1:9/simple',
               PIP_FIND_LINKS='', PIP_EXTRA_INDEX_URL='')
    r = subprocess.run([ROOT / 'run', 'setup'], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'ok: training and evaluation import' in r.stdout, r.stdout
    return d / 'venv'

def test_the_node_keeps_its_torch_and_needs_no_pyav(offline_venv):
    code = (f'{TRAINING}\nimport torch, importlib.util\n'
            "print(torch.__file__, importlib.util.find_spec('av') is None)")
    r = subprocess.run([offline_venv / 'bin' / 'python', '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    torch_file, no_av = r.stdout.split()
    assert str(offline_venv) not in torch_file and no_av == 'True', r.stdout   # the node's torch; PyAV absent

def test_the_offline_venv_decodes_and_runs_a_notebook(offline_venv, speech_manifest, tmp_path):
    two = tmp_path / 'two.jsonl'
    two.write_text(''.join(json.dumps(dict(json.loads(l), source=str(speech_manifest.parent / json.loads(l)['source'])),
                                      ensure_ascii=False) + '\n' for l in speech_manifest.read_text().splitlines()[:2]))
    r = subprocess.run([offline_venv / 'bin' / 'fa8k-infer', '--model_path', RELEASED_TINY, '--test_data', two,
                        '--output_dir', tmp_path / 'out', '--quiet', 'True'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert len((tmp_path / 'out' / 'results.jsonl').read_text().splitlines()) == 2
    r = subprocess.run([offline_venv / 'bin' / 'papermill', ROOT / 'nbs' / '90_plan.ipynb', tmp_path / 'plan.ipynb',
                        '--log-level', 'ERROR'], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
