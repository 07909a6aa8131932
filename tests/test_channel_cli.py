"fa8k-simulate as a user runs it: faults, workers, shards, and SIGKILL at random points then resume."
import json, os, random, signal, subprocess, time
from pathlib import Path
import soundfile as sf
from conftest import cli, journaled, resumed, tree_bytes, written_wavs

def simulate(*args, check=True):
    r = subprocess.run([cli('fa8k-simulate'), *map(str, args), '--quiet'], capture_output=True, text=True)
    if check: assert r.returncode == 0, r.stderr
    return r

def test_faults_are_named_and_counted(speech_manifest, tmp_path):
    m = tmp_path / 'faulty.jsonl'
    src = speech_manifest.parent
    (tmp_path / 'bad.wav').write_bytes(b'\x00' * 100)
    x, _ = sf.read(src / 'spk0_utt0.wav')
    sf.write(tmp_path / 'eight_k.wav', x[::2], 8000)
    good = [json.loads(l) for l in speech_manifest.read_text().splitlines()[:5]]
    lines = [json.dumps({**g, 'source': str(src / g['source'])}, ensure_ascii=False) for g in good]
    lines += [json.dumps({'key': 'gone', 'source': str(tmp_path / 'gone.wav')}),
              json.dumps({'key': 'bad', 'source': str(tmp_path / 'bad.wav')}),
              json.dumps({'key': 'eight', 'source': str(tmp_path / 'eight_k.wav')}),
              '{"key": "half a line"', json.dumps({'text': 'no key, no audio'})]
    m.write_text('\n'.join(lines) + '\n')
    r = simulate(m, tmp_path / 'strict', check=False)
    assert r.returncode == 2 and 'faulty.jsonl:9' in r.stderr and 'broken JSON' in r.stderr
    simulate(m, tmp_path / 'out', '--skip_bad')
    rep = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert rep['n_lines'] == 10 and rep['n_written'] == 5
    assert rep['skipped_by_reason'] == {'bad_line': 2, 'missing': 1, 'unreadable': 1, 'wrong_rate': 1}
    assert {s['key']: s['reason'] for s in rep['skipped']} == {'gone': 'missing', 'bad': 'unreadable',
                                                               'eight': 'wrong_rate'}
    assert 'eight_k.wav' in [s for s in rep['skipped'] if s['key'] == 'eight'][0]['detail']
    out = [json.loads(l) for l in (tmp_path / 'out' / 'manifest.jsonl').read_text().splitlines()]
    assert [o['key'] for o in out] == [g['key'] for g in good]
    for o in out:
        y, sr = sf.read(o['source'])
        assert sr == 16000 and len(y) == sf.info(o['channel']['input']).frames
        assert {'preset', 'codec', 'snr_db', 'frame_loss', 'seed'} <= set(o['channel'])

def test_same_bytes_for_any_workers_and_shards(speech_manifest, tmp_path):
    simulate(speech_manifest, tmp_path / 'one', '--preset', 'realistic', '--seed', 3)
    simulate(speech_manifest, tmp_path / 'two', '--preset', 'realistic', '--seed', 3, '--workers', 2)
    for i in range(3):
        simulate(speech_manifest, tmp_path / 'shards', '--preset', 'realistic', '--seed', 3, '--shard', f'{i}/3')
    one = tree_bytes(tmp_path / 'one')
    assert len([k for k in one if k.endswith('.wav')]) == 24
    for other in ('two', 'shards'):
        got = tree_bytes(tmp_path / other)
        assert got.keys() == one.keys()
        assert ({k: v for k, v in got.items() if k.endswith('.wav')}
                == {k: v for k, v in one.items() if k.endswith('.wav')})
        # paths differ with the folder; everything else is equal
        for k in ('manifest.jsonl', 'report.json'):
            assert (got[k].decode().replace(str(tmp_path / other), 'X')
                    == one[k].decode().replace(str(tmp_path / 'one'), 'X'))
    other_seed = tmp_path / 'seed4'
    simulate(speech_manifest, other_seed, '--preset', 'realistic', '--seed', 4)
    assert (tree_bytes(other_seed)[next(k for k in one if k.endswith('.wav'))]
            != one[next(k for k in one if k.endswith('.wav'))])

def journal_lines(out: Path) -> int:
    return sum(open(j, 'rb').read().count(b'\n') for j in (out / '.journal').glob('journal-*.jsonl'))

def test_sigkill_anywhere_then_resume(speech_manifest, tmp_path):
    ("Kill -9 at random points (start-up, mid-utterance, mid-journal) several times, then finish: same bytes, "
     "nothing twice, nothing finished before the last kill done again.")
    ref = tmp_path / 'ref'
    simulate(speech_manifest, ref, '--preset', 'realistic')
    out, rng, kills = tmp_path / 'killed', random.Random(0), 0
    for target in (0, 3, 7, 12, 18):
        p = subprocess.Popen([cli('fa8k-simulate'), str(speech_manifest), str(out), '--preset', 'realistic', '--quiet'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 60:
            if (out / '.journal').exists() and journal_lines(out) >= target: break
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL); p.wait(); kills += 1
    assert kills >= 4, f'only {kills} kills landed before the run finished'
    before = journaled(out)
    wavs = written_wavs(before)
    simulate(speech_manifest, out, '--preset', 'realistic')
    resumed(out, before, wavs, 24)   # the rerun did only what was left
    a, b = tree_bytes(ref), tree_bytes(out)
    assert a.keys() == b.keys(), 'leftover or missing files'
    assert all(a[k] == b[k] for k in a if k.endswith('.wav'))
    for k in ('manifest.jsonl', 'report.json'):
        assert a[k].decode().replace(str(ref), 'X') == b[k].decode().replace(str(out), 'X')

def test_settings_change_refused_and_cli_overrides(speech_manifest, tmp_path):
    simulate(speech_manifest, tmp_path / 'o', '--codecs', 'gsm-fr:1,amr-nb-12.2k:1', '--snr_db', 'off',
             '--loss_rate', '0.5')
    rep = json.loads((tmp_path / 'o' / 'report.json').read_text())
    assert (set(rep['codecs']) <= {'gsm-fr', 'amr-nb-12.2k'} and rep['snr_db'] is None
            and rep['config']['preset'] == 'plan+custom')
    assert 0.3 < rep['frame_loss']['mean'] < 0.7
    r = simulate(speech_manifest, tmp_path / 'o', check=False)
    assert r.returncode == 2 and 'other settings' in r.stderr
    r = simulate(speech_manifest, tmp_path / 'p', '--codecs', 'mp3', check=False)
    assert r.returncode == 2 and 'unknown codec' in r.stderr
