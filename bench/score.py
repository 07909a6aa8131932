"""Speed of the scorer (`fun_asr_8k.score`) against today's scorer and jiwer, on the same pairs, in one process.

The pairs (fixed seed): references of 8-30 characters drawn from a fixed set of common characters, 40 % of them with
one or two business keywords spliced in; hypotheses made from them by random edits (each character substituted
with probability 0.05, deleted 0.02, followed by an insertion 0.02), so CER is near the plan's 8-12 %. The text is
already normal (no punctuation, digits or traditional characters), so every method sees the same units.
Rows (utterances per second of process CPU time, best of --repeats after one warm-up on 1,000 pairs; the rows take
turns within each repeat, so a busy machine slows them alike; garbage collection is off while a row runs, as in
timeit):
  jiwer.process_characters       jiwer 4's character alignment and counts over the whole list (one call).
  jiwer.cer                      jiwer 4's CER over the whole list (one call).
  ours: align_counts             `align_counts(r, h)` per pair on the same strings: jiwer's counting, sclite's way.
  ours: CER with normalise       the same after `normalise` (fa8k-v3) of both sides (what CER costs in `score`).
  today: fa8k-score              TODAY'S SCORER, the baseline: `score_files` (what fa8k-score runs: read the results
                                 jsonl, score, write the metrics JSON) with normaliser fa8k-v1 and words from jieba
                                 (pure Python, as before rjieba), no keywords, 1000 bootstrap draws.
  ours: fa8k-score               the same with the default normaliser fa8k-v3 and words from rjieba.
  today: fa8k-score, keywords    today's scorer with the keyword file: KWER/U-CER and per-keyword counts too.
  ours: fa8k-score, keywords     ours with the keyword file.
  words: jieba                   jieba's segmentation (precise mode, HMM off) of every normalised ref and hyp.
  words: rjieba                  rjieba's (`score.words`) of the same texts.
  jiwer + rjieba: CER, WER       the CER and WER part of `score` done with jiwer: `normalise`, jiwer.process_characters,
                                 `words` of both sides, jiwer.process_words; no intervals.
  fa8k-v1 / v2 / v3: digits      `score` on --digit_pairs other pairs, 30 % of them holding a number as Fun-ASR writes
                                 it (a price, a time, a date, a phone number, a percentage) in both reference and
                                 hypothesis, with each normaliser: what reading numbers costs (each round draws new
                                 numbers, so a cache of readings does not help more than on real data).
"x jiwer" is the row's speed over jiwer.process_characters (>1: faster than jiwer); "x today" is over "today:
fa8k-score". The aims are printed, not asserted: "ours: fa8k-score" >= 3x "today: fa8k-score", and "fa8k-v3:
digits" >= 5x "fa8k-v2: digits" (the normaliser it replaces as the default). The check lines show that rjieba and
jieba segment every text alike, and that the error totals agree with jiwer's, pair by pair, except where sclite's
weights take a different alignment (see nbs/39_score.ipynb).
Run: python bench/score.py [--pairs 100000] [--digit_pairs 10000] [--repeats 3] [--json out.json]
"""
import argparse, contextlib, gc, json, logging, platform, random, sys, tempfile, time
from importlib.metadata import version
from pathlib import Path
import jieba, jiwer
import fun_asr_8k.score as S
from fun_asr_8k.normalise import normalise, units
from fun_asr_8k.score import align_counts, score, score_files, words

SEED = 0
CHARSET = ('的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心'
           '多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分'
           '将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因'
           '重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书'
           '比住员九笑性通目华报立马命张活难神数件安表原车')
KEYWORDS = ['流量', '套餐', '流量包', '宽带', '话费', '退订', '续费', '优惠', '积分', '营业厅', '月租', '来电显示',
            '彩铃', '合约机', '副卡', '携号转网', '提速', '光猫', '账单', '充值']
NUMBERS = ['{a}元', '{h}:{m:02d}', '{y}年{mo}月{d}日', '1{p}', '{a}.{b}%', '下午{h}点', '{a}个G', '第{a}名']
DIGIT_NORMALISERS = ('fa8k-v1', 'fa8k-v2', 'fa8k-v3')

def make_pairs(n: int, seed: int = SEED) -> list[dict]:
    "n (key, ref, hyp) pairs: random sentences with keywords spliced in, and random character edits of them."
    rng, out = random.Random(seed), []
    for i in range(n):
        ref = [rng.choice(CHARSET) for _ in range(rng.randint(8, 30))]
        if rng.random() < 0.4:
            for _ in range(rng.randint(1, 2)):
                at = rng.randint(0, len(ref)); ref[at:at] = rng.choice(KEYWORDS)
        hyp = []
        for c in ref:
            x = rng.random()
            if x < 0.05: hyp.append(rng.choice(CHARSET))
            elif x >= 0.07: hyp.append(c)
            if rng.random() < 0.02: hyp.append(rng.choice(CHARSET))
        out.append(dict(key=f'utt{i:05d}', ref=''.join(ref), hyp=''.join(hyp)))
    return out

