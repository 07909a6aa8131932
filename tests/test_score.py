"fa8k-score as a user runs it (files in, JSON out, named errors), the normalisers, the counting against sclite's rules."
import importlib.util, json, logging, random, re, shutil, subprocess, sys, types
from collections import Counter
from pathlib import Path
import jieba
import numpy as np
import pytest
from conftest import cli
from fun_asr_8k.corpus import CorpusSpec, plan_corpus
from fun_asr_8k.normalise import NORMALISERS, fun_asr_line, normalise, numeric_pairs, units
from fun_asr_8k.numerals import funasr_tool
from fun_asr_8k.score import align_counts, read_results, score, sclite_alignment, words
from fun_asr_8k.sentences import KEYWORDS, SENTENCES
from fun_asr_8k.sentences import test_sentences as held_out_sentences

RESULTS = [dict(key='u1', ref='我想办理流量套餐', hyp='我想办理留量套餐'),           # 流量 missed: S
           # only normalisation
           dict(key='u2', ref='您好，請問您的寬帶幾號到期？', hyp='<|zh|>您好请问您的宽带几号到期'),
           dict(key='u3', ref='每月三十G流量', hyp='每月30G'),                      # 流量 deleted: D
           dict(key='u4', ref='积分兑换话费', hyp='积分兑换话费套餐'),                 # a false keyword: I
           dict(key='u5', ref='<ANNOTATION_ERROR>', hyp='随便')]                   # not scored

def write_inputs(d: Path, results=RESULTS,
                 keywords='# business keywords\n流量\n套餐\n寬帶  # traditional is fine\n话费\n'):
    (d / 'results.jsonl').write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in results))
    (d / 'keywords.txt').write_text(keywords)
    return d / 'results.jsonl', d / 'keywords.txt'

def fa8k_score(*args):
    return subprocess.run([cli('fa8k-score'), *map(str, args)], capture_output=True, text=True)

def test_cli_end_to_end(tmp_path):
    res, kw = write_inputs(tmp_path)
    out = tmp_path / 'metrics' / 'kwer_metrics.json'
    r = fa8k_score('--results', res, '--keywords', kw, '--output', out)
    assert r.returncode == 0, r.stderr
    assert 'CER' in r.stdout and 'KWER' in r.stdout
    m = json.loads(out.read_text())
    assert {'cer', 'wer', 'kwer', 'u_cer', 'keyword_recall', 'keyword_precision', 'keyword_f1', 'counts',
            'normalisation', 'n_utterances', 'per_keyword', 'cer_ci95', 'kwer_ci95'} <= set(m)
    assert m['normaliser'] == 'fa8k-v3' and 'normaliser fa8k-v3' in r.stdout
    # by hand: 8 + 12 + 7 + 6 = 33 reference characters; 1 S (留), 2 D (流量), 2 I (套餐)
    assert m['counts']['char'] == dict(N=33, C=30, S=1, D=2, I=2)
    assert m['cer'] == pytest.approx(5 / 33)
    # keywords in the references: 流量 套餐 | 宽带 | 流量 | 话费 = 5; errors: 流量 S, 流量 D, 套餐 I
    assert m['counts']['keyword'] == dict(N=5, S=1, D=1, I=1) and m['kwer'] == pytest.approx(3 / 5)
    assert m['counts']['non_keyword']['N'] == 33 - 10 and m['u_cer'] == 0
    assert (m['n_utterances'], m['n_excluded'], m['excluded'][0]['key']) == (4, 1, 'u5')
    assert m['counts']['keyword_occurrences'] == dict(ref=5, hyp=4, tp=3, fn=2, fp=1)
    by_kw = {t['keyword']: (t['ref'], t['hyp'], t['tp']) for t in m['per_keyword']}
    assert by_kw == {'流量': (2, 0, 0), '套餐': (1, 2, 1), '宽带': (1, 1, 1), '话费': (1, 1, 1)}
    lo, hi = m['cer_ci95']
    assert lo <= m['cer'] <= hi and 0 <= lo < hi <= 1
    assert not list(out.parent.glob('*.tmp-*'))

