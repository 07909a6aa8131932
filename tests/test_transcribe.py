("fa8k-transcribe as a user runs it (the released tiny model, a CTC branch added): stereo 8 kHz, mono FLAC and MP3 "
 "calls beside bad ones (0 bytes, 6 channels, digital silence, 3 hours), outputs read back, resume, usage errors; "
 "never a traceback.")
import json, subprocess, sys, tempfile
from pathlib import Path
import numpy as np
import pytest
import soundfile as sf
from conftest import BIN, ROOT
from fun_asr_8k.channel import resample

def fa8k_transcribe(*args) -> subprocess.CompletedProcess:
    "The fa8k-transcribe console script; where the venv predates it, the same lines pip writes for it."
    if (BIN / 'fa8k-transcribe').exists(): cmd = [str(BIN / 'fa8k-transcribe')]
    else:
        launcher = Path(tempfile.gettempdir()) / 'fa8k-transcribe-launcher.py'
        launcher.write_text('import sys\nfrom fun_asr_8k.transcribe import transcribe_cli\n'
                            'if __name__ == "__main__":\n    sys.exit(transcribe_cli())\n')
        cmd = [sys.executable, str(launcher)]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True)

def test_the_console_script_is_registered():
    assert 'fa8k-transcribe=fun_asr_8k.transcribe:transcribe_cli' in (ROOT / 'settings.ini').read_text()

@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory) -> Path:
    ("The released tiny model with a CTC branch of random weights added (as if stage 2 had trained it): it reads "
     "speech, and its characters get times.")
    import shutil, torch
    from fun_asr_8k.model import load_model
    from fun_asr_8k.plan import RELEASED_TINY
    d = tmp_path_factory.mktemp('model') / 'released_with_ctc'
    shutil.copytree(RELEASED_TINY, d)
    torch.manual_seed(0)
    m = load_model(RELEASED_TINY, model='FunASRNanoCTC', ctc_train=True).model   # the CTC branch kept, random
    torch.save({'state_dict': m.state_dict()}, d / 'model.pt')
    return d

@pytest.fixture(scope='module')
def calls(speech_manifest, tmp_path_factory) -> dict[str, Path]:
    "Good calls (stereo 8 kHz WAV, mono 16 kHz FLAC, mono MP3, a quiet line with no speech) and bad ones."
    d = tmp_path_factory.mktemp('calls')
    utts = [sf.read(speech_manifest.parent / json.loads(l)['source'], dtype='float32')[0]
            for l in speech_manifest.read_text().splitlines()[:4]]
    gap = np.zeros(8000, np.float32)
    left = np.concatenate([gap, utts[0], gap, np.zeros(len(utts[1])), gap, utts[2], gap, np.zeros(len(utts[3])), gap])
    right = np.concatenate([gap, np.zeros(len(utts[0])), gap, utts[1], gap, np.zeros(len(utts[2])), gap, utts[3], gap])
    rng = np.random.default_rng(0)
    stereo = np.stack([resample(left, 16000, 8000), resample(right, 16000, 8000)], 1)
    stereo += 1e-3 * rng.standard_normal(stereo.shape)            # a line is never digitally silent
    sf.write(d / 'stereo_call.wav', stereo, 8000)
    mono = np.concatenate([gap, utts[0], gap, utts[1], gap])
    mono += 1e-3 * rng.standard_normal(len(mono))
    sf.write(d / 'mono_call.flac', mono, 16000)
    sf.write(d / 'mp3_call.mp3', resample(mono, 16000, 8000), 8000, format='MP3')
    sf.write(d / 'quiet_line.wav', 3e-4 * rng.standard_normal(8000 * 20), 8000)   # a line open, nobody speaking
    (d / 'empty.wav').write_bytes(b'')
    sf.write(d / 'six_channels.wav', np.zeros((8000, 6)) + 0.01, 8000)
    sf.write(d / 'silence.wav', np.zeros(8000 * 30), 8000)
    with sf.SoundFile(d / 'three_hours.wav', 'w', 8000, 1, 'PCM_16') as f:   # 165 MB, written 10 minutes at a time
        for _ in range(18): f.write(np.zeros(8000 * 600, np.int16))
    return d

