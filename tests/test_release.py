("The released tiny model: the shipped one loads with stock funasr and is checked against its targets; the command "
 "remakes it (FA8K_SLOW=1) to the same targets met and close to the same numbers.")
import json, os, subprocess
import pytest
from conftest import cli
from fun_asr_8k.plan import RELEASED_TINY

SLOW = os.environ.get('FA8K_SLOW') == '1'

def _targets() -> dict:
    made = json.loads((RELEASED_TINY / 'made_with.json').read_text())
    return {(t['run'], t['metric']): t for t in made['metrics']['targets']}

def test_shipped_model_is_complete_and_shows_the_problem():
    made = json.loads((RELEASED_TINY / 'made_with.json').read_text())
    for f in ('config.yaml', 'configuration.json', 'model.pt', 'am.mvn', 'ctc_tokens.txt', 'Qwen3-tiny/config.json',
              'Qwen3-tiny/tokenizer.json'):
        assert (RELEASED_TINY / f).is_file(), f
    assert made['command'].startswith('fa8k-release-tiny-model') and 'seed' in made
    assert set(made['metrics']['runs']) == {'general', 'general_telephone', 'telephone', 'telephone_hotwords'}
    assert all(r['n_utterances'] >= 100 for r in made['metrics']['runs'].values())
    assert _targets()[('general_telephone', 'cer')]['met'], _targets()   # the phone channel breaks it

def test_shipped_model_reads_clean_speech_of_new_voices():
    assert _targets()[('general', 'cer')]['met'], _targets()[('general', 'cer')]

def test_stock_funasr_loads_it_with_no_project_code(tmp_path):
    "A fresh interpreter that imports funasr only (no fun_asr_8k) builds the model from the directory alone."
    code = ('import sys; from funasr import AutoModel; '
            f'm = AutoModel(model={str(RELEASED_TINY)!r}, device="cpu", disable_update=True); '
            'assert "fun_asr_8k" not in sys.modules; '
            'print(type(m.model).__name__, m.kwargs["frontend_conf"]["cmvn_file"])')
    r = subprocess.run([cli('python'), '-c', code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # funasr prints first
    assert r.stdout.strip().splitlines()[-1].split() == ['FunASRNano', str(RELEASED_TINY / 'am.mvn')]

@pytest.mark.skipif(not SLOW, reason='remakes the released model (about 45 min on 2 cores): FA8K_SLOW=1')
def test_the_command_remakes_it(tmp_path):
    r = subprocess.run([cli('fa8k-release-tiny-model'), '--out_dir', tmp_path / 'released', '--work_dir',
                        tmp_path / 'work'], capture_output=True, text=True, timeout=3 * 3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    new = json.loads((tmp_path / 'released' / 'made_with.json').read_text())['metrics']
    old = json.loads((RELEASED_TINY / 'made_with.json').read_text())['metrics']
    assert [t['met'] for t in new['targets']] == [t['met'] for t in old['targets']], (new['targets'], old['targets'])
    for run in old['runs']:   # CPU training is seeded; other CPUs may round differently: close, not equal
        assert abs(new['runs'][run]['cer'] - old['runs'][run]['cer']) <= 0.03, (run, new['runs'][run], old['runs'][run])


def test_shipped_config_carries_the_release_keys():
    "The released tiny model's config.yaml holds every key of Fun-ASR-Nano-2512's (sizes scaled, its own tokenizers), "
    "and so does the full-size stand-in's; every key is decided by the stages."
    import yaml
    from fun_asr_8k.model import FUN_ASR_NANO_2512, config_keys, full_config
    from fun_asr_8k.train import decide
    own = lambda cfg: {k for k in config_keys(cfg) if not k.startswith('dataset_conf.ctc_tokenizer_conf.')}
    shipped = yaml.safe_load((RELEASED_TINY / 'config.yaml').read_text())
    assert own(shipped) == own(FUN_ASR_NANO_2512) | {'ctc_vocab_size'}, own(shipped) ^ own(FUN_ASR_NANO_2512)
    assert set(config_keys(full_config('/llm', '/vocab'))) == set(config_keys(FUN_ASR_NANO_2512))
    assert [k for k in config_keys(shipped) if decide(k) is None] == []
    trap = dict(data_split_num=256, prompt_classes='MultiContextPrompt')
    assert {k: shipped['dataset_conf'][k] for k in trap} == trap   # the smoke runs meet the release's settings too