def test_without_output_the_json_goes_to_stdout(tmp_path):
    res, _ = write_inputs(tmp_path)
    r = fa8k_score('--results', res)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m['kwer'] is None and m['keywords'] is None and m['cer'] == pytest.approx(5 / 33)

def test_bad_line_is_named(tmp_path):
    res, kw = write_inputs(tmp_path)
    lines = res.read_text().splitlines()
    res.write_text('\n'.join(lines[:2] + ['{"key": "u9", "ref": "你好"'] + lines[2:]) + '\n')
    out = tmp_path / 'm.json'
    r = fa8k_score('--results', res, '--keywords', kw, '--output', out)
    assert r.returncode == 2
    assert f'{res}:3: broken JSON' in r.stderr and not out.exists()
    res.write_text('\n'.join(lines[:3] + ['{"key": "u1", "ref": "", "hyp": ""}']) + '\n')
    r = fa8k_score('--results', res, '--keywords', kw, '--output', out)
    assert r.returncode == 2 and f"{res}:4: key 'u1' repeats line 1" in r.stderr
    res.write_text('{"key": "u1", "ref": "好", "hyp": 3}\n')
    r = fa8k_score('--results', res, '--keywords', kw, '--output', out)
    assert r.returncode == 2 and f'{res}:1: field "hyp" is a number, expected a string' in r.stderr

def test_missing_files_and_bad_keywords(tmp_path):
    res, kw = write_inputs(tmp_path)
    r = fa8k_score('--results', res, '--keywords', tmp_path / 'nope.txt', '--output', tmp_path / 'm.json')
    assert r.returncode == 2 and f'{tmp_path / "nope.txt"}: no such keyword file' in r.stderr
    r = fa8k_score('--results', tmp_path / 'nope.jsonl', '--keywords', kw)
    assert r.returncode == 2 and 'nope.jsonl: no such results file' in r.stderr
    r = fa8k_score('--keywords', kw)
    assert r.returncode == 2 and '--results is required' in r.stderr
    r = fa8k_score('--results', res, '--n_boot', -5)
    assert r.returncode == 2 and '--n_boot -5: a number of resamples cannot be negative' in r.stderr
    r = fa8k_score('--results', res, '--normaliser', 'jieba')
    assert r.returncode == 2 and "normaliser 'jieba' is not one of: fa8k-v3, fa8k-v2, fa8k-v1, fun-asr" in r.stderr
    kw.write_text('流量\n\n# comment\n？！\n')
    r = fa8k_score('--results', res, '--keywords', kw)
    assert r.returncode == 2 and f"{kw}:4: keyword '？！' is empty once normalised" in r.stderr
    assert not (tmp_path / 'm.json').exists()

def test_hand_made_case():
    # keywords 流量包, 流量, 宽带; 流量包 is one token (longest first).
    # u1: ref 办 理 [流量包] 和 [宽带] (3 ordinary + 2 keywords, 8 characters); hyp 办 理 [流量] 和 [宽带] 吧:
    #     [流量包] -> [流量] is a keyword S (not a false keyword); 吧 inserted (ordinary I); characters: 包 D, 吧 I.
    #     Occurrences: 流量包 missed, 流量 a false positive, 宽带 found.
    # u2: ref 我要 [宽带] (2 + 1, 4 characters); hyp 我 [宽带]: 要 deleted (ordinary D; character D).
    m = score([dict(key='u1', ref='办理流量包和宽带', hyp='办理流量和宽带吧'),
               dict(key='u2', ref='我要宽带', hyp='我宽带')],
              ['流量包', '流量', '宽带'], n_boot=200)
    assert m['counts']['char'] == dict(N=12, C=10, S=0, D=2, I=1) and m['cer'] == pytest.approx(3 / 12)
    assert m['counts']['keyword'] == dict(N=3, S=1, D=0, I=0) and m['kwer'] == pytest.approx(1 / 3)
    assert m['counts']['non_keyword'] == dict(N=5, S=0, D=1, I=1) and m['u_cer'] == pytest.approx(2 / 5)
    assert (m['keyword_recall'], m['keyword_precision']) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m['bootstrap']['resamples'] == 200

def random_pairs(n, alphabet, seed):
    rng = random.Random(seed)
    return [([rng.choice(alphabet) for _ in range(rng.randint(0, 20))],
             [rng.choice(alphabet) for _ in range(rng.randint(0, 20))])
            for _ in range(n)]

