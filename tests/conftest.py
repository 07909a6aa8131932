"""Shared fixtures: a small synthetic Mandarin manifest (espeak-ng), made once per test session; the smoke experiment,
started with the first test and run beside the others; helpers of the kill-and-resume tests."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
# console scripts of the venv running pytest
BIN = Path(sys.executable).parent

SENTENCES = ['您好，我想办理一个流量套餐。', '请问宽带什么时候到期？', '我的话费怎么这么多？', '帮我退订这个业务。',
             '营业厅几点关门？', '今天天气不错。']

def cli(name: str) -> str:
    "Path of one of the package's console scripts."
    p = BIN / name
    assert p.exists(), f'{p} is missing: pip install -e . (./run setup) registers it'
    return str(p)

@pytest.fixture(scope='session')
def speech_manifest(tmp_path_factory) -> Path:
    "A 24-line FunASR jsonl manifest of 16 kHz espeak-ng Mandarin (6 sentences x 4 voices)."
    from fun_asr_8k.channel import speak
    d = tmp_path_factory.mktemp('speech')
    lines = []
    for v, (voice, pitch) in enumerate([('m3', 45), ('f2', 70), ('m1', 35), ('f4', 80)]):
        for i, text in enumerate(SENTENCES):
            key = f'spk{v}_utt{i}'
            sf.write(d / f'{key}.wav', speak(text, voice, pitch, 175), 16000)
            lines.append(json.dumps({'key': key, 'source': f'{key}.wav', 'target': text}, ensure_ascii=False))
    (d / 'manifest.jsonl').write_text('\n'.join(lines) + '\n')
    return d / 'manifest.jsonl'

def journaled(folder: Path) -> dict[Path, list[bytes]]:
    "The finished records of every journal under `folder` (a run's, or Stage 0's, one a split), each line's bytes."
    return {j: [l for l in j.read_bytes().splitlines(keepends=True) if l.endswith(b'\n')]   # a torn last line left out
            for j in sorted(folder.rglob('journal-*.jsonl')) if j.parent.name == '.journal'}

def written_wavs(journals: dict) -> dict[Path, tuple[int, int]]:
    "Inode and modification time of the wav of each item `journals` record as written."
    from fun_asr_8k.manifest import output_wav_path
    wavs = [output_wav_path(j.parent.parent, r['key']) for j, lines in journals.items() for r in map(json.loads, lines)
            if r['status'] == 'ok']
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in wavs}

def resumed(folder: Path, before: dict, wavs_before: dict, total: int) -> int:
    """After the rerun of a run killed in `folder`, that it did only what was left: it kept the records journaled
    before it (`before`) and the wavs they name (`wavs_before`), and journaled each other item once, `total` in all.
    The number of items it did (the lines it appended): `total` less those done before, fewer than `total`."""
    n_before, after = sum(map(len, before.values())), journaled(folder)
    assert 0 < n_before < total, f'{n_before} of {total} done before the rerun: the test left nothing to resume'
    for j, lines in before.items():
        assert after.get(j, [])[:len(lines)] == lines, f'{j}: the rerun did not keep the records journaled before it'
    for d in {j.parent for j in after}:
        lines = [json.loads(l)['line'] for j in after if j.parent == d for l in after[j]]
        assert len(lines) == len(set(lines)), f'{d}: an item journaled twice'
    n_after = sum(map(len, after.values()))
    assert n_after == total, f'{n_after} items journaled, expected {total}'
    redone = [p for p, s in wavs_before.items() if (p.stat().st_ino, p.stat().st_mtime_ns) != s]
    assert not redone, f'the rerun wrote again {len(redone)} of the {len(wavs_before)} wavs done before it: {redone[0]}'
    return n_after - n_before

def tree_bytes(d: Path) -> dict:
    "Every output file under `d` (journals excluded) with its bytes."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*'))
            if p.is_file() and '.journal' not in p.parts}

SMOKE_RUN_DEADLINE_S = 3600   # from its start: on 2 cores the run took 10-11 minutes alone, 16.5 beside the others

def _reads_smoke_run(item) -> bool: return 'smoke_run' in getattr(item, 'fixturenames', ())

def pytest_collection_modifyitems(items):
    "The tests that read the smoke run go last, so that the run, started with the first test, goes on beside the rest."
    items.sort(key=_reads_smoke_run)   # stable: each group keeps its order

def _stop(proc):
    "Stop the run as Ctrl-C does (its notebooks' kernels are shut down with what they started); SIGKILL after 60 s."
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGKILL, None)):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: return
        try: proc.wait(timeout=wait); return
        except subprocess.TimeoutExpired: pass

@pytest.fixture(scope='session', autouse=True)
def _smoke_run_started(request, tmp_path_factory):
    """The smoke experiment, `fa8k-run 0 4` in a fresh folder as `./run demo` runs it, started with the session's first
    test when a selected test reads it. The other tests, most of them one process at a time, leave a core idle that the
    run's two training processes use (its notebooks run in scheduling groups of their own: the kernel shares the CPU
    with the tests fairly). Stopped at the session's end if it is still running."""
    if os.environ.get('FA8K_SMOKE_RUN') or not any(map(_reads_smoke_run, request.session.items)):
        yield None
        return
    d, logs = tmp_path_factory.mktemp('smoke_run'), tmp_path_factory.mktemp('smoke_run_said')
    with open(logs / 'stdout', 'w') as out, open(logs / 'stderr', 'w') as err:
        proc = subprocess.Popen([cli('fa8k-run'), '0', '4', '--run_id', 'ci'], cwd=d, stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    yield dict(dir=d, logs=logs, proc=proc, started=time.monotonic())
    if proc.poll() is None: _stop(proc)

@pytest.fixture(scope='session')
def smoke_run(_smoke_run_started) -> dict:
    """The smoke experiment, run once for the whole test session (`_smoke_run_started`), waited for here: its folder,
    exit status, last words, the folder of its whole stdout and stderr, and its report. FA8K_SMOKE_RUN=DIR reads a
    finished run in DIR instead (a developer's shortcut; CI never sets it)."""
    if given := os.environ.get('FA8K_SMOKE_RUN'): d, rc, said, logs = Path(given), 0, '', None
    else:
        s = _smoke_run_started
        d, logs, left = s['dir'], s['logs'], SMOKE_RUN_DEADLINE_S - (time.monotonic() - s['started'])
        try: rc = s['proc'].wait(timeout=max(left, 1))
        except subprocess.TimeoutExpired:
            _stop(s['proc'])
            rc = f'none: stopped after {SMOKE_RUN_DEADLINE_S} s'
        said = (logs / 'stdout').read_text()[-2500:] + '\n' + (logs / 'stderr').read_text()[-5000:]
    runs = sorted((d / 'reports').glob('*/eval_metrics.json'))
    return dict(dir=d, rc=rc, said=said, logs=logs, report=runs[-1].parent if runs else None, exp=d / 'exp_output')
