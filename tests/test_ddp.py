("Two training processes on the CPU (`nproc`: torchrun, gloo): funasr's DDP path, the one the plan's `gpus 2,3` "
 "takes, with one train.log, one pointer, the same weights on every rank, and a rank killed -9 then resumed.")
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from fun_asr_8k.plan import pointer_path, stage_dir
from fun_asr_8k.train import StageParams, check_stage, read_log, run_stage

QUICK = dict(stage='stage1', batch_tokens=2000, warmup=10, lr=1e-3, dev_utts=2, log_interval=1, nproc=2)

@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    "Stage 0 of a small smoke corpus (its data/ folder)."
    from fun_asr_8k.data import CorpusSpec, make_corpus, prep
    d = tmp_path_factory.mktemp('ddp')
    make_corpus(d / 'corpus', CorpusSpec(24, 6, 6, 24, 8, 6), progress=False)
    prep(d / 'corpus' / 'general', d / 'corpus' / 'telephone', d / 'exp_output', skip_bad=True, progress=False)
    return d / 'exp_output' / 'data'

def exp_with(data: Path, name: str) -> Path:
    "An exp_output of its own that shares Stage 0's data."
    exp = data.parent.parent / name
    exp.mkdir()
    (exp / 'data').symlink_to(data)
    return exp

def epochs(exp: Path) -> list[dict]:
    return [l for l in read_log(stage_dir(exp, 'stage1') / 'train.log') if l['event'] == 'epoch']

def test_two_processes_train_one_model(data):
    exp = exp_with(data, 'two')
    r = run_stage(StageParams(exp_output=str(exp), epochs=2, **QUICK))
    ep = epochs(exp)
    assert [l['epoch'] for l in ep] == [1, 2], 'one train.log: each epoch once, from rank 0'
    assert all(len(l['rank_digests']) == 2 and len(set(l['rank_digests'])) == 1 for l in ep), ep
    assert r['world_size'] == 2 and r['trainable'] < r['total']
    assert pointer_path(exp, 'stage1').read_text().strip() == r['checkpoint']
    assert check_stage(r, effect=False, learned=False)['changed'] == ['audio_encoder']
    funasr_log = (stage_dir(exp, 'stage1') / 'funasr.log').read_text()
    assert 'use_ddp: True' in funasr_log, 'funasr took its DDP path'

def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor: return True
        pid = int(next(l for l in open(f'/proc/{pid}/status') if l.startswith('PPid:')).split()[1])
    return False

def rank_pid(ancestor: int, rank: int) -> int | None:
    "The pid of the training process of `rank` that `ancestor` started (through run_stage and torchrun)."
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try:
            env = (d / 'environ').read_bytes().split(b'\0')
            if f'LOCAL_RANK={rank}'.encode() in env and b'fa8k-train-worker' in (d / 'cmdline').read_bytes() \
                    and descends_from(int(d.name), ancestor):
                return int(d.name)
        except (OSError, StopIteration, ValueError): continue
    return None

def test_a_killed_rank_stops_the_stage_and_the_rerun_resumes(data):
    exp = exp_with(data, 'killed')
    params = json.dumps(dict(exp_output=str(exp), epochs=8, **QUICK))
    code = f'from fun_asr_8k.train import *; run_stage(StageParams(**{params}))'
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    t0, victim = time.time(), None
    while p.poll() is None and time.time() - t0 < 300:
        if epochs(exp) and (victim := rank_pid(p.pid, 1)): break
        time.sleep(0.05)
    assert victim, 'the stage ended before rank 1 could be killed'
    os.kill(victim, signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    assert p.returncode != 0 and 'training failed' in err, err[-2000:]
    assert not pointer_path(exp, 'stage1').exists(), 'a failed stage leaves no pointer'
    done = len(epochs(exp))
    r = run_stage(StageParams(exp_output=str(exp), epochs=8, **QUICK))
    log = read_log(stage_dir(exp, 'stage1') / 'train.log')
    starts = [l['epoch'] for l in log if l['event'] == 'start']
    assert starts[0] == 0 and starts[-1] == done >= 1, (starts, done)   # resumed after the last finished epoch
    assert sorted({l['epoch'] for l in epochs(exp)}) == list(range(1, 9))
    assert all(len(set(l['rank_digests'])) == 1 for l in epochs(exp))
    assert pointer_path(exp, 'stage1').read_text().strip() == r['checkpoint']
    assert not list(stage_dir(exp, 'stage1').glob('*.tmp-*')), 'no torn checkpoint left behind'