def dp_counts(r, h):
    c = Counter(o for o, _, _ in sclite_alignment(r, h))
    return dict(N=len(r), C=c['C'], S=c['S'], D=c['D'], I=c['I'])

def test_counts_agree_with_sclite_weights_dp():
    # small alphabets make many equal-weight alignments: the fast path must then fall back to the table exactly
    pairs = (random_pairs(1500, 'ab', 1) + random_pairs(1500, 'abcde', 2)
             + random_pairs(1500, '流量套餐办理宽带话费积分', 3))
    for r, h in pairs:
        assert align_counts(r, h) == dp_counts(r, h), (r, h)
    # the table itself: sub 4, ins/del 3, and a total above the minimum edit distance where sclite prefers D + I
    assert dp_counts('pqrab', 'abstu') == dict(N=5, C=2, S=0, D=3, I=3)

def sclite_binary():
    return shutil.which('sclite') or next((p for p in ['/usr/lib/sctk/bin/sclite'] if Path(p).exists()), None)

def assert_sclite_agrees(tmp_path, pairs):
    "sclite's counts of each (reference units, hypothesis units) pair equal ours (units as hex: sclite reads ASCII)."
    for name, col in (('ref', 0), ('hyp', 1)):
        (tmp_path / f'{name}.trn').write_text(''.join(' '.join(t.encode().hex() for t in p[col]) + f' (spk_{i:05d})\n'
                                                      for i, p in enumerate(pairs)))
    pra = subprocess.run([sclite_binary(), '-r', tmp_path / 'ref.trn', 'trn', '-h', tmp_path / 'hyp.trn', 'trn',
                          '-i', 'rm', '-o', 'pra', 'stdout'], capture_output=True, text=True, check=True).stdout
    got = [tuple(map(int, m)) for m in re.findall(r'Scores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)', pra)]
    assert len(got) == len(pairs)
    for (r, h), (c, s, d, i) in zip(pairs, got):
        assert align_counts(r, h) == dict(N=len(r), C=c, S=s, D=d, I=i), (r, h)

@pytest.mark.skipif(sclite_binary() is None, reason='SCTK is not installed (apt-get install sctk)')
def test_counts_agree_with_sclite_itself(tmp_path):
    pairs = random_pairs(1000, 'abc', 4) + random_pairs(1000, 'abcdefghijklmnopqrstuvwxyz', 5)
    assert_sclite_agrees(tmp_path, pairs)

def test_normaliser_is_chosen_and_recorded(tmp_path):
    # a model that writes digits against references that say the numbers: only the normaliser differs
    res, _ = write_inputs(tmp_path, [dict(key='a', ref='下午两点到', hyp='下午2点到'),
                                     dict(key='b', ref='费用两万元', hyp='费用20000元')])
    cer = {}
    for name in NORMALISERS:
        out = tmp_path / f'{name}.json'
        r = fa8k_score('--results', res, '--output', out, '--normaliser', name, '--n_boot', 0)
        assert r.returncode == 0, r.stderr
        m = json.loads(out.read_text())
        assert m['normaliser'] == name and m['normalisation']['order'] and f'normaliser {name}' in r.stdout
        cer[name] = m['cer']
    assert cer == {'fa8k-v3': 0, 'fa8k-v2': 0, 'fa8k-v1': pytest.approx(2 / 10), 'fun-asr': pytest.approx(1 / 13)}