def with_numbers(pairs: list[dict], seed: int) -> list[dict]:
    "The pairs, 30 % of them with one written number (random digits) put at the same place in reference and hypothesis."
    rng, out = random.Random(seed), []
    for p in pairs:
        if rng.random() < 0.3:
            num = rng.choice(NUMBERS).format(a=rng.randint(1, 99999), b=rng.randint(0, 9), h=rng.randint(0, 23),
                                             m=rng.randint(0, 59), y=rng.randint(1950, 2030), mo=rng.randint(1, 12),
                                             d=rng.randint(1, 28), p=rng.randint(10 ** 9, 10 ** 10 - 1))
            at = rng.randint(0, min(len(p['ref']), len(p['hyp'])))
            p = dict(p, ref=p['ref'][:at] + num + p['ref'][at:], hyp=p['hyp'][:at] + num + p['hyp'][at:])
        out.append(p)
    return out

logging.getLogger('jieba').setLevel(logging.WARNING)
_JIEBA = jieba.Tokenizer()

def jieba_words(text: str) -> list[str]:
    "Today's WER units: jieba's precise mode, HMM off, spaces dropped (what `score.words` did before rjieba)."
    return [w for w in _JIEBA.cut(text, HMM=False) if not w.isspace()]

@contextlib.contextmanager
def todays_words():
    "`score.words` is jieba's segmentation while inside: with normaliser fa8k-v1, today's scorer."
    ours, S.words = S.words, jieba_words
    try: yield
    finally: S.words = ours

def todays_score_files(*args, **kw):
    with todays_words(): return score_files(*args, normaliser='fa8k-v1', **kw)

def jiwer_cer_wer(refs: list[str], hyps: list[str]) -> tuple:
    "CER and WER of normalised text with jiwer, words from the same segmentation as `score`."
    r, h = [normalise(x) for x in refs], [normalise(x) for x in hyps]
    cer = jiwer.process_characters(r, h)
    rw, hw = [' '.join(words(x)) for x in r], [' '.join(words(x)) for x in h]
    keep = [i for i, x in enumerate(rw) if x]   # jiwer refuses empty references
    return cer, jiwer.process_words([rw[i] for i in keep], [hw[i] for i in keep])

def write_inputs(pairs: list[dict], folder: Path) -> tuple[Path, Path]:
    "A results jsonl of the pairs and the keyword file, as fa8k-score reads them."
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'results.jsonl').write_text(''.join(json.dumps(p, ensure_ascii=False) + '\n' for p in pairs))
    (folder / 'keywords.txt').write_text('\n'.join(KEYWORDS) + '\n')
    return folder / 'results.jsonl', folder / 'keywords.txt'

def rows_of(pairs: list[dict], digit_rounds, folder: Path) -> dict:
    "The timed rows, each a function of nothing, on these pairs."
    refs, hyps = [p['ref'] for p in pairs], [p['hyp'] for p in pairs]
    res, kw = write_inputs(pairs, folder)
    texts = [normalise(x) for x in refs + hyps]
    return {'jiwer.process_characters': lambda: jiwer.process_characters(refs, hyps),
            'jiwer.cer': lambda: jiwer.cer(refs, hyps),
            'ours: align_counts': lambda: [align_counts(r, h) for r, h in zip(refs, hyps)],
            'ours: CER with normalise': lambda: [align_counts(units(normalise(r)), units(normalise(h)))
                                                 for r, h in zip(refs, hyps)],
            'today: fa8k-score': lambda: todays_score_files(res, output=folder / 'today.json'),
            'ours: fa8k-score': lambda: score_files(res, output=folder / 'ours.json'),
            'today: fa8k-score, keywords': lambda: todays_score_files(res, kw, output=folder / 'today_kw.json'),
            'ours: fa8k-score, keywords': lambda: score_files(res, kw, output=folder / 'ours_kw.json'),
            'words: jieba': lambda: [jieba_words(t) for t in texts],
            'words: rjieba': lambda: [words(t) for t in texts],
            'jiwer + rjieba: CER, WER': lambda: jiwer_cer_wer(refs, hyps),
            **{f'{n}: digits': (lambda n=n: score(next(digit_rounds[n]), normaliser=n)) for n in DIGIT_NORMALISERS}}

