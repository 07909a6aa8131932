("The full scale rehearsed on the CPU (FA8K_SLOW=1): the full-size stand-in release through fa8k-run 0 4 at full "
 "scale, every stage checked: sizes, stock funasr loading, the freeze plan, memory and time (20-40 min, 30 GB disk).")
import json, os, subprocess
import pytest
from conftest import cli

slow = pytest.mark.skipif(os.environ.get('FA8K_SLOW') != '1', reason='the full-size rehearsal: FA8K_SLOW=1')

@slow
def test_the_full_size_stand_in_goes_through_every_stage(tmp_path):
    r = subprocess.run([cli('fa8k-rehearse'), tmp_path / 'work', '--run_id', 'rehearsal', '--reports',
                        tmp_path / 'reports'], capture_output=True, text=True, cwd=tmp_path, timeout=4 * 3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads((tmp_path / 'reports' / 'rehearsal' / 'rehearsal.json').read_text())
    assert out['ok'] and [s['stage'] for s in out['stages']] == ['stage1', 'stage2', 'stage3']
    by = {s['stage']: s for s in out['stages']}
    assert by['stage1']['changed'] == ['audio_encoder'] and by['stage3']['changed'] == ['llm']
    assert by['stage2']['changed'] == ['audio_adaptor', 'ctc', 'ctc_decoder']
    assert all(s['stock']['model_class'] == 'FunASRNano' and s['stock']['ok'] for s in out['stages'])
    assert 800e6 < by['stage1']['total'] < 900e6 and 2e6 < by['stage3']['trainable'] < 3e6   # full size; LoRA q, v
    md = (tmp_path / 'reports' / 'rehearsal' / 'rehearsal.md').read_text()
    print(md)
    # what training did, read back (one pass an epoch, the LLM in every checkpoint, prompts as decoded, the final LLM)
    for part in ('epochs of one pass', "checkpoints holding the start's LLM", 'inputs trained as decoded',
                 "the release's training keys"):
        assert part in md, part
    assert '**NO**' not in md and '**none**' not in md, md
    mem = out['memory']   # every process of the run together, at once: it fits the 24 GiB machine it rehearses on
    assert 0 < mem['total_mb'] <= 18 * 1024, f"peak {mem['total_mb']:,} MB of all processes together: {mem['roles']}"
