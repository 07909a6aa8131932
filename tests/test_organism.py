("The model organism, proven on every `./run test`: the smoke experiment run once (conftest `smoke_run`), then every "
 "smoke target and every stage's checks asserted, with the numbers in the failure message. A change that breaks a "
 "stage's learning (lr 0, a wrong freeze plan, a LoRA merged wrong) fails here, naming the target or the check.")
import json
from pathlib import Path
import pytest
from fun_asr_8k.evaluate import SMOKE_TARGETS
from fun_asr_8k.plan import FREEZE_PLANS, STAGE_CHECKS, pointer_path, stage_dir

def ran(smoke_run) -> dict:
    "The run, or the failure with what it said (a stage's failed check names itself in the notebook's error)."
    assert smoke_run['rc'] == 0 and smoke_run['report'], (
        f"fa8k-run 0 4 failed (exit {smoke_run['rc']}); its last words:\n{smoke_run['said']}")
    return smoke_run

def pct(v): return 'n/a' if v is None else f'{100 * v:.1f} %'

@pytest.mark.parametrize('i', range(len(SMOKE_TARGETS)),
                         ids=[f"{t['stage']}-{t['run']}-{t['metric']}" for t in SMOKE_TARGETS])
def test_smoke_target(smoke_run, i):
    "Each smoke target, from the run's own eval_metrics.json (computed by 40_eval from the decodes)."
    run = ran(smoke_run)
    checked = json.loads((run['report'] / 'eval_metrics.json').read_text())['smoke_targets']
    assert len(checked) == len(SMOKE_TARGETS), 'every target is checked by 40_eval'
    t = checked[i]
    assert t['value'] is not None, f"{t['stage']} {t['run']} {t['metric']} was not measured"
    said = (f"{t['says']}: {t['stage']} {t['run']} {t['metric'].upper()} {pct(t['value'])}, "
            f"the target is {t['op']} {pct(t['bound'])}")
    # an aim is hoped for, not required (90_plan): its effect is within the spread of a run's training, so a run that
    # misses it is reported (here and in the run's table), not failed
    if t.get('aim') and not t['met']: pytest.xfail(f'an aim, missed in this run: {said}')
    assert t['met'], said

@pytest.mark.parametrize('stage', ['stage1', 'stage2', 'stage3'])
def test_stage_checks(smoke_run, stage):
    "What `check_stage` found, beside the stage: it learned, changed exactly its freeze plan, had its effect."
    run = ran(smoke_run)
    found = json.loads((stage_dir(run['exp'], stage) / 'stage_checks.json').read_text())
    assert found['drop'] > 0, f"{stage}: {found['loss']} {found['first']} -> {found['last']} did not fall"
    expect = ['llm'] if stage == 'stage3' else sorted(FREEZE_PLANS[stage])
    assert found['changed'] == expect, f"{stage}: changed {found['changed']}, the freeze plan trains {expect}"
    assert found['ran']['epochs'] >= 1 and found['ran']['checkpoints'] >= 1, found['ran']
    c, eff = STAGE_CHECKS[stage], found['effect']
    for m in c['lower']:
        before, after = eff[m]
        assert after < before, f'{stage}: dev {m.upper()} did not fall ({before} -> {after} %)'
    for m in c['keep']:
        before, after = eff[m]
        assert after <= before + 100 * c['slack'], f'{stage}: dev {m.upper()} rose {before} -> {after} %'
    if stage == 'stage3':   # the merged LoRA: the final model's LLM is base + B A, and stock funasr decodes it as we do
        fin = found['final']
        assert not fin['llm']['differ'] and fin['llm']['adapted'] > 0, fin['llm']
        for d in fin['decodes']:
            assert d['ours'] and d['stock'] == d['ours'], d

def test_pointers_and_report(smoke_run):
    "The stages' pointers name checkpoints that exist; the run's README carries the targets' table."
    run = ran(smoke_run)
    for stage in ('stage1', 'stage2', 'stage3'):
        ptr = pointer_path(run['exp'], stage)
        assert ptr.exists() and Path(ptr.read_text().strip()).exists(), f'{stage}: {ptr}'
    assert 'what the model organism must show' in (run['report'] / 'README.md').read_text()

def test_the_terminal_carries_only_the_runs_own_lines(smoke_run):
    "What fa8k-run printed (stdout and stderr): its step lines and its end; no kernel log, warning or traceback."
    run = ran(smoke_run)
    if run['logs'] is None: pytest.skip('FA8K_SMOKE_RUN: a run made elsewhere, whose terminal was not kept')
    said = [l for f in ('stdout', 'stderr') for l in (run['logs'] / f).read_text().splitlines()]
    others = [l for l in said if not l.startswith('== ')]
    assert said and not others, f'fa8k-run printed {len(others)} lines not its own, the first: {others[:3]}'
