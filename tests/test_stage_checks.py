("A stage's checks can fail: stage 1 run through its notebook with a sabotage (learning rate 0) stops with the "
 "check's message, and leaves no pointer for stage 2 to start from.")
import pytest
from fun_asr_8k.experiment import StageFailed, execute
from fun_asr_8k.plan import pointer_path

@pytest.fixture(scope='module')
def small_exp(tmp_path_factory):
    "Stage 0 on a small smoke corpus."
    from fun_asr_8k.data import prep
    from fun_asr_8k.corpus import CorpusSpec, make_corpus
    d = tmp_path_factory.mktemp('sabotage')
    make_corpus(d / 'corpus', CorpusSpec(160, 24, 8, 24, 12, 8), progress=False)
    prep(d / 'corpus' / 'general', d / 'corpus' / 'telephone', d / 'exp_output', skip_bad=True, progress=False)
    return d

def test_stage1_with_lr_0_fails_its_checks(small_exp):
    params = dict(exp_output=str(small_exp / 'exp_output'), lr=0.0, epochs=2, dev_utts=8, avg_last=2)
    with pytest.raises(StageFailed) as e:
        execute('10_stage1', small_exp / '10_stage1_lr0.ipynb', params, small_exp)
    msg = str(e.value)
    # a flat loss is the plan's "does not converge" (answered with lr x0.5 and warm-up x2, then the end), unless the
    # first epoch's noise hides it: then the check that the loss fell fails
    flat = "training loss is flat, again after the plan's response" in msg and 'check the data' in msg
    assert flat or ('AssertionError' in msg and 'did not fall' in msg), msg
    assert (small_exp / '10_stage1_lr0.ipynb').exists(), 'the failed notebook stays beside the run'
    assert not pointer_path(small_exp / 'exp_output', 'stage1').exists(), 'no stage can start from it'


def test_the_release_traps_are_seen_in_what_training_did(small_exp, monkeypatch):
    "A stage trained with the release's own settings left in (its data splits, 2 here; its save excludes; its prompt "
    "class) fails the checks of what happened, each naming its key."
    import fun_asr_8k.stage as stage, fun_asr_8k.stage_config as stage_config
    from fun_asr_8k.plan import RELEASED_TINY
    overrides = stage_config.stage_overrides
    def released(p, inputs):   # the stage's configuration with the three traps left to the release
        o = overrides(p, inputs)
        o['dataset_conf'].update(data_split_num=2)
        del o['dataset_conf']['prompt_classes'], o['train_conf']['effective_save_name_excludes']
        return o
    monkeypatch.setattr(stage_config, 'stage_overrides', released)
    for m in (stage_config, stage):   # past the refusal, to see what happens
        monkeypatch.setattr(m, 'release_decisions', lambda *a, **k: [])
    p = stage_config.StageParams(stage='stage1', exp_output=str(small_exp / 'traps'), model_dir=str(RELEASED_TINY),
                                 epochs=1, dev_utts=2, avg_last=1)
    (small_exp / 'traps').mkdir(exist_ok=True)
    (small_exp / 'traps' / 'data').symlink_to(small_exp / 'exp_output' / 'data')
    report = stage.run_stage(p)
    epoch = report['epochs'][0]
    assert (epoch['passes'], epoch['steps']) == (2, 2 * epoch['one_pass']), epoch
    assert all(c['llm_tensors'] == 0 for c in report['saved_llm']), report['saved_llm']
    assert not report['prompts'][0]['same'] and report['prompts'][0]['trained'] != report['prompts'][0]['decoded']
    named = (('epochs', 'dataset_conf.data_split_num'), ('saved_llm', 'train_conf.effective_save_name_excludes'),
             ('prompts', 'dataset_conf.prompt_classes'))
    for only, key in named:
        alone = dict(report, **{k: [] for k in ('epochs', 'saved_llm', 'prompts') if k != only})
        with pytest.raises(AssertionError, match=key.replace('.', r'\.')):
            stage.check_ran(alone)
