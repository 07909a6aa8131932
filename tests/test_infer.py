("fa8k-infer as a user runs it: a tiny model directory, a manifest with 16 kHz, 8 kHz and missing audio, resume, "
 "named failures.")
import json, shutil, subprocess, sys
from pathlib import Path
import pytest
import soundfile as sf
from conftest import BIN
import fun_asr_8k.infer as ev
from fun_asr_8k.channel import resample

def infer_cmd(tmp_path_factory) -> list[str]:
    "The fa8k-infer console script; until settings.ini registers it, the same three lines pip would write."
    if (BIN / 'fa8k-infer').exists(): return [str(BIN / 'fa8k-infer')]
    launcher = tmp_path_factory.mktemp('bin') / 'fa8k-infer'
    launcher.write_text('import sys\nfrom fun_asr_8k.infer import infer_cli\n'
                        'if __name__ == "__main__":\n    sys.exit(infer_cli())\n')
    return [sys.executable, str(launcher)]

@pytest.fixture(scope='module')
def fa8k_infer(tmp_path_factory):
    cmd = infer_cmd(tmp_path_factory)
    return lambda *args: subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True)

@pytest.fixture(scope='module')
def tiny_model(speech_manifest, tmp_path_factory) -> Path:
    ("A randomly initialised tiny Fun-ASR-Nano directory (what fa8k-make-tiny-model writes), its tokenizers from the "
     "test speech.")
    from fun_asr_8k.model import make_tiny_model
    corpus = tmp_path_factory.mktemp('corpus')                  # laid out as fa8k-make-corpus lays it out
    (corpus / 'general').mkdir()
    lines = [dict(json.loads(l), source=str(speech_manifest.parent / json.loads(l)['source']))
             for l in speech_manifest.read_text().splitlines()]
    (corpus / 'general' / 'train_M.jsonl').write_text(''.join(json.dumps(l, ensure_ascii=False) + '\n' for l in lines))
    return make_tiny_model(tmp_path_factory.mktemp('model') / 'tiny', corpus)

@pytest.fixture(scope='module')
def test_set(speech_manifest, tmp_path_factory) -> Path:
    "Four utterances: two at 16 kHz, one written at 8 kHz (telephone rate), one whose audio is missing (line 4)."
    d = tmp_path_factory.mktemp('test_set')
    src = [json.loads(l) for l in speech_manifest.read_text().splitlines()[:3]]
    x = sf.read(speech_manifest.parent / src[2]['source'])[0]
    sf.write(d / 'tel_8k.wav', resample(x, 16000, 8000), 8000)
    lines = [dict(key=s['key'], source=str(speech_manifest.parent / s['source']), target=s['target']) for s in src[:2]]
    lines += [dict(key='tel_8k', source='tel_8k.wav', target=src[2]['target']),
              dict(key='missing', source='gone.wav', target='你好')]
    (d / 'test.jsonl').write_text(''.join(json.dumps(l, ensure_ascii=False) + '\n' for l in lines))
    return d / 'test.jsonl'

def read_jsonl(p: Path) -> list[dict]: return [json.loads(l) for l in p.read_text().splitlines()]

