"The smoke corpus, Step 0 and Stage 0 as a user runs them: planted faults, bad input, determinism, kill -9 and resume."
import json, os, random, signal, subprocess, time
from pathlib import Path
import pytest
from conftest import cli, journaled, resumed, tree_bytes, written_wavs

SIZES = ['--general_train', '24', '--general_dev', '8', '--general_test', '8', '--tel_train', '30', '--tel_dev', '12',
         '--tel_test', '8']
KIND_TO_REASON = {'annotation_error': 'annotation_error', 'annotation_error_inside': 'annotation_error',
                  'empty': 'empty', 'missing': 'missing', 'unreadable': 'unreadable', 'wrong_rate': 'wrong_rate',
                  'broken_json': 'bad_line'}

def run(*args, check=True):
    r = subprocess.run([cli(args[0]), *map(str, args[1:])], capture_output=True, text=True)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r

@pytest.fixture(scope='module')
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp('corpus')
    run('fa8k-make-corpus', d, *SIZES)
    return d

def test_corpus_is_deterministic_and_described(corpus, tmp_path):
    info = json.loads((corpus / 'corpus.json').read_text())
    assert info['manifests']['telephone/audio_neutral.jsonl'] == 30 and len(info['faults']) == 11 + 4
    assert (corpus / 'telephone' / 'keywords.txt').read_text().split()[:3] == ['套餐', '流量', '宽带']
    prov = [json.loads(l) for l in open(corpus / 'provenance.jsonl')]
    assert len(prov) == 24 + 8 + 8 + 30 + 12 + 8 and all({'voice', 'pitch', 'wpm', 'text'} <= set(p) for p in prov)
    train_voices = {p['voice'] for p in prov if p['manifest'] in ('train_M', 'audio_neutral')}
    test_voices = {p['voice'] for p in prov if p['manifest'] in ('test', 'test_net')}
    assert not train_voices & test_voices, 'test speakers must be held out'
    again = tmp_path / 'again'
    run('fa8k-make-corpus', again, *SIZES)
    a, b = tree_bytes(corpus), tree_bytes(again)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a if k.endswith('.wav'))
    assert (a['general/train_M.jsonl'].decode().replace(str(corpus), 'X')
            == b['general/train_M.jsonl'].decode().replace(str(again), 'X'))

def test_step0(corpus, tmp_path):
    r = run('fa8k-check-data', '--general', corpus / 'general', '--telephone', corpus / 'telephone')
    assert r.stdout.count('PASS') == 5 and 'Step 0 passed' in r.stdout
    r = run('fa8k-check-data', '--general', corpus / 'general', '--telephone', tmp_path / 'nope', check=False)
    assert r.returncode == 1 and 'FAIL  telephone set readable' in r.stdout and str(tmp_path / 'nope') in r.stdout

def test_stage0_names_every_planted_fault(corpus, tmp_path):
    r = run('fa8k-prep', '--general', corpus / 'general', '--telephone', corpus / 'telephone',
            '--out', tmp_path / 'strict', '--quiet', check=False)
    assert r.returncode == 2 and 'audio_neutral.jsonl:' in r.stderr and 'broken JSON' in r.stderr
    run('fa8k-prep', '--general', corpus / 'general', '--telephone', corpus / 'telephone',
        '--out', tmp_path / 'exp', '--skip_bad', '--quiet', '--plain')
    info = json.loads((corpus / 'corpus.json').read_text())
    rep = json.loads((tmp_path / 'exp/data/real_8k_telephone/report.json').read_text())
    for split, manifest in (('train', 'audio_neutral'), ('dev', 'audio_quiet')):
        planted = sorted((f['line'], KIND_TO_REASON[f['kind']]) for f in info['faults'] if f['manifest'] == manifest)
        assert sorted((d['line'], d['reason']) for d in rep[split]['dropped']) == planted
        lines = (tmp_path / f'exp/data/real_8k_telephone/{split}_formatted.jsonl').read_text().splitlines()
        assert len(lines) == rep[split]['n_kept'] == rep[split]['n_lines'] - len(planted)
        assert '<ANNOTATION_ERROR>' not in ''.join(lines)
        # --plain
        assert len((tmp_path / f'exp/data/real_8k_telephone/{split}.jsonl').read_text().splitlines()) == len(lines)
    sim = json.loads((tmp_path / 'exp/data/simulated_8k_telephone/report.json').read_text())
    assert sim['train']['n_kept'] == 24 and sim['dev']['n_kept'] == 8
    line = json.loads((tmp_path / 'exp/data/simulated_8k_telephone/train_formatted.jsonl').read_text().splitlines()[0])
    assert line['messages'][1]['content'].startswith('语音转写：<|startofspeech|>!/') and line['speech_length'] > 0

