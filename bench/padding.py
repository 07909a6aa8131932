"""Padding waste of funasr's own token batching on a WenetSpeech-like length mix, per token batch.

What it measures: utterance lengths are drawn from a length mix (below); each utterance gets the numbers the project's
formatted jsonl gives funasr (`speech_length` in 10 ms fbank frames, `text_length` in LLM tokens) and the shapes
funasr's FunASR dataset makes of it (LFR frames = ceil(frames / 6), the speech tokens spliced into the prompt
(`fake_token_len`), the LLM sequence = the ChatML prompt + speech tokens + transcript + <|im_end|>). funasr's OWN
batch sampler (`tables.batch_sampler_classes['BatchSampler']` with batch_type token and sort_size > 0, which is
`CustomDistributedBufferDynamicBatchSampler`) then cuts one epoch into batches with the project's dataset_conf
(nbs/03_stage_config.ipynb `funasr_config`: batch_size = max_token_length = batch tokens, batch_size_token_max = 4x,
sort_size 1024, shuffle; batch_size_sample_max is not set there, so funasr's default 200 holds: at most 199
utterances a batch), and the FunASR dataset's collator rule (drop the last utterance while utterances x padded LLM
length > batch_size_token_max) is applied. One GPU (funasr multiplies sort_size by the number of GPUs).

Printed per token batch: batches per epoch, utterances per batch (mean; share of batches stopped by the 199 cap),
audio seconds per batch, how full the token budget is (sum of the utterances' tokens / batch tokens: funasr budgets
the longest utterance x utterances), the padded share of the encoder's input (LFR frames: batch x longest minus real,
over batch x longest) and of the LLM's sequence, and the utterances the sampler drops (longer than the batch). With
--sample_max N a second table shows the same batching with the utterance cap raised to N (what a batch larger than
the cap x the typical utterance needs: `dataset_conf.batch_size_sample_max`), and a third one the batching of
`fun_asr_8k.plan.token_batching`: above the plan's 8192 tokens, in addition, the sort buffer grown with the batch
(sort_size x batch / 8192: as many batches a buffer as the plan's batch has; a buffer of only a few batches leaves a
part-filled batch at its end and spreads each batch over a wider length range).

Length mixes (--mix):
  wenet_m  (default) log-normal seconds with median 2.0 s and sigma 0.55 (ln s), kept within 1-20 s: a fit to the
           duration statistics of WenetSpeech's M subset (the plan's train_M) that icefall prints in
           egs/wenetspeech/ASR/local/display_manifest_statistics.py (median 2.0 s, quartiles 1.4 / 2.9 s, 99 % 8.0 s);
           the 1 s floor and 20 s ceiling are the brief's range (they drop the ~10 % under 1 s; mean ~2.7 s).
  uniform  uniform 1-20 s: a wide, flat mix (mean 10.5 s, the 10 s utterance of the step bench) for contrast.
Transcripts: --tokens_per_s (default 4) LLM tokens a second x U(0.7, 1.3) (Mandarin at ~4-5 characters a second,
Qwen3 about one token a character: an upper bound).

Run: python bench/padding.py [--batch_tokens 4096,8192,16384,32768,65536,131072] [--mix wenet_m|uniform]
                             [--utts 100000] [--sort_size 1024] [--sample_max 100000] [--seed 0] [--json out.json]
Default run: about 10-20 s on one core. No GPU.
"""
import argparse, json, math, time
import numpy as np

SR = 16000
PROMPT_BEFORE, PROMPT_AFTER = 18, 5   # Qwen3 tokens of the ChatML text before / after the speech slots
MIXES = {
    'wenet_m': dict(kind='lognormal', median=2.0, sigma=0.55, lo=1.0, hi=20.0,
                    about='log-normal, median 2.0 s, sigma 0.55, within 1-20 s (fit to WenetSpeech M)'),
    'uniform': dict(kind='uniform', lo=1.0, hi=20.0, about='uniform 1-20 s')}


def draw_seconds(mix: str, n: int, seed: int = 0) -> np.ndarray:
    "`n` utterance lengths in seconds from a length mix (MIXES), rounded to 10 ms."
    m, rng = MIXES[mix], np.random.default_rng(seed)
    if m['kind'] == 'uniform': s = rng.uniform(m['lo'], m['hi'], n)
    else:
        s = np.empty(0)
        while len(s) < n:   # truncate by drawing again: the shape inside the range is the fit's
            d = rng.lognormal(math.log(m['median']), m['sigma'], 2 * n)
            s = np.concatenate([s, d[(d >= m['lo']) & (d <= m['hi'])]])
        s = s[:n]
    return np.round(s, 2)