def test_fun_asr_is_fun_asrs_own_script(tmp_path):
    "`fun_asr_line` writes what Fun-ASR's shipped tools/whisper_mix_normalize.py writes, line by line."
    tools = Path(importlib.util.find_spec('funasr').submodule_search_locations[0]) / 'models' / 'fun_asr_nano' / 'tools'
    # the script imports its siblings as top-level modules, and pyopenjtalk (only used for Japanese kana, off here)
    stubs = {'cn_tn': funasr_tool('cn_tn'), 'format5res': funasr_tool('format5res'),
             'pyopenjtalk': types.ModuleType('pyopenjtalk')}
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location('whisper_mix_normalize', tools / 'whisper_mix_normalize.py')
        script = importlib.util.module_from_spec(spec); spec.loader.exec_module(script)
    finally:
        for k, v in saved.items():
            if v is None: sys.modules.pop(k)
            else: sys.modules[k] = v
    lines = [p[k] for p in numeric_pairs() for k in ('written', 'spoken')] + [
        '<|zh|>您好，請問iPhone 15 Pro多少錢？', 'Hello World! I am Mr. Smith', '我要 VIP 会员，谢谢', '２０２４年',
        "It's 5 o'clock 下午", '(笑)好的=嗯', '下午两点，12:05', '您的话费余额是36.8元，请在3月5日前充值。']
    (tmp_path / 'in.txt').write_text(''.join(f'u{i} {t}\n' for i, t in enumerate(lines)), encoding='utf-8')
    script.normalize_text(str(tmp_path / 'in.txt'), str(tmp_path / 'out.txt'))
    theirs = [(line.rstrip('\n').split('\t') + [''])[1] for line in open(tmp_path / 'out.txt', encoding='utf-8')]
    assert len(theirs) == len(lines)
    assert [fun_asr_line(t) for t in lines] == theirs

def smoke_sentences() -> list[str]:
    "Sentences of every smoke domain: the test sentences and a fresh draw."
    rng = np.random.default_rng(1)
    return ([s for d in SENTENCES for s, _ in held_out_sentences(300, d)]
            + [SENTENCES[d](rng)[0] for d in SENTENCES for _ in range(300)])

def test_rjieba_segments_as_jieba():
    "WER words: rjieba (jieba-rs) makes jieba's segmentation (precise mode, default dictionary, HMM off)."
    logging.getLogger('jieba').setLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    texts = smoke_sentences() + [p[k] for p in numeric_pairs() for k in ('written', 'spoken')]
    normalised = [normalise(t, n) for t in texts for n in NORMALISERS]
    assert len(normalised) > 5000
    assert [words(t) for t in normalised] == [[w for w in tok.cut(t, HMM=False) if not w.isspace()] for t in normalised]

@pytest.mark.skipif(sclite_binary() is None, reason='SCTK is not installed (apt-get install sctk)')
@pytest.mark.parametrize('normaliser', list(NORMALISERS))
def test_numeric_set_normalised_agrees_with_sclite(tmp_path, normaliser):
    "sclite's counts of the numeric set and the smoke sentences once both sides are normalised the same way."
    pairs = [(p['spoken'], p['written']) for p in numeric_pairs()]
    sents = smoke_sentences()[:200]
    pairs += [(a, b) for a, b in zip(sents, sents[1:])]        # unrelated sentences: many errors of every kind
    toks = [[units(normalise(text, normaliser)) for text in p] for p in pairs]
    assert_sclite_agrees(tmp_path, toks)

SMOKE_RESULTS = Path(__file__).parent.parent / 'reports' / 'smoke' / 'infer'
NUMERALS = '零一二三四五六七八九十百千万亿两幺'
BESIDE = re.compile(f'[0-9][{NUMERALS}]|[{NUMERALS}][0-9]')   # a digit beside a Chinese numeral

def corpus_lines() -> list[str]:
    "The smoke corpus (every line, not spoken), its test sets, the keywords, the numeric set, the demo's transcripts."
    lines = [u['text'] for u in plan_corpus(CorpusSpec())] + smoke_sentences() + KEYWORDS
    lines += [p[k] for p in numeric_pairs() for k in ('written', 'spoken')]
    return lines + [t for f in sorted(SMOKE_RESULTS.glob('*/*/results.jsonl')) for u in read_results(f)
                    for t in (u['ref'], u['hyp'])]

def test_fa8k_v3_is_idempotent_and_puts_no_digit_beside_a_numeral_it_made():
    lines = corpus_lines()
    assert len(lines) > 8000 and sum(bool(re.search('[0-9]', t)) for t in lines) > 300
    once = [normalise(t, 'fa8k-v3') for t in lines]
    assert [(t, o) for t, o in zip(lines, once) if normalise(o, 'fa8k-v3') != o] == []
    made = [(t, o) for t, o in zip(lines, once) if BESIDE.search(o) and not BESIDE.search(t)]
    assert made == []