def test_calls_in_outputs_and_counted_skips(calls, tiny_model, tmp_path):
    out = tmp_path / 'out'
    r = fa8k_transcribe(calls, '--model', tiny_model, '--out', out, '--quiet', 'True')
    assert r.returncode == 0, r.stderr
    assert 'Traceback' not in r.stderr + r.stdout
    s = json.loads((out / 'summary.json').read_text())
    assert {x['key']: x['reason'] for x in s['skipped']} == {'empty': 'empty', 'six_channels': 'channels',
                                                          'silence': 'silent', 'three_hours': 'too_long'}
    assert '3:00:00.0 long, more than max_minutes 120' in r.stdout and '6 channels' in r.stdout
    assert (s['n_calls'], s['n_transcribed'], s['n_without_speech']) == (8, 4, 1)   # the quiet line: no turns
    turns = [json.loads(l) for l in (out / 'stereo_call.jsonl').read_text().splitlines()]
    assert {t['speaker'] for t in turns} == {'agent', 'customer'}
    assert [t['start'] for t in turns] == sorted(t['start'] for t in turns)
    # each turn on its own channel: the agent speaks first, then the customer, as the call was laid out
    assert [t['speaker'] for t in turns][:2] == ['agent', 'customer']
    timed = [t for t in turns if t['chars']]
    assert timed, turns   # the model has a CTC branch: characters are timed, inside their padded segment, in order
    for t in timed:
        assert all(t['start'] - 0.3 <= c['start'] < c['end'] <= t['end'] + 0.3 for c in t['chars'])
        assert [c['start'] for c in t['chars']] == sorted(c['start'] for c in t['chars'])
    assert 'from the CTC head' in s['char_times']
    import srt, webvtt
    subs = list(srt.parse((out / 'stereo_call.srt').read_text()))
    assert len(subs) == sum(bool(t['text']) for t in turns) and subs[0].content.startswith('agent: ')
    assert [c.voice for c in webvtt.read(out / 'stereo_call.vtt')][:1] == ['agent']
    assert {t['speaker'] for f in ('mono_call', 'mp3_call') for t in map(json.loads, (out / f'{f}.jsonl').open())} \
        == {'mono'}
    assert s['rtf'] > 0 and s['audio_s'] > 20
    assert 0 < s['cpu_rtf'] == pytest.approx(s['cpu_s'] / s['audio_s'], rel=1e-2)   # the process's own CPU
    # a rerun transcribes nothing again and rewrites the same outputs
    before = {p.name: p.read_bytes() for p in out.glob('*.jsonl')}
    again = fa8k_transcribe(calls, '--model', tiny_model, '--out', out, '--quiet', 'True')
    assert again.returncode == 0 and '(4 from an earlier run)' in again.stdout
    assert {p.name: p.read_bytes() for p in out.glob('*.jsonl')} == before

def test_resume_after_a_call_is_added(calls, tiny_model, tmp_path):
    "A run stopped after its first call: the next run resumes it and transcribes only the rest."
    one = tmp_path / 'one.jsonl'
    one.write_text(json.dumps(dict(key='stereo_call', source=str(calls / 'stereo_call.wav'))) + '\n')
    both = tmp_path / 'both.jsonl'
    both.write_text(one.read_text() + json.dumps(dict(key='mono_call', source=str(calls / 'mono_call.flac'))) + '\n')
    out = tmp_path / 'out'
    assert fa8k_transcribe(one, '--model', tiny_model, '--out', out, '--quiet', 'True').returncode == 0
    r = fa8k_transcribe(both, '--model', tiny_model, '--out', out, '--quiet', 'True')
    assert r.returncode == 0 and '2 of 2 calls transcribed (1 from an earlier run)' in r.stdout

def test_mix_makes_one_speaker(calls, tiny_model, tmp_path):
    r = fa8k_transcribe(calls / 'stereo_call.wav', '--model', tiny_model, '--out', tmp_path, '--channels', 'mix',
                        '--quiet', 'True')
    assert r.returncode == 0, r.stderr
    assert {json.loads(l)['speaker'] for l in (tmp_path / 'stereo_call.jsonl').open()} == {'mix'}

@pytest.mark.parametrize('args, message, code', [
    (['--out', 'o'], 'give --model DIR or --stage N', 2),
    (['--model', 'nowhere', '--out', 'o'], 'nowhere: no such checkpoint', 2),
    (['--stage', '1', '--exp_output', 'no_exp', '--out', 'o'], 'stage 1 has no checkpoint yet', 2),
    (['--model', 'M', '--channels', 'a,b,c', '--out', 'o'], "expected two names", 2),
    (['--model', 'M'], '--out is required', 2),
])
def test_usage_errors_name_what_is_wrong(calls, tiny_model, tmp_path, args, message, code):
    args = [str(tiny_model) if a == 'M' else str(tmp_path / a) if a in ('o', 'nowhere', 'no_exp') else a for a in args]
    r = fa8k_transcribe(calls / 'stereo_call.wav', *args)
    assert r.returncode == code and message in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_only_bad_calls_exit_1_with_the_reason(calls, tiny_model, tmp_path):
    r = fa8k_transcribe(calls / 'empty.wav', calls / 'nothing_here.wav', '--model', tiny_model, '--out', tmp_path)
    assert r.returncode == 2 and 'nothing_here.wav: no such call' in r.stderr        # a path that is not there
    r = fa8k_transcribe(calls / 'empty.wav', '--model', tiny_model, '--out', tmp_path, '--quiet', 'True')
    assert r.returncode == 1 and 'empty.wav: empty: 0 bytes' in r.stdout and 'Traceback' not in r.stderr

def test_other_settings_are_refused(calls, tiny_model, tmp_path):
    first = fa8k_transcribe(calls / 'mono_call.flac', '--model', tiny_model, '--out', tmp_path, '--quiet', 'True')
    assert first.returncode == 0
    r = fa8k_transcribe(calls / 'mono_call.flac', '--model', tiny_model, '--out', tmp_path, '--vad_threshold', '0.5')
    assert r.returncode == 2 and 'holds a run with other settings (vad differ' in r.stderr