def fake_token_len(lfr: np.ndarray) -> np.ndarray:
    "funasr's speech tokens in the prompt for `lfr` LFR frames (the FunASR dataset's formula, about lfr / 8)."
    o = 1 + (lfr - 3 + 2) // 2
    o = 1 + (o - 3 + 2) // 2
    return (o - 1) // 2 + 1


def utterance_shapes(seconds: np.ndarray, tokens_per_s: float = 4.0, seed: int = 0, jitter: float = 0.3) -> dict:
    "Per utterance: samples, fbank frames (speech_length), LFR frames, speech tokens, text and LLM length, source_len."
    rng = np.random.default_rng([seed, 1])
    samples = np.round(seconds * SR).astype(np.int64)
    frames = 1 + (samples - 400) // 160
    lfr = -(-frames // 6)
    fake = fake_token_len(lfr)
    rate = tokens_per_s * rng.uniform(1 - jitter, 1 + jitter, len(seconds))
    text = np.maximum(1, np.round(seconds * rate)).astype(np.int64)
    llm = PROMPT_BEFORE + fake + PROMPT_AFTER + text + 1
    return dict(seconds=seconds, samples=samples, frames=frames, lfr=lfr, fake=fake, text=text, llm=llm,
                source_len=frames + text)


class LengthsOnly:
    "What funasr's batch samplers read of a dataset: its length and each item's source_len."
    def __init__(self, source_len): self.source_len = [int(x) for x in source_len]
    def __len__(self): return len(self.source_len)
    def get_source_len(self, idx): return self.source_len[idx]


def funasr_batches(shapes: dict, batch_tokens: int, sort_size: int = 1024, sample_max: int = 200,
                   epoch: int = 0) -> list[list[int]]:
    "One epoch of funasr's token batches (its BatchSampler + the FunASR collator's b x t cap), as index lists."
    import logging
    from funasr.register import tables
    import funasr.datasets.audio_datasets.samplers  # noqa: F401  (registers BatchSampler)
    logging.disable(logging.INFO)
    conf = dict(batch_type='token', batch_size=batch_tokens, max_token_length=batch_tokens,
                batch_size_token_max=4 * batch_tokens, sort_size=sort_size, shuffle=True, is_training=True,
                batch_size_sample_max=sample_max, num_workers=0)
    sampler = tables.batch_sampler_classes['BatchSampler'](LengthsOnly(shapes['source_len']), **conf)['batch_sampler']
    sampler.set_epoch(epoch)
    out = []
    for b in sampler:
        while len(b) > 1 and len(b) * max(shapes['llm'][i] for i in b) > 4 * batch_tokens: b = b[:-1]
        if b: out.append(b)
    return out


def padding_stats(shapes: dict, batches: list, batch_tokens: int, sample_max: int) -> dict:
    "Utterances, audio, budget fill and padded shares (encoder frames, LLM tokens) of a list of index batches."
    B = np.array([len(b) for b in batches])
    lfr_real = sum(int(shapes['lfr'][b].sum()) for b in batches)
    lfr_pad = sum(len(b) * int(shapes['lfr'][b].max()) for b in batches)
    llm_real = sum(int(shapes['llm'][b].sum()) for b in batches)
    llm_pad = sum(len(b) * int(shapes['llm'][b].max()) for b in batches)
    tokens = np.array([int(shapes['source_len'][b].sum()) for b in batches])
    audio = np.array([float(shapes['seconds'][b].sum()) for b in batches])
    used = int(B.sum())
    return dict(batch_tokens=batch_tokens, sample_max=sample_max, batches=len(batches), utts_mean=float(B.mean()),
                utts_max=int(B.max()), at_cap=float(np.mean(B >= sample_max - 1)), audio_s_mean=float(audio.mean()),
                tokens_mean=float(tokens.mean()), fill=float(tokens.mean() / batch_tokens),
                pad_encoder=1 - lfr_real / lfr_pad, pad_llm=1 - llm_real / llm_pad,
                dropped=1 - used / len(shapes['source_len']))


def sweep(mix: str, batch_tokens: list, utts: int, sort_size: int, sample_max: int, seed: int = 0,
          tokens_per_s: float = 4.0, grown: bool = False) -> list[dict]:
    "padding_stats of one epoch at each token batch (with `grown`: the batching of `plan.token_batching`)."
    from fun_asr_8k.plan import token_batching
    shapes = utterance_shapes(draw_seconds(mix, utts, seed), tokens_per_s, seed)
    rows = []
    for bt in batch_tokens:
        ss, cap = sort_size, sample_max
        if grown: ss, cap = (token_batching(bt)[k] for k in ('sort_size', 'batch_size_sample_max'))
        rows.append(dict(padding_stats(shapes, funasr_batches(shapes, bt, ss, cap, seed), bt, cap), sort_size=ss))
    return rows


def print_table(rows: list, title: str):
    print(title)
    head = (f"{'batch tok':>9} {'batches':>8} {'utts/b':>7} {'at cap':>7} {'audio s/b':>9} {'fill':>6} "
            f"{'pad enc':>8} {'pad LLM':>8} {'dropped':>8}")
    print(head); print('-' * len(head))
    for r in rows:
        print(f"{r['batch_tokens']:9d} {r['batches']:8d} {r['utts_mean']:7.1f} {100 * r['at_cap']:6.1f}% "
              f"{r['audio_s_mean']:9.1f} {100 * r['fill']:5.1f}% {100 * r['pad_encoder']:7.1f}% "
              f"{100 * r['pad_llm']:7.1f}% {100 * r['dropped']:7.2f}%")


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch_tokens', default='4096,8192,16384,32768,65536,131072')
    p.add_argument('--mix', choices=tuple(MIXES), default='wenet_m')
    p.add_argument('--utts', type=int, default=100000, help='utterances in the simulated epoch')
    p.add_argument('--sort_size', type=int, default=1024, help="funasr's sort buffer (the project's 1024)")
    p.add_argument('--sample_max', type=int, default=100000,
                   help='second table: the utterance cap raised to this (0: no second table)')
    p.add_argument('--tokens_per_s', type=float, default=4.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None)
    a = p.parse_args()
    try: bts = [int(x) for x in a.batch_tokens.split(',') if x.strip()]
    except ValueError: p.error(f'--batch_tokens {a.batch_tokens!r}: expected integers like 8192,32768')
    if not bts or min(bts) < 100 or a.utts < 1000: p.error('--batch_tokens >= 100 each, --utts >= 1000')
    t0 = time.perf_counter()
    s = utterance_shapes(draw_seconds(a.mix, a.utts, a.seed), a.tokens_per_s, a.seed)
    q = np.percentile(s['seconds'], [25, 50, 75, 99])
    print(f"length mix {a.mix}: {MIXES[a.mix]['about']}; {a.utts} utterances, {s['seconds'].sum() / 3600:.1f} h, "
          f"mean {s['seconds'].mean():.2f} s, quartiles {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} s, 99 % {q[3]:.2f} s; "
          f"{a.tokens_per_s:g} text tokens/s; funasr BatchSampler, sort_size {a.sort_size}, one epoch (seed {a.seed})")
    out = dict(mix=a.mix, about=MIXES[a.mix]['about'], utts=a.utts, sort_size=a.sort_size,
               seconds_mean=float(s['seconds'].mean()), seconds_quartiles=q.tolist(), tables={})
    out['tables']['funasr_default'] = sweep(a.mix, bts, a.utts, a.sort_size, 200, a.seed, a.tokens_per_s)
    print_table(out['tables']['funasr_default'], "\nthe project's dataset_conf (batch_size_sample_max: funasr's "
                "default 200, at most 199 utterances a batch)")
    if a.sample_max:
        out['tables']['sample_max'] = sweep(a.mix, bts, a.utts, a.sort_size, a.sample_max, a.seed, a.tokens_per_s)
        print_table(out['tables']['sample_max'], f'\nthe same with batch_size_sample_max {a.sample_max}')
    out['tables']['token_batching'] = sweep(a.mix, bts, a.utts, a.sort_size, 200, a.seed, a.tokens_per_s, grown=True)
    print_table(out['tables']['token_batching'], '\nfun_asr_8k.plan.token_batching: above 8192 tokens the sort buffer '
                'grown (1024 x batch / 8192) and no utterance cap')
    print("\nfill: the batch's tokens / batch tokens; pad enc / pad LLM: padded share of the encoder's LFR frames / "
          f"the LLM's sequence; at cap: batches stopped by the utterance cap. {time.perf_counter() - t0:.0f} s")
    if a.json:
        with open(a.json, 'w') as f: json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
