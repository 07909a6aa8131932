("Two training processes on the CPU (`nproc`: torchrun, gloo): funasr's DDP path, the one the plan's `gpus 2,3` "
 "takes, with one train.log, one pointer, the same weights on every rank, and a rank killed -9 then resumed.")
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from fun_asr_8k.plan import pointer_path, stage_dir
from fun_asr_8k.stage import check_stage, run_stage
from fun_asr_8k.stage_config import StageParams
from fun_asr_8k.train import read_log

QUICK = dict(stage='stage1', batch_tokens=2000, warmup=10, lr=1e-3, dev_utts=2, log_interval=1, nproc=2)

@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    "Stage 0 of a small smoke corpus (its data/ folder)."
    from fun_asr_8k.data import prep
    from fun_asr_8k.corpus import CorpusSpec, make_corpus
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
    code = ('from fun_asr_8k.stage import run_stage; from fun_asr_8k.stage_config import StageParams; '
            f'run_stage(StageParams(**{params}))')
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


def faults(monkeypatch, *rows):
    "Rehearse the guards: the faults the training processes meet (FA8K_FAULTS, read by the worker)."
    monkeypatch.setenv('FA8K_FAULTS', json.dumps(list(rows)))

def test_a_nan_and_an_oom_on_one_rank_only_keep_the_ranks_together(data, monkeypatch):
    "Rank 1 meets a NaN loss at step 2, rank 0 runs out of memory at step 3: every rank skips the one batch and splits "
    "the other, so both finish with the same weights (each epoch's rank digests) and the counts say what happened."
    exp = exp_with(data, 'guards')
    faults(monkeypatch, dict(kind='nan', rank=1, steps=[2]), dict(kind='oom', rank=0, steps=[3]))
    r = run_stage(StageParams(exp_output=str(exp), epochs=1, **QUICK))
    assert (r['nan_skipped'], r['oom_splits']) == (1, 1), r
    assert all(len(set(l['rank_digests'])) == 1 for l in epochs(exp)), epochs(exp)
    log = read_log(stage_dir(exp, 'stage1') / 'train.log')
    assert [l['event'] for l in log if l['event'] in ('nonfinite_loss', 'oom_split')] == ['nonfinite_loss', 'oom_split']

def test_the_fallback_is_reached_through_torchrun(data, monkeypatch):
    "NaN losses on rank 1 from the first step: the ranks diverge together, torchrun exits 1 (not the worker's 3), and "
    "the stage still rolls back with the plan's fallback (lr x0.5, warm-up x2), then trains."
    exp = exp_with(data, 'fallback')
    faults(monkeypatch, dict(kind='nan', rank=1, steps=list(range(1, 100)), attempt=0))
    r = run_stage(StageParams(exp_output=str(exp), epochs=1, max_nan_in_row=2, **QUICK))
    assert [(a['rc'], a['risk'], a['lr_scale']) for a in r['attempts']] == [(1, 'diverged', 1.0), (0, None, 0.5)], r
    starts = [l for l in read_log(stage_dir(exp, 'stage1') / 'train.log') if l['event'] == 'start']
    assert [(s['lr_scale'], s['warmup_scale']) for s in starts] == [(1.0, 1.0), (0.5, 2.0)], starts

def test_overfitting_gets_the_plans_response_then_early_stopping_ends_the_stage(data, monkeypatch):
    "With patience 1, a dev loss that stops falling (a rehearsed plateau at epoch 2) first gets the plan's response "
    "to overfitting (back to the best epoch, lr x0.5, accumulation x2); a second plateau (epoch 3) stops the stage, "
    "which chooses among the epochs it saved; a rerun trains nothing more."
    exp = exp_with(data, 'early')
    p = dict(exp_output=str(exp), epochs=5, early_stopping=1, **dict(QUICK, nproc=1))
    faults(monkeypatch, dict(kind='stall', steps=[2], attempt=0), dict(kind='stall', steps=[3], attempt=1))
    r = run_stage(StageParams(**p))
    assert [(a['risk'], a['lr_scale'], a['accum_grad']) for a in r['attempts']] == [('overfitting', 1.0, 1),
                                                                                  (None, 0.5, 2)], r['attempts']
    assert [e['epoch'] for e in r['epochs']] == [1, 2, 3], r['epochs']
    log = read_log(stage_dir(exp, 'stage1') / 'train.log')
    stop = [l for l in log if l['event'] == 'early_stop']
    assert len(stop) == 1 and stop[0]['last_epoch'] == 3 and stop[0]['since'] >= 1, stop
    assert [l['epoch'] for l in log if l['event'] == 'start'] == [0, 1], 'the response resumed from the best epoch'
    pointer_path(exp, 'stage1').unlink()   # as if killed before the pointer: the rerun must not train on
    monkeypatch.delenv('FA8K_FAULTS')
    run_stage(StageParams(**p))
    log = read_log(stage_dir(exp, 'stage1') / 'train.log')
    assert len([l for l in log if l['event'] == 'epoch']) == 4 and log[-1]['event'] != 'epoch'
    assert [l for l in log if l['event'] == 'start'][-1]['stopped_early']

