"Concurrent runs, shards, full disks, killed workers, corrupt audio, bad settings: right outputs or a clear refusal."
import json, os, signal, subprocess, time
from pathlib import Path
import numpy as np
import pytest
import soundfile as sf
from conftest import cli, journaled, resumed, tree_bytes, written_wavs
from fun_asr_8k.data import prep
from fun_asr_8k.store import NothingKept, unwritable_folder

def run(*args, check=True, env=None):
    r = subprocess.run([cli(args[0]), *map(str, args[1:])], capture_output=True, text=True, env=env)
    if check: assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r

def start(*args):
    return subprocess.Popen([cli(args[0]), *map(str, args[1:])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)

def many(speech_manifest: Path, n: int, path: Path) -> Path:
    "A manifest of `n` lines naming the 24 test utterances under distinct keys (sources absolute)."
    base = [json.loads(l) for l in speech_manifest.read_text().splitlines()]
    with open(path, 'w', encoding='utf-8') as f:
        for i in range(n):
            b = base[i % len(base)]
            f.write(json.dumps(dict(b, key=f'u{i:04d}', source=str(speech_manifest.parent / b['source'])),
                               ensure_ascii=False) + '\n')
    return path

def masked(tree: dict, folder: Path) -> dict:
    return {k: v.replace(str(folder).encode(), b'X') for k, v in tree.items()}

def journal_lines(folder: Path) -> list[int]:
    return [json.loads(l)['line'] for j in sorted((folder / '.journal').glob('journal-*.jsonl')) for l in open(j)]

def test_two_runs_on_one_folder_refuse_or_agree(speech_manifest, tmp_path):
    m = many(speech_manifest, 240, tmp_path / 'big.jsonl')
    run('fa8k-simulate', m, tmp_path / 'ref', '--quiet')
    a, b = (start('fa8k-simulate', m, tmp_path / 'C', '--quiet') for _ in range(2))
    outs = [p.communicate(timeout=600) + (p.returncode,) for p in (a, b)]
    codes = sorted(o[2] for o in outs)
    assert codes in ([0, 0], [0, 1]), outs
    if codes == [0, 1]:
        refused = next(o for o in outs if o[2] == 1)
        assert 'is being run by pid' in refused[1] and 'Traceback' not in refused[1], refused[1]
    assert sorted(journal_lines(tmp_path / 'C')) == list(range(1, 241))   # each line once
    assert masked(tree_bytes(tmp_path / 'C'), tmp_path / 'C') == masked(tree_bytes(tmp_path / 'ref'), tmp_path / 'ref')

def test_shards_that_finish_together_write_the_outputs(speech_manifest, tmp_path):
    m = many(speech_manifest, 120, tmp_path / 'm.jsonl')
    run('fa8k-simulate', m, tmp_path / 'ref', '--quiet')
    procs = [start('fa8k-simulate', m, tmp_path / 'S', '--shard', f'{i}/2', '--quiet') for i in range(2)]
    for p in procs: assert p.wait(timeout=600) == 0, p.stderr.read()
    report = json.loads((tmp_path / 'S' / 'report.json').read_text())
    assert report['n_written'] == 120 and len((tmp_path / 'S' / 'manifest.jsonl').read_text().splitlines()) == 120
    assert masked(tree_bytes(tmp_path / 'S'), tmp_path / 'S') == masked(tree_bytes(tmp_path / 'ref'), tmp_path / 'ref')

def test_a_killed_worker_stops_the_run_and_the_rerun_finishes(speech_manifest, tmp_path):
    m = many(speech_manifest, 3000, tmp_path / 'm.jsonl')
    p = start('fa8k-simulate', m, tmp_path / 'K', '--workers', '2', '--quiet', '--snr_db', 'off')
    victim, t0 = None, time.time()
    while victim is None and time.time() - t0 < 120 and p.poll() is None:
        ps = subprocess.run(['ps', '-ww', '-eo', 'pid,ppid,args'], capture_output=True, text=True).stdout.splitlines()
        kids = [int(l.split()[0]) for l in ps[1:] if int(l.split()[1]) == p.pid and 'spawn_main' in l]
        n_journaled = sum(1 for _ in open(tmp_path / 'K/.journal/journal-0-of-1.jsonl')) if (
            tmp_path / 'K/.journal/journal-0-of-1.jsonl').exists() else 0
        if kids and n_journaled > 50: victim = kids[0]
        else: time.sleep(0.05)
    assert victim, 'no worker to kill: the run ended first'
    os.kill(victim, signal.SIGKILL)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1 and 'a worker process died' in err and 'Traceback' not in err, err
    assert not (tmp_path / 'K' / 'report.json').exists()
    skipped = [json.loads(l) for l in open(tmp_path / 'K/.journal/journal-0-of-1.jsonl') if '"skipped"' in l]
    assert not skipped, 'a killed worker must not be recorded as a fault of the data'
    before = journaled(tmp_path / 'K')
    wavs = written_wavs(before)
    run('fa8k-simulate', m, tmp_path / 'K', '--workers', '2', '--quiet', '--snr_db', 'off')
    assert json.loads((tmp_path / 'K' / 'report.json').read_text())['n_written'] == 3000
    resumed(tmp_path / 'K', before, wavs, 3000)   # the rerun did only what was left

@pytest.fixture
def tmpfs(tmp_path):
    "A 3 MB tmpfs at tmp_path/fs (root and a mount namespace that allows it; else the test is skipped)."
    d = tmp_path / 'fs'; d.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(d)], capture_output=True, text=True)
    if r.returncode: pytest.skip(f'cannot mount a tmpfs here ({r.stderr.strip()})')
    yield d
    subprocess.run(['umount', '-l', str(d)])