def test_stage0_kill9_and_resume_gives_same_bytes(corpus, tmp_path):
    ("Kill -9 four times, the last when about two thirds of the utterances are journaled, then finish: the rerun "
     "does only what was left, and the bytes are those of a run never killed.")
    args = ['--general', corpus / 'general', '--telephone', corpus / 'telephone', '--skip_bad', '--quiet',
            '--workers', '2']
    run('fa8k-prep', *args, '--out', tmp_path / 'ref')
    total = sum(map(len, journaled(tmp_path / 'ref').values()))
    out, rng, kills = tmp_path / 'killed', random.Random(1), 0
    # in start-up, then with a fifth, two fifths and two thirds of the utterances journaled (in every set's turn)
    for target in (0, total // 5, 2 * total // 5, 2 * total // 3):
        p = subprocess.Popen([cli('fa8k-prep'), *map(str, args), '--out', str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 120 and sum(map(len, journaled(out).values())) < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL); p.wait(); kills += 1
    assert kills == 4, f'only {kills} kills landed before the run finished'
    before = journaled(out)
    wavs = written_wavs(before)
    run('fa8k-prep', *args, '--out', out)
    resumed(out, before, wavs, total)   # the rerun did only what was left
    a, b = tree_bytes(tmp_path / 'ref'), tree_bytes(out)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].replace(str(tmp_path / 'ref').encode(), b'X') == b[k].replace(str(out).encode(), b'X'), k

def test_kaldi_input(corpus, tmp_path):
    kal = tmp_path / 'kaldi'
    for name in ('train_M', 'eval_dev'):
        lines = [json.loads(l) for l in open(corpus / 'general' / f'{name}.jsonl')]
        (kal / name).mkdir(parents=True)
        (kal / name / 'wav.scp').write_text(''.join(f"{l['key']} {l['source']}\n" for l in lines))
        (kal / name / 'text').write_text(''.join(f"{l['key']} {l['target']}\n" for l in lines))
    run('fa8k-prep', '--general', kal, '--telephone', corpus / 'telephone', '--out', tmp_path / 'exp', '--skip_bad',
        '--quiet')
    assert len((tmp_path / 'exp/data/simulated_8k_telephone/train_formatted.jsonl').read_text().splitlines()) == 24

def test_a_failed_step0_stops_fa8k_run_before_stage0_writes(corpus, tmp_path):
    "The plan's gate: Step 0 on 10 samples runs before Stage 0's hours, and its failure stops the run, named."
    import shutil
    from fun_asr_8k.plan import RELEASED_TINY
    broken = tmp_path / 'corpus'
    shutil.copytree(corpus, broken)
    neutral = broken / 'telephone' / 'audio_neutral.jsonl'
    lines = [json.loads(l) for l in neutral.read_text().splitlines()[:12] if l.startswith('{')]
    # every call line's audio gone: nothing of the telephone set can be read
    neutral.write_text(''.join(json.dumps(dict(d, source=f"gone/{d['key']}.wav"), ensure_ascii=False) + '\n'
                               for d in lines))
    r = subprocess.run([cli('fa8k-run'), '0', '0', '--scale', 'full', '--model_dir', RELEASED_TINY, '--general_dir',
                        broken / 'general', '--telephone_dir', broken / 'telephone', '--run_id', 's0'],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'Step 0 failed' in r.stderr and 'telephone set readable' in r.stderr, r.stderr[-3000:]
    written = [p for p in (tmp_path / 'exp_output').rglob('*') if p.is_file()]
    assert not written, f'Stage 0 wrote {written[:5]} after Step 0 failed'
