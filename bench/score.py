"""Speed of the scorer (`fun_asr_8k.evaluate`) against jiwer, on the same synthetic Mandarin pairs, in one process.

The pairs (fixed seed): references of 8-30 characters drawn from a fixed set of common characters, 40 % of them with
one or two business keywords spliced in; hypotheses made from them by random edits (each character substituted
with probability 0.05, deleted 0.02, followed by an insertion 0.02), so CER is near the plan's 8-12 %. The text is
already normal (no punctuation, digits or traditional characters), so every method sees the same units.
Rows (utterances per second of process CPU time, best of --repeats after one warm-up; the rows take turns within
each repeat, so a busy machine slows them alike; garbage collection is off while a row runs, as in timeit):
  jiwer.process_characters   jiwer 4's character alignment and counts over the whole list (one call).
  jiwer.cer                  jiwer 4's CER over the whole list (one call).
  ours: align_counts         `align_counts(r, h)` per pair on the same strings: the counting jiwer does, sclite's way.
  ours: CER with normalise   the same after `normalise` of both sides (what CER costs in `score`).
  ours: score, no keywords   `score(pairs)`: normalise, CER, WER (jieba segmentation of both sides), 1000 bootstrap
                             draws.
  ours: score, keywords      `score(pairs, KEYWORDS)`: all of the above plus KWER/U-CER and per-keyword counts.
  jiwer + jieba: CER, WER    the CER and WER part of `score` done with jiwer: `normalise`, jiwer.process_characters,
                             `words` (jieba) of both sides, jiwer.process_words; no intervals. Compare with
                             "ours: score, no keywords": the same work, where both spend most of their time in jieba.
"x jiwer" is the row's speed over jiwer.process_characters (>1: faster than jiwer). The aim (>= 10x) is printed,
not asserted. The totals line shows that the error totals agree with jiwer's, pair by pair, except where sclite's
weights take a different alignment (see nbs/40_eval.ipynb).
Run: python bench/score.py [--pairs 10000] [--repeats 5] [--json out.json]
"""
import argparse, gc, json, platform, random, sys, time
from importlib.metadata import version
import jiwer
from fun_asr_8k.score import align_counts, normalise, score, units, words

SEED = 0
CHARSET = ('的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心'
           '多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分'
           '将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因'
           '重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书'
           '比住员九笑性通目华报立马命张活难神数件安表原车')
KEYWORDS = ['流量', '套餐', '流量包', '宽带', '话费', '退订', '续费', '优惠', '积分', '营业厅', '月租', '来电显示',
            '彩铃', '合约机', '副卡', '携号转网', '提速', '光猫', '账单', '充值']

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

def jiwer_cer_wer(refs: list[str], hyps: list[str]) -> tuple:
    "CER and WER of normalised text with jiwer, words from the same jieba segmentation as `score`."
    r, h = [normalise(x) for x in refs], [normalise(x) for x in hyps]
    cer = jiwer.process_characters(r, h)
    rw, hw = [' '.join(words(x)) for x in r], [' '.join(words(x)) for x in h]
    keep = [i for i, x in enumerate(rw) if x]   # jiwer refuses empty references
    return cer, jiwer.process_words([rw[i] for i in keep], [hw[i] for i in keep])

def best_times(fns: dict, repeats: int) -> dict:
    "Best CPU time of each fn() over `repeats` rounds after one warm-up; within a round the fns take turns."
    for fn in fns.values(): fn()
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect(); gc.disable()   # as timeit does: a collection triggered by an earlier row is not charged here
            t0 = time.process_time(); fn(); runs[name].append(time.process_time() - t0)
            gc.enable()
    return {name: min(r) for name, r in runs.items()}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pairs', type=int, default=10000, help='number of synthetic pairs')
    ap.add_argument('--repeats', type=int, default=5, help='timed rounds (the best counts)')
    ap.add_argument('--json', help='also write the results here')
    a = ap.parse_args()
    pairs = make_pairs(a.pairs)
    refs, hyps = [p['ref'] for p in pairs], [p['hyp'] for p in pairs]
    rows = {'jiwer.process_characters': lambda: jiwer.process_characters(refs, hyps),
            'jiwer.cer': lambda: jiwer.cer(refs, hyps),
            'ours: align_counts': lambda: [align_counts(r, h) for r, h in zip(refs, hyps)],
            'ours: CER with normalise': lambda: [align_counts(units(normalise(r)), units(normalise(h)))
                                                 for r, h in zip(refs, hyps)],
            'ours: score, no keywords': lambda: score(pairs),
            'ours: score, keywords': lambda: score(pairs, KEYWORDS),
            'jiwer + jieba: CER, WER': lambda: jiwer_cer_wer(refs, hyps)}
    times = best_times(rows, a.repeats)
    base = a.pairs / times['jiwer.process_characters']
    print(f'{a.pairs} pairs, {sum(map(len, refs))} reference characters; python {platform.python_version()}, '
          f'jiwer {version("jiwer")}, rapidfuzz {version("rapidfuzz")}, jieba {version("jieba")}; best of {a.repeats}')
    print(f'{"method":28s} {"utt/s (CPU)":>12s} {"x jiwer":>8s}')
    for name, t in times.items(): print(f'{name:28s} {a.pairs / t:12.0f} {a.pairs / t / base:8.2f}')
    ours = [align_counts(units(r), units(h)) for r, h in zip(refs, hyps)]
    theirs = jiwer.process_characters(refs, hyps)
    mine = sum(o['S'] + o['D'] + o['I'] for o in ours)
    per_pair = [jiwer.process_characters(r, h) for r, h in zip(refs, hyps)]
    differ = sum(o['S'] + o['D'] + o['I'] != j.substitutions + j.deletions + j.insertions
                 for o, j in zip(ours, per_pair))
    print(f'error totals: ours (sclite) {mine}, jiwer {theirs.substitutions + theirs.deletions + theirs.insertions}; '
          f'S/D/I ours {sum(o["S"] for o in ours)}/{sum(o["D"] for o in ours)}/{sum(o["I"] for o in ours)}, '
          f'jiwer {theirs.substitutions}/{theirs.deletions}/{theirs.insertions}; pairs whose totals differ: {differ}')
    print(f'aim: ours: align_counts >= 10x jiwer.process_characters: '
          f'{a.pairs / times["ours: align_counts"] / base:.1f}x '
          f'({"met" if a.pairs / times["ours: align_counts"] / base >= 10 else "not met"})')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(pairs=a.pairs, repeats=a.repeats, seconds=times,
                           utt_per_s={k: a.pairs / t for k, t in times.items()}), f, indent=1)

if __name__ == '__main__': sys.exit(main())