def test_a_kill_inside_an_epoch_resumes_at_its_last_step(data, monkeypatch):
    "A checkpoint every 2 steps; the process killed at step 5: the rerun resumes at step 4 (funasr's start_step), "
    "trains the epoch's other batches once, and the stage chooses among whole epochs."
    exp = exp_with(data, 'midepoch')
    p = dict(exp_output=str(exp), epochs=1, save_every=2, **dict(QUICK, nproc=1))
    faults(monkeypatch, dict(kind='kill', rank=0, steps=[5]))
    with pytest.raises(RuntimeError, match='training failed'): run_stage(StageParams(**p))
    monkeypatch.delenv('FA8K_FAULTS')
    r = run_stage(StageParams(**p))
    log = read_log(stage_dir(exp, 'stage1') / 'train.log')
    start = [l for l in log if l['event'] == 'start'][-1]
    assert (start['epoch'], start['step']) == (0, 4), start
    steps = [l['step'] for l in log if l['event'] == 'step']
    assert steps == sorted(set(steps)) and steps[:5] == [1, 2, 3, 4, 5], steps   # after the resume: 5, 6, ...
    e = r['epochs'][-1]
    assert (e['steps'], e['resumed_at'], e['passes']) == (e['one_pass'], 4, 1), e
    assert not list(stage_dir(exp, 'stage1').glob('model.pt.ep1.*')), 'no step checkpoint left once a later one saved'

def test_a_node_other_than_0_trains_waits_and_writes_nothing(data, monkeypatch):
    "Node 1 of 2 (simulated: node 0 is a thread writing what node 0 writes, the training a no-op): it trains with node "
    "0's configuration, waits for node 0's pointer, hands on node 0's report and writes no file of its own."
    import threading
    import fun_asr_8k.stage as stage
    exp = exp_with(data, 'nodes')
    p = StageParams(exp_output=str(exp), epochs=1, nnodes=2, node_rank=1, rdzv_endpoint='node0:29400',
                    **dict(QUICK, nproc=1))
    out, trained = stage_dir(exp, 'stage1'), []
    monkeypatch.setattr(stage, 'WAIT_EVERY', 0.05)
    monkeypatch.setattr(stage, '_train', lambda p, cfg, out: trained.append(cfg['train_data_set_list']) or 0)
    def node0():
        time.sleep(0.3)
        out.mkdir(parents=True)
        (out / 'stage_config.yaml').write_text(f'train_data_set_list: {out}/train_mixed.jsonl\n')
        time.sleep(0.3)
        (out / 'stage_report.json').write_text(json.dumps(dict(stage='stage1', by='node 0')))
        pointer_path(exp, 'stage1').write_text(f'{out}/model.pt.avg\n')
    written = threading.Thread(target=node0); written.start()
    report = run_stage(p)
    written.join()
    assert report == dict(stage='stage1', by='node 0') and trained == [f'{out}/train_mixed.jsonl'], (report, trained)
    assert sorted(f.name for f in out.iterdir()) == ['stage_config.yaml', 'stage_report.json'], list(out.iterdir())

def test_a_stage_its_disk_cannot_hold_refuses_to_start(data, monkeypatch):
    "Free space below what the stage's epochs, funasr's latest and the average need: refused before training, naming "
    "both."
    import shutil as sh
    import fun_asr_8k.stage as stage
    exp = exp_with(data, 'disk')
    monkeypatch.setattr(stage.shutil, 'disk_usage', lambda path: sh._ntuple_diskusage(10 ** 12, 10 ** 12, 2 ** 20))
    with pytest.raises(stage.InsufficientDisk, match=r'needs [0-9.]+ GB more in .*, 0\.0 GB free \(2 epochs'):
        run_stage(StageParams(exp_output=str(exp), epochs=2, **QUICK))
    assert not (stage_dir(exp, 'stage1') / 'train.log').exists(), 'nothing trained'

def test_each_part_of_a_stage_computes_on_the_gpus_it_is_given(monkeypatch):
    "gpus='2,3' on a node whose scheduler gave this process CUDA_VISIBLE_DEVICES=4,5,6,7: training on physical 6 "
    "and 7, choosing the checkpoint and evaluating on this process's cuda:2 (its 6), never on someone's GPU 0 (mocked)."
    import fun_asr_8k.checkpoints as checkpoints, fun_asr_8k.stage as stage
    from fun_asr_8k.experiment import notebook_runs
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '4,5,6,7')
    p = StageParams(gpus='2,3', stage='stage1')
    assert stage.launch_command(p, Path('c.yaml'))[1]['CUDA_VISIBLE_DEVICES'] == '6,7'
    built = []
    monkeypatch.setattr(checkpoints, 'load_model', lambda *a, **k: built.append(k['device']))
    checkpoints.stage_model(p, dict(init_param='x', llm_conf=dict(llm_dtype='bf16')))
    assert built == ['cuda:2'], built
    runs = notebook_runs(4, 'full', 'exp_output', Path('r'), gpus='2,3')
    assert runs[0][2]['device'] == 'cuda:2', runs