def test_cli_end_to_end(fa8k_infer, tiny_model, test_set, speech_manifest, tmp_path):
    out = tmp_path / 'eval'
    r = fa8k_infer('--model_path', tiny_model, '--test_data', test_set, '--output_dir', out, '--batch', 2,
                   '--quiet', True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '3 of 4 utterances decoded' in r.stdout and '1 FAILED' in r.stdout and 'missing' in r.stdout
    rows = read_jsonl(out / 'results.jsonl')
    # test-set order
    assert [x['key'] for x in rows] == [json.loads(l)['key'] for l in test_set.read_text().splitlines()[:3]]
    assert all(list(x) == list(ev.RESULT_FIELDS) and isinstance(x['hyp'], str) and x['decode_s'] > 0 for x in rows)
    assert [x['ref'] for x in rows] == [json.loads(l)['target'] for l in test_set.read_text().splitlines()[:3]]
    s = json.loads((out / 'summary.json').read_text())
    assert (s['n_utterances'], s['n_decoded'], s['n_failed']) == (4, 3, 1)
    assert (s['failed'][0]['key'] == 'missing' and s['failed'][0]['line'] == 4
            and 'gone.wav: missing' in s['failed'][0]['error'])
    assert s['sample_rates'] == {'8000': 1, '16000': 2}
    by_key = {x['key']: x for x in rows}
    original = sf.info(str(speech_manifest.parent / json.loads(speech_manifest.read_text().splitlines()[2])['source']))
    assert (by_key['tel_8k']['sample_rate'] == 8000
            and by_key['tel_8k']['duration'] == pytest.approx(original.duration, abs=1e-3))
    assert s['audio_s'] == pytest.approx(sum(x['duration'] for x in rows), abs=1e-3)
    assert s['rtf'] == pytest.approx(s['decode_s'] / s['audio_s'], rel=1e-2)
    assert (s['model_path'] == str(tiny_model) and s['test_data'] == str(test_set) and s['device'] == 'cpu'
            and s['hotwords'] is None)
    assert s['prompt'] == '语音转写：' and s['itn'] is True   # the prompt the stages train with
    assert not list(out.glob('*.tmp-*'))

def test_8k_audio_reaches_the_model_resampled(tiny_model, test_set, tmp_path, monkeypatch):
    seen = {}
    real = ev.decode
    def spy(model, audio, keys, *args, **kw):
        seen.update({k: len(a) for k, a in zip(keys, audio)})
        return real(model, audio, keys, *args, **kw)
    monkeypatch.setattr(ev, 'decode', spy)
    ev.infer(tiny_model, test_set, tmp_path / 'o', batch=4, progress=False)
    n8 = sf.info(str(test_set.parent / 'tel_8k.wav')).frames
    assert seen['tel_8k'] == 2 * n8            # 16 kHz samples of the same duration: resampled, not relabelled
    assert set(seen) == {'spk0_utt0', 'spk0_utt1', 'tel_8k'}

def test_resume_decodes_only_what_the_journal_lacks(tiny_model, test_set, tmp_path, monkeypatch):
    ev.infer(tiny_model, test_set, tmp_path / 'a', batch=1, progress=False)
    jdir = tmp_path / 'a' / '.journal'
    journal = (jdir / 'journal-0-of-1.jsonl').read_text().splitlines()
    assert len(journal) == 3 and json.loads((jdir / 'settings.json').read_text())['test_data'] == str(test_set)
    # a run killed after its first utterance, mid-way through writing the second
    (tmp_path / 'b' / '.journal').mkdir(parents=True)
    shutil.copy(jdir / 'settings.json', tmp_path / 'b' / '.journal')
    (tmp_path / 'b' / '.journal' / 'journal-0-of-1.jsonl').write_text(journal[0] + '\n' + journal[1][:25])
    decoded = []
    real = ev.decode
    monkeypatch.setattr(ev, 'decode',
                        lambda m, audio, keys, *a, **kw: decoded.extend(keys) or real(m, audio, keys, *a, **kw))
    again = ev.infer(tiny_model, test_set, tmp_path / 'b', batch=1, progress=False)
    done_before = json.loads(journal[0])['key']
    assert again['n_resumed'] == 1 and done_before not in decoded and len(decoded) == 2
    assert (again['n_decoded'], again['n_failed']) == (3, 1)
    strip = lambda rows: [{k: x[k] for k in ('key', 'ref', 'hyp', 'duration')} for x in rows]
    assert strip(read_jsonl(tmp_path / 'b' / 'results.jsonl')) == strip(read_jsonl(tmp_path / 'a' / 'results.jsonl'))
    resumed = (tmp_path / 'b' / '.journal' / 'journal-0-of-1.jsonl').read_text().splitlines()
    assert json.loads(resumed[0]) == json.loads(journal[0]) and len(resumed) == 3   # the torn line was cut, not kept
    decoded.clear()
    ev.infer(tiny_model, test_set, tmp_path / 'b', batch=1, progress=False)
    assert decoded == []                         # a finished run is not decoded again

def test_other_settings_are_refused_then_forced(tiny_model, test_set, tmp_path):
    ev.infer(tiny_model, test_set, tmp_path / 'o', progress=False)
    (tmp_path / 'kw.txt').write_text('流量\n套餐\n')
    with pytest.raises(ValueError, match='other settings .hotwords, prompt differ'):
        ev.infer(tiny_model, test_set, tmp_path / 'o', hotwords=tmp_path / 'kw.txt', progress=False)
    s = ev.infer(tiny_model, test_set, tmp_path / 'o', hotwords=tmp_path / 'kw.txt', force=True, progress=False)
    assert s['hotword_list'] == ['流量', '套餐'] and '热词列表：[流量, 套餐]' in s['prompt'] and s['n_resumed'] == 0

def test_a_failing_batch_is_retried_one_by_one(tiny_model, test_set, tmp_path, monkeypatch):
    real = ev.decode
    def flaky(model, audio, keys, *args, **kw):
        if 'spk0_utt1' in keys: raise RuntimeError('CUDA out of memory (simulated)')
        return real(model, audio, keys, *args, **kw)
    monkeypatch.setattr(ev, 'decode', flaky)
    s = ev.infer(tiny_model, test_set, tmp_path / 'o', batch=8, progress=False)
    assert (s['n_decoded'], s['n_failed']) == (2, 2)
    assert [(f['key'], f['line']) for f in s['failed']] == [('spk0_utt1', 2), ('missing', 4)]
    assert s['failed'][0]['error'] == 'RuntimeError: CUDA out of memory (simulated)'
    assert {x['key'] for x in read_jsonl(tmp_path / 'o' / 'results.jsonl')} == {'spk0_utt0', 'tel_8k'}

def test_bad_input_exits_2_naming_it(fa8k_infer, tiny_model, test_set, tmp_path):
    r = fa8k_infer('--model_path', tmp_path / 'no_model', '--test_data', test_set, '--output_dir', tmp_path / 'o')
    assert r.returncode == 2 and f'{tmp_path / "no_model"}: no such checkpoint or model directory' in r.stderr
    (tmp_path / 'final_checkpoint.txt').write_text(f'{tiny_model}\n')
    r = fa8k_infer('--model_path', tmp_path / 'final_checkpoint.txt', '--test_data', test_set,
                   '--output_dir', tmp_path / 'o')
    assert r.returncode == 2 and 'a checkpoint pointer; give the checkpoint it names' in r.stderr
    bad = tmp_path / 'bad.jsonl'
    bad.write_text(test_set.read_text() + '{"key": "x", "source": ')
    r = fa8k_infer('--model_path', tiny_model, '--test_data', bad, '--output_dir', tmp_path / 'o',
                   '--hotwords', tmp_path / 'kw.txt')
    assert r.returncode == 2 and f'{bad}:5: broken JSON' in r.stderr
    r = fa8k_infer('--model_path', tiny_model, '--test_data', test_set, '--output_dir', tmp_path / 'o',
                   '--hotwords', tmp_path / 'kw.txt')
    assert r.returncode == 2 and f'{tmp_path / "kw.txt"}: no such keyword file' in r.stderr
    assert not (tmp_path / 'o' / 'results.jsonl').exists()