def best_times(rows: dict, warm_up: dict, repeats: int) -> dict:
    "Best CPU time of each row over `repeats` rounds after a warm-up round; within a round the rows take turns."
    for fn in warm_up.values(): fn()
    runs = {name: [] for name in rows}
    for _ in range(repeats):
        for name, fn in rows.items():
            gc.collect(); gc.disable()   # as timeit does: a collection triggered by an earlier row is not charged here
            t0 = time.process_time(); fn(); runs[name].append(time.process_time() - t0)
            gc.enable()
    return {name: min(r) for name, r in runs.items()}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pairs', type=int, default=100000, help='number of synthetic pairs')
    ap.add_argument('--digit_pairs', type=int, default=10000, help='pairs of the two digits rows')
    ap.add_argument('--repeats', type=int, default=3, help='timed rounds (the best counts)')
    ap.add_argument('--json', help='also write the results here')
    a = ap.parse_args()
    pairs, base_digits = make_pairs(a.pairs), make_pairs(a.digit_pairs, SEED + 1)
    # each round of a digits row gets numbers of its own (the warm-up round too), the same for both normalisers
    digit_sets = [with_numbers(base_digits, SEED + 10 + i) for i in range(a.repeats)]
    small_sets = [with_numbers(base_digits[:1000], SEED + 9)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = rows_of(pairs, {n: iter(digit_sets) for n in DIGIT_NORMALISERS}, Path(tmp) / 'all')
        warm = rows_of(pairs[:1000], {n: iter(small_sets) for n in DIGIT_NORMALISERS}, Path(tmp) / 'warm')
        times = best_times(rows, warm, a.repeats)
    n_of = {name: a.digit_pairs if name.endswith('digits') else a.pairs for name in times}
    speed = {name: n_of[name] / t for name, t in times.items()}
    base, today = speed['jiwer.process_characters'], speed['today: fa8k-score']
    print(f'{a.pairs} pairs, {sum(len(p["ref"]) for p in pairs)} reference characters ({a.digit_pairs} in the digits '
          f'rows); python {platform.python_version()}, jiwer {version("jiwer")}, rapidfuzz {version("rapidfuzz")}, '
          f'jieba {version("jieba")}, rjieba {version("rjieba")}, wetext {version("wetext")}; best of {a.repeats}')
    print(f'{"method":30s} {"utt/s (CPU)":>12s} {"x jiwer":>8s} {"x today":>8s}')
    for name, v in speed.items(): print(f'{name:30s} {v:12.0f} {v / base:8.2f} {v / today:8.2f}')
    refs, hyps = [p['ref'] for p in pairs], [p['hyp'] for p in pairs]
    texts = [normalise(x) for x in refs + hyps]
    same = sum(words(t) == jieba_words(t) for t in texts)
    print(f'words: rjieba and jieba segment {same} of {len(texts)} normalised texts alike')
    ours = [align_counts(units(r), units(h)) for r, h in zip(refs, hyps)]
    theirs = jiwer.process_characters(refs, hyps)
    mine = sum(o['S'] + o['D'] + o['I'] for o in ours)
    per_pair = [jiwer.process_characters(r, h) for r, h in zip(refs, hyps)]
    differ = sum(o['S'] + o['D'] + o['I'] != j.substitutions + j.deletions + j.insertions
                 for o, j in zip(ours, per_pair))
    print(f'error totals: ours (sclite) {mine}, jiwer {theirs.substitutions + theirs.deletions + theirs.insertions}; '
          f'S/D/I ours {sum(o["S"] for o in ours)}/{sum(o["D"] for o in ours)}/{sum(o["I"] for o in ours)}, '
          f'jiwer {theirs.substitutions}/{theirs.deletions}/{theirs.insertions}; pairs whose totals differ: {differ}')
    x = speed['ours: align_counts'] / base
    print(f'aim: ours: align_counts >= 10x jiwer.process_characters: {x:.1f}x ({"met" if x >= 10 else "not met"})')
    x = speed['ours: fa8k-score'] / today
    print(f'aim: ours: fa8k-score (fa8k-v3) >= 3x today: fa8k-score (fa8k-v1 + jieba) on {a.pairs} utterances: '
          f'{x:.2f}x ({"met" if x >= 3 else "not met"})')
    x = speed['fa8k-v3: digits'] / speed['fa8k-v2: digits']
    print(f'aim: fa8k-v3: digits >= 5x fa8k-v2: digits on {a.digit_pairs} utterances, 30 % with a number: {x:.2f}x '
          f'({"met" if x >= 5 else "not met"})')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(pairs=a.pairs, digit_pairs=a.digit_pairs, repeats=a.repeats, seconds=times,
                           utt_per_s=speed), f, indent=1)

if __name__ == '__main__': sys.exit(main())