def test_a_full_disk_stops_the_run_and_the_rerun_finishes(speech_manifest, tmp_path, tmpfs):
    m = many(speech_manifest, 48, tmp_path / 'm.jsonl')
    r = run('fa8k-simulate', m, tmpfs / 'out', '--quiet', check=False)
    assert r.returncode == 1 and 'No space left on device' in r.stderr and 'fault of the machine' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and str(tmpfs / 'out') in r.stderr
    before = journaled(tmpfs / 'out')
    wavs = written_wavs(before)
    subprocess.run(['mount', '-o', 'remount,size=64m', str(tmpfs)], check=True)
    r = run('fa8k-simulate', m, tmpfs / 'out', '--quiet')
    report = json.loads((tmpfs / 'out' / 'report.json').read_text())
    assert (report['n_written'], report['n_skipped']) == (48, 0), report['skipped_by_reason']
    resumed(tmpfs / 'out', before, wavs, 48)   # what fitted on the disk was kept

def test_setting_errors_come_first_and_leave_nothing(speech_manifest, tmp_path):
    one = tmp_path / 'one.jsonl'
    one.write_text(many(speech_manifest, 1, tmp_path / 'x.jsonl').read_text())
    for args, says in ((['--pool_size', '0'], 'pool_size 0'), (['--bandpass_hz', '3400,300'], '0 < LO < HI'),
                       ([], 'babble needs at least 2 readable utterances')):
        r = run('fa8k-simulate', one, tmp_path / 'out', '--quiet', *args, check=False)
        assert r.returncode == 2 and says in r.stderr and 'Traceback' not in r.stderr, r.stderr
        assert not (tmp_path / 'out').exists(), args
    run('fa8k-simulate', one, tmp_path / 'out', '--quiet', '--snr_db', 'off')   # the corrected run is not refused
    (tmp_path / 'empty.jsonl').write_text('')
    r = run('fa8k-simulate', tmp_path / 'empty.jsonl', tmp_path / 'e', '--quiet', check=False)
    assert r.returncode == 2 and 'no utterances' in r.stderr

