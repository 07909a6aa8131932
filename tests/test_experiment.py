("fa8k-run, the whole smoke experiment, as a user runs it: killed and rerun, planted faults, missing inputs, "
 "reproducibility; a kernel's own output and its death.")
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, cli, tree_bytes

# full smoke runs (8-20 min on 2 cores) only when asked: FA8K_SLOW=1 ./run test
SLOW = os.environ.get('FA8K_SLOW') == '1'
slow = pytest.mark.skipif(not SLOW, reason='full smoke runs of fa8k-run: FA8K_SLOW=1')

def fa8k_run(*args, cwd, check=True, timeout=1800):
    r = subprocess.run([cli('fa8k-run'), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check: assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

def test_missing_input_names_the_file_and_the_command(tmp_path):
    r = fa8k_run(2, 2, '--run_id', 'missing', cwd=tmp_path, check=False)
    assert r.returncode == 1
    assert 'missing' in r.stderr and 'make it with' in r.stderr and 'exp_output' in r.stderr
    assert (tmp_path / 'reports' / 'missing' / '20_stage2.ipynb').exists(), (
        'the failed notebook stays in the run folder')

def notebook_of(path: Path, cell: str):
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    nbformat.write(nb, path)

def test_a_kernels_own_output_goes_to_kernels_log_not_the_terminal(tmp_path):
    "What a notebook's kernel process writes outside its cells (here at its exit) is in kernels.log, not on stderr."
    notebook_of(tmp_path / 'exits.ipynb',
                "import atexit, os\natexit.register(os.write, 2, b'the kernel at its exit\\n')\nprint('in the cell')")
    code = ("import sys; from pathlib import Path; import fun_asr_8k.experiment as e; d = Path(sys.argv[1]); "
            "e.NBS = d; e.execute('exits', d / 'run' / 'exits.ipynb', {}, d)")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stdout and not r.stderr, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert 'in the cell' in (tmp_path / 'run' / 'exits.ipynb').read_text(), 'a cell prints into the notebook'
    log = (tmp_path / 'run' / 'kernels.log').read_text()
    assert log.startswith('== exits -> exits.ipynb') and 'the kernel at its exit' in log, log

def test_a_kernel_killed_is_the_machines_fault_and_named(tmp_path, monkeypatch):
    "A kernel killed in a cell (as the OOM killer does) stops the step with a message, not nbclient's traceback."
    from fun_asr_8k import experiment
    notebook_of(tmp_path / 'killed.ipynb', 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)')
    monkeypatch.setattr(experiment, 'NBS', tmp_path)
    with pytest.raises(experiment.StageFailed) as e:
        experiment.execute('killed', tmp_path / 'run' / 'killed.ipynb', {}, tmp_path)
    assert 'killed: its kernel died' in str(e.value) and 'kernels.log' in str(e.value) and 'again' in str(e.value)

def test_a_finished_kernel_exits_beside_the_run_and_one_that_hangs_is_killed(tmp_path, monkeypatch):
    "execute returns once the cells are done; the kernel, asked to shut down, ends on its own or is killed when reaped."
    from fun_asr_8k import experiment
    monkeypatch.setattr(experiment, 'NBS', tmp_path)
    monkeypatch.setattr(experiment, '_EXITING', [])
    notebook_of(tmp_path / 'done.ipynb', "print('done')")
    notebook_of(tmp_path / 'hangs.ipynb', "import atexit, time\natexit.register(time.sleep, 600)")
    experiment.execute('done', tmp_path / 'run' / 'done.ipynb', {}, tmp_path)
    experiment.execute('hangs', tmp_path / 'run' / 'hangs.ipynb', {}, tmp_path)
    (done, _), (hangs, _) = experiment._EXITING
    t0 = time.time()
    experiment._reap_kernels()
    assert not experiment._EXITING and time.time() - t0 < 30, 'killed 5 s after the request'
    assert done.returncode == 0, 'a kernel asked to shut down ends by itself'
    assert hangs.returncode == -signal.SIGKILL, 'a kernel that does not end is killed'

def epochs_of(train_log: Path) -> list[int]:
    return [json.loads(l)['epoch'] for l in open(train_log) if '"event": "epoch"' in l]

@pytest.fixture(scope='module')
def killed_and_rerun(tmp_path_factory):
    "The whole smoke experiment, killed -9 in the middle of stage 1 training, then run again to the end."
    d = tmp_path_factory.mktemp('run')
    p = subprocess.Popen([cli('fa8k-run'), '0', '4', '--run_id', 'r'], cwd=d, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    log = d / 'exp_output/exp/8k_telephone/stage1_encoder/train.log'
    # after the first of stage 1's two smoke epochs: the kill lands in the second
    t0, wait_for = time.time(), 1
    while p.poll() is None and time.time() - t0 < 1500:
        if log.exists() and len(epochs_of(log)) >= wait_for: break
        time.sleep(0.5)
    assert p.poll() is None, 'the run ended before stage 1 was half done'
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    fa8k_run(0, 4, '--run_id', 'r', cwd=d)
    return d

@slow
def test_killed_run_resumes_and_finishes(killed_and_rerun):
    d = killed_and_rerun
    exp = d / 'exp_output/exp/8k_telephone'
    for ptr in ('stage1_checkpoint.txt', 'stage2_checkpoint.txt', 'final_checkpoint.txt'):
        assert Path((exp / ptr).read_text().strip()).exists(), ptr
    e = epochs_of(exp / 'stage1_encoder/train.log')
    assert sorted(set(e)) == list(range(1, max(e) + 1)), f'an epoch is missing: {e}'
    assert len(e) - len(set(e)) <= 1, f'finished epochs were redone: {e}'
    starts = [json.loads(l) for l in open(exp / 'stage1_encoder/train.log') if '"event": "start"' in l]
    assert len(starts) == 2 and starts[1]['epoch'] >= 1, 'the rerun resumed from the last checkpoint'

@slow
def test_run_report(killed_and_rerun):
    run = killed_and_rerun / 'reports' / 'r'
    text = (run / 'README.md').read_text()
    for part in ('**What this is.**', '## Results', '## Released model', '## Data (Stage 0)', '## Telephone channel',
                 '## Training', '## Environment', 'funasr'):
        assert part in text, part
    for nb in ('00_channel_sim', '01_data_prep', '10_stage1', '20_stage2', '30_stage3', '40_eval'):
        assert (run / f'{nb}.ipynb').exists(), nb
    assert not list((ROOT / 'nbs').glob('*_out*.ipynb'))

@slow
def test_every_planted_fault_is_named_and_counted(killed_and_rerun):
    d = killed_and_rerun / 'exp_output'
    info = json.loads((d / 'smoke_corpus/corpus.json').read_text())
    rep = json.loads((d / 'data/real_8k_telephone/report.json').read_text())
    dropped = {(s, x['line']): x['reason'] for s in rep for x in rep[s]['dropped']}
    split = {'audio_neutral': 'train', 'audio_quiet': 'dev'}
    for f in info['faults']:
        assert (split[f['manifest']], f['line']) in dropped, f
    text = (killed_and_rerun / 'reports/r/README.md').read_text()
    for reason in ('annotation_error', 'empty', 'missing', 'unreadable', 'wrong_rate', 'bad_line'):
        assert reason in text, reason

@slow
def test_two_runs_same_seed_same_data_and_metrics(tmp_path):
    for d in ('a', 'b'):
        (tmp_path / d).mkdir(); fa8k_run(0, 4, '--run_id', 'r', cwd=tmp_path / d)
    ta, tb = tree_bytes(tmp_path / 'a/exp_output/data'), tree_bytes(tmp_path / 'b/exp_output/data')
    assert ta.keys() == tb.keys()
    for k in ta:   # paths name the run's own folder; everything else must be the same bytes
        assert ta[k].replace(str(tmp_path / 'a').encode(), b'X') == tb[k].replace(str(tmp_path / 'b').encode(), b'X'), k
    ma, mb = [json.loads((tmp_path / d / 'reports/r/eval_metrics.json').read_text()) for d in 'ab']
    assert ma == mb

def papermill(*args, cwd):
    return subprocess.run([cli('papermill'), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)

def test_the_owners_command_runs_as_written(tmp_path):
    "`papermill nbs/20_stage2.ipynb out.ipynb -p lr 5e-5`, no kernel named; with no data here it says what is missing."
    r = papermill(ROOT / 'nbs' / '20_stage2.ipynb', 'out.ipynb', '-p', 'lr', '5e-5', cwd=tmp_path)
    assert 'No kernel name found' not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 1 and 'missing training data' in r.stderr and 'make it with' in r.stderr, r.stderr[-2000:]
    out = (tmp_path / 'out.ipynb').read_text()
    assert 'lr = 5e-05' in out and 'lr               5e-05' in out, 'the value reached the stage'

def test_gpus_0_from_papermill_means_gpu_0(tmp_path):
    "`-p gpus 0` is the integer 0 to papermill: the stage reads it as GPU 0, never as the CPU."
    r = papermill(ROOT / 'nbs' / '10_stage1.ipynb', 'out.ipynb', '-p', 'gpus', '0', cwd=tmp_path)
    assert 'gpus = 0' in (tmp_path / 'out.ipynb').read_text(), 'papermill passed an integer'
    assert "gpus             '0'" in (tmp_path / 'out.ipynb').read_text(), r.stderr[-2000:]
