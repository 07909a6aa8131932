("The released tiny model: the shipped one loads with stock funasr, and its metrics, recomputed from it on its own "
 "test sets, meet its targets and are those made_with.json records; the command remakes it (FA8K_SLOW=1) to the same "
 "targets met and close to the same numbers.")
import json, os, subprocess, time
from dataclasses import asdict
import pytest
from conftest import cli
from fun_asr_8k.corpus import CorpusSpec
from fun_asr_8k.plan import RELEASED_TINY, SMOKE_TARGETS
from fun_asr_8k.release import RELEASE, release_metrics, release_test_data, target_line

SLOW = os.environ.get('FA8K_SLOW') == '1'
# the plan's bound on the released model's CER on clean speech of new voices (15 %)
CLEAN_CER_BOUND = next(t['max'] for t in SMOKE_TARGETS if (t['stage'], t['run']) == ('baseline', 'general'))

def _made() -> dict: return json.loads((RELEASED_TINY / 'made_with.json').read_text())

@pytest.fixture(scope='module')
def recomputed(tmp_path_factory) -> dict:
    ("The shipped model's metrics, computed now: its test sets rebuilt from the corpus spec it was made with "
     "(release_test_data: the release's own utterances and bytes), decoded and scored as make_release scores them.")
    t0, work = time.time(), tmp_path_factory.mktemp('release_test_sets')
    release_test_data(work, CorpusSpec(**_made()['corpus']))
    t1 = time.time()
    metrics = release_metrics(RELEASED_TINY, work)
    print(f'test sets rebuilt in {t1 - t0:.0f} s, decoded and scored in {time.time() - t1:.0f} s')
    return metrics

def _targets(metrics: dict) -> dict:
    return {(t['run'], t['metric']): t for t in metrics['targets']}

def test_shipped_model_is_complete():
    made = _made()
    for f in ('config.yaml', 'configuration.json', 'model.pt', 'am.mvn', 'ctc_tokens.txt', 'Qwen3-tiny/config.json',
              'Qwen3-tiny/tokenizer.json'):
        assert (RELEASED_TINY / f).is_file(), f
    assert made['command'].startswith('fa8k-release-tiny-model') and 'seed' in made
    assert made['corpus'] == asdict(RELEASE['corpus']), 'the shipped model was not made by RELEASE'
    assert set(made['metrics']['runs']) == {'general', 'general_telephone', 'telephone', 'telephone_hotwords'}
    assert all(r['n_utterances'] >= 100 for r in made['metrics']['runs'].values())

def test_shipped_model_reads_clean_speech_of_new_voices(recomputed):
    t = _targets(recomputed)[('general', 'cer')]
    assert t['met'] and t['value'] <= CLEAN_CER_BOUND, target_line(t)

def test_shipped_model_fails_on_the_phone_channel(recomputed):
    t = _targets(recomputed)[('general_telephone', 'cer')]   # at least 1.5 times the clean CER
    assert t['met'] and t['value'] >= t['bound'] > 0, target_line(t)

def test_made_with_json_holds_the_numbers_recomputed(recomputed):
    ("The sets rebuilt are the ones the release measured, file for file (07_release checks release_test_data "
     "against release_data), and decoding is deterministic: every number made_with.json records is recomputed "
     "exactly, utterance counts, CER, WER, KWER and the targets.")
    made = _made()['metrics']
    differ = {(run, k): (recomputed['runs'][run].get(k), v) for run, m in made['runs'].items() for k, v in m.items()
              if recomputed['runs'][run].get(k) != v}
    assert not differ, f'(run, metric): (recomputed, made_with.json): {differ}'
    assert recomputed['targets'] == made['targets'], '\n'.join(map(target_line, recomputed['targets']))

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
    from fun_asr_8k.stage_config import decide
    own = lambda cfg: {k for k in config_keys(cfg) if not k.startswith('dataset_conf.ctc_tokenizer_conf.')}
    shipped = yaml.safe_load((RELEASED_TINY / 'config.yaml').read_text())
    assert own(shipped) == own(FUN_ASR_NANO_2512) | {'ctc_vocab_size'}, own(shipped) ^ own(FUN_ASR_NANO_2512)
    assert set(config_keys(full_config('/llm', '/vocab'))) == set(config_keys(FUN_ASR_NANO_2512))
    assert [k for k in config_keys(shipped) if decide(k) is None] == []
    trap = dict(data_split_num=256, prompt_classes='MultiContextPrompt')
    assert {k: shipped['dataset_conf'][k] for k in trap} == trap   # the smoke runs meet the release's settings too