def corrupt_files(d: Path, x: np.ndarray, sr: int) -> dict[str, Path]:
    "One file of each kind of corrupt audio at `sr`: NaN, Inf, cut short, silent."
    d.mkdir(parents=True, exist_ok=True)
    y = x[::2] if sr == 8000 else x
    out = {}
    for kind, bad in (('nan', np.nan), ('inf', np.inf)):
        z = y.copy(); z[len(z) // 2] = bad
        sf.write(d / f'{kind}.wav', z, sr, subtype='FLOAT'); out[kind] = d / f'{kind}.wav'
    sf.write(d / 'full.wav', y, sr, subtype='PCM_16')
    (d / 'cut.wav').write_bytes((d / 'full.wav').read_bytes()[:44 + len(y) // 3 * 2]); out['cut'] = d / 'cut.wav'
    sf.write(d / 'silent.wav', np.zeros(len(y)), sr, subtype='PCM_16'); out['silent'] = d / 'silent.wav'
    return out

EXPECT = {'nan': 'non_finite', 'inf': 'non_finite', 'cut': 'truncated', 'silent': 'silent', 'nul': 'bad_line',
          'punct': 'empty'}

def test_corrupt_audio_is_named_in_every_stage0_set(speech_manifest, tmp_path):
    base = [json.loads(l) for l in speech_manifest.read_text().splitlines()]
    x, _ = sf.read(speech_manifest.parent / base[0]['source'], dtype='float32')
    for folder, names, sr in (('general', ('train_M', 'eval_dev'), 16000),
                              ('telephone', ('audio_neutral', 'audio_quiet'), 8000)):
        bad = corrupt_files(tmp_path / folder / 'bad', x, sr)
        for name in names:
            good = []
            for i, b in enumerate(base[:6]):
                src = speech_manifest.parent / b['source']
                if sr == 8000:
                    sf.write(tmp_path / folder / f'g{i}.wav', sf.read(src)[0][::2], 8000)
                    src = tmp_path / folder / f'g{i}.wav'
                good.append(dict(key=f'{name}_g{i}', source=str(src), target=b['target']))
            lines = [json.dumps(g, ensure_ascii=False) for g in good]
            lines += [json.dumps(dict(key=f'{name}_{k}', source=str(p), target='你好'), ensure_ascii=False)
                      for k, p in bad.items()]
            lines += [json.dumps(dict(key=f'{name}_nul', source=str(bad['nan']) + '\u0000', target='你好')),
                      json.dumps(dict(key=f'{name}_punct', source=good[0]['source'], target='。。，，！？……'),
                                 ensure_ascii=False)]
            (tmp_path / folder / f'{name}.jsonl').write_text('\n'.join(lines) + '\n')
    run('fa8k-prep', '--general', tmp_path / 'general', '--telephone', tmp_path / 'telephone', '--out',
        tmp_path / 'exp', '--skip_bad', '--quiet')
    for data_set in ('simulated_8k_telephone', 'real_8k_telephone', 'clean_16k'):
        report = json.loads((tmp_path / 'exp/data' / data_set / 'report.json').read_text())
        for split, r in report.items():
            got = {d['key'].rsplit('_', 1)[-1] if d['key'] else 'nul': d['reason'] for d in r['dropped']}
            assert got == EXPECT, (data_set, split, got)
            assert r['n_kept'] == 6, (data_set, split)

def test_make_corpus_refuses_another_corpus_and_small_counts(tmp_path):
    sizes = ['--general_train', '4', '--general_dev', '2', '--general_test', '2', '--tel_train', '12', '--tel_dev', '5',
             '--tel_test', '2']
    run('fa8k-make-corpus', tmp_path / 'c', *sizes)
    r = run('fa8k-make-corpus', tmp_path / 'c', *sizes, '--seed', '1', check=False)
    assert r.returncode == 2 and 'other settings (seed 0 -> 1)' in r.stderr, r.stderr
    r = run('fa8k-make-corpus', tmp_path / 'small', '--tel_train', '8', check=False)
    assert r.returncode == 2 and 'tel_train 8 < 12' in r.stderr and not (tmp_path / 'small').exists(), r.stderr

def test_stage0_inputs_are_found_before_anything_runs(speech_manifest, tmp_path):
    (tmp_path / 'general').mkdir()
    many(speech_manifest, 8, tmp_path / 'general' / 'train_M.jsonl')
    (tmp_path / 'telephone').mkdir()
    r = run('fa8k-prep', '--general', tmp_path / 'general', '--telephone', tmp_path / 'telephone', '--out',
            tmp_path / 'exp', '--quiet', check=False)
    assert r.returncode == 2 and 'eval_dev.jsonl' in r.stderr, r.stderr
    assert not (tmp_path / 'exp/data/simulated_8k_telephone/train').exists()

def test_a_long_key_and_a_read_only_folder(speech_manifest, tmp_path):
    m = many(speech_manifest, 3, tmp_path / 'm.jsonl')
    lines = m.read_text().splitlines()
    lines[0] = json.dumps(dict(json.loads(lines[0]), key='长' * 100), ensure_ascii=False)   # a 300-byte key
    m.write_text('\n'.join(lines) + '\n')
    run('fa8k-simulate', m, tmp_path / 'out', '--quiet', '--snr_db', 'off')
    assert json.loads((tmp_path / 'out' / 'report.json').read_text())['n_written'] == 3
    out = tmp_path / 'ro_out'
    with unwritable_folder(out / 'wav') as how:   # no one may write there, root included (CI runs as root)
        r = run('fa8k-simulate', m, out, '--quiet', '--snr_db', 'off', check=False)
        assert r.returncode == 1 and 'fault of the machine' in r.stderr and 'Traceback' not in r.stderr, (how, r.stderr)
        assert str(out / 'wav') in r.stderr, r.stderr
        assert journal_lines(out) == [], 'a folder that cannot be written is not a fault of the data'
    run('fa8k-simulate', m, out, '--quiet', '--snr_db', 'off')   # once it can be written, the rerun does it all
    assert json.loads((out / 'report.json').read_text())['n_written'] == 3

def test_step0_reads_as_stage0_and_leaves_no_temporary_folder(speech_manifest, tmp_path):
    for folder, name in (('general', 'train_M'), ('telephone', 'audio_neutral')):
        (tmp_path / folder).mkdir()
        text = many(speech_manifest, 4, tmp_path / 'x.jsonl').read_text()
        (tmp_path / folder / f'{name}.jsonl').write_bytes(text.encode('gbk'))
    tmp = tmp_path / 'tmp'; tmp.mkdir()
    r = run('fa8k-check-data', '--general', tmp_path / 'general', '--telephone', tmp_path / 'telephone', check=False,
            env=dict(os.environ, TMPDIR=str(tmp)))
    assert r.returncode == 1 and 'FAIL  general set readable' in r.stdout and 'not UTF-8' in r.stdout, r.stdout
    assert not list(tmp.iterdir()), 'Step 0 left its temporary folder'

def test_a_run_that_keeps_nothing_is_an_error_naming_the_users_manifest(speech_manifest, tmp_path):
    for folder, names in (('general', ('train_M', 'eval_dev')), ('telephone', ('audio_neutral', 'audio_quiet'))):
        (tmp_path / folder).mkdir()
        text = many(speech_manifest, 3, tmp_path / 'x.jsonl').read_text()
        for name in names: (tmp_path / folder / f'{name}.jsonl').write_bytes(text.encode('gbk'))
    gbk = tmp_path / 'general' / 'train_M.jsonl'
    r = run('fa8k-simulate', gbk, tmp_path / 'sim', '--skip_bad', '--quiet', check=False)
    assert r.returncode == 2 and f'{gbk}: none of its 3 lines kept (bad_line 3)' in r.stderr, r.stderr
    assert 'not UTF-8' in r.stderr and not (tmp_path / 'sim' / 'manifest.jsonl').exists()
    r = run('fa8k-prep', '--general', tmp_path / 'general', '--telephone', tmp_path / 'telephone', '--out',
            tmp_path / 'exp', '--skip_bad', '--quiet', check=False)
    # Step 0 stops it first, naming the user's line; the checks that needed the readable set are not run
    assert r.returncode == 2 and 'Step 0 failed' in r.stderr and f'{gbk}:1: not UTF-8' in r.stderr, r.stderr
    assert 'simulation runs: not run: general set readable failed' in r.stderr, r.stderr
    assert '0/3 read' in r.stderr and 'sample.jsonl' not in r.stderr and 'input.jsonl' not in r.stderr, r.stderr
    # Stage 0 on its own (Step 0 passed elsewhere) names the manifest that kept nothing
    with pytest.raises(NothingKept, match=f'{gbk}: none of its 3 lines kept'):
        prep(tmp_path / 'general', tmp_path / 'telephone', tmp_path / 'exp', skip_bad=True, progress=False,
             checked=True)
    assert not list((tmp_path / 'exp').rglob('*_formatted.jsonl'))
    missing = tmp_path / 'missing.jsonl'
    missing.write_text(''.join(json.dumps(dict(key=f'm{i}', source=f'/nowhere/{i}.wav', target='你好')) + '\n'
                               for i in range(3)))
    r = run('fa8k-simulate', missing, tmp_path / 'sim2', '--quiet', '--snr_db', 'off', check=False)
    assert r.returncode == 2 and 'none of its 3 lines kept (missing 3)' in r.stderr, r.stderr
    assert not (tmp_path / 'sim2' / 'manifest.jsonl').exists()
