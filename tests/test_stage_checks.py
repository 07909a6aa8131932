("A stage's checks can fail: stage 1 run through its notebook with a sabotage (learning rate 0) stops with the "
 "check's message, and leaves no pointer for stage 2 to start from.")
import pytest
from fun_asr_8k.experiment import StageFailed, execute
from fun_asr_8k.plan import pointer_path

@pytest.fixture(scope='module')
def small_exp(tmp_path_factory):
    "Stage 0 on a small smoke corpus."
    from fun_asr_8k.data import CorpusSpec, make_corpus, prep
    d = tmp_path_factory.mktemp('sabotage')
    make_corpus(d / 'corpus', CorpusSpec(160, 24, 8, 24, 12, 8), progress=False)
    prep(d / 'corpus' / 'general', d / 'corpus' / 'telephone', d / 'exp_output', skip_bad=True, progress=False)
    return d

def test_stage1_with_lr_0_fails_its_checks(small_exp):
    params = dict(exp_output=str(small_exp / 'exp_output'), lr=0.0, epochs=2, dev_utts=8, avg_last=2)
    with pytest.raises(StageFailed) as e:
        execute('10_stage1', small_exp / '10_stage1_lr0.ipynb', params, small_exp)
    msg = str(e.value)
    assert 'AssertionError' in msg and ('did not fall' in msg or 'changed' in msg), msg
    assert (small_exp / '10_stage1_lr0.ipynb').exists(), 'the failed notebook stays beside the run'
    assert not pointer_path(small_exp / 'exp_output', 'stage1').exists(), 'no stage can start from it'
