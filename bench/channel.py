"""Speed of the telephone channel (`fun_asr_8k.channel`) against the usual alternatives, per CPU core.

What it measures: real-time factor (RTF, seconds of audio processed per second of wall time) of ONE single-threaded
process (OMP/MKL/OpenBLAS threads pinned to 1 before numpy loads), on a fixed set of espeak-ng Mandarin utterances
held in memory at 16 kHz (fixed voices, texts and seeds, so every run sees the same audio):
  plan        `simulate(x, PRESETS['plan'])`: soxr HQ 16k->8k, G.711 mu-law, 300-3400 Hz Butterworth, 1-2 % of
              20 ms frames lost, 4-talker babble at 10-25 dB SNR, soxr HQ 8k->16k. The headline number.
  plan: ...   the same chain cut into its steps (same library calls), to show where the time goes.
  realistic   `simulate(x, PRESETS['realistic'])`: codec mix (G.711, AMR-NB, GSM, G.726, Opus via PyAV), PLC.
  sox         the plan steps as sox command lines, per utterance, temp file to temp file (3 sox processes:
              rate -v 8k + u-law; decode + sinc 300-3400; -m with a pre-made babble file at the right gain
              + rate -v 16k).
              sox has no frame loss: it is left out, which only favours sox. Timing covers the sox processes, not
              writing the input/babble files.
  lhotse      `lhotse.augmentation.Narrowband('mulaw', 16000, restore_orig_sr=True)` per utterance (resample, mu-law,
              resample back; no band-pass, babble or loss). Needs torchaudio; without it a marked stand-in module is
              used that holds torchaudio's mu_law_encoding/decoding formulas (the rest is lhotse's own code).
  audiomentations  Compose(BandPassFilter 300-3400 24 dB/oct, BitCrush 8 bit, AddGaussianSNR 10-25 dB) at 16 kHz.
Each method runs once to warm up, then --repeats times; the best (min) wall time counts. "cpu/wall" near 1.00 means
the process had its core to itself; well below 1 means the machine was busy and the numbers are noisy.
"x plan" is how many times longer a method takes than the plan chain (>1: the plan chain is faster).
Targets are reported, never asserted: the exit status is non-zero only if something crashed.
Run: python bench/channel.py [--utts 20] [--seconds 60] [--repeats 7] [--json out.json]
--seconds is a floor: each utterance joins whole sentences until it reaches seconds/utts, so the total comes out
above it (about 95 s of audio by default).
"""
import os
for _v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ[_v] = '1'
import argparse, importlib.machinery, json, math, platform, resource, subprocess, sys, tempfile, time, types
from importlib.metadata import version
import numpy as np, soundfile as sf
from fun_asr_8k import channel as ch

SEED, SR, NB = 0, ch.SR_WIDE, ch.SR_NARROW
TEXTS = ['今天天气很好，我们去公园散步吧。', '请问您的账户号码是多少？', '我想查询一下上个月的话费账单。',
         '您好，这里是客户服务中心，请问有什么可以帮您？', '这个套餐每个月有三十个G的流量。',
         '麻烦您再说一遍，我没有听清楚。', '我的信用卡昨天丢了，需要挂失。', '明天上午十点在会议室开会。',
         '您的快递已经送到小区门口了。', '请在听到提示音后留言。', '我们的营业时间是早上九点到晚上六点。',
         '这个问题我需要请示一下经理。', '您好，我想预约下周三的体检。', '转账金额是五千八百元，请确认。',
         '火车票可以在网上直接购买。', '请您保持电话畅通，我们稍后回电。', '这家餐厅的菜味道不错，价格也便宜。',
         '我家的宽带从昨天晚上开始就上不了网了。', '谢谢您的耐心等待，祝您生活愉快。',
         '退款会在三到五个工作日内退回原账户。']
VOICES = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f2', 'f3', 'f4', 'f5']

def build(n: int, seconds: float) -> dict:
    "n utterances of at least seconds/n s each: successive sentences joined, voice/pitch/speed fixed per utterance."
    rng, utts, j = np.random.default_rng(SEED), {}, 0
    for i in range(n):
        voice, pitch, speed, parts = VOICES[i % len(VOICES)], int(rng.integers(30, 71)), int(rng.integers(140, 181)), []
        while sum(map(len, parts)) < seconds / n * SR:
            parts.append(ch.speak(TEXTS[j % len(TEXTS)], voice, pitch, speed)); j += 1
        utts[f'utt{i:02d}'] = np.concatenate(parts)
    return utts

def timed(fn, repeats: int) -> dict:
    "Best wall time of fn() after one warm-up, with the CPU time (own + child processes) of that run."
    fn(); runs = []
    for _ in range(repeats):
        c0, k0, t0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        fn()
        t, k1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append((t, time.process_time() - c0 + (k1.ru_utime - k0.ru_utime) + (k1.ru_stime - k0.ru_stime)))
    t, cpu = min(runs)
    return dict(wall_s=t, cpu_s=cpu, walls=[round(w, 4) for w, _ in runs])

def plan_steps(utts, pool, cfg, repeats: int) -> dict:
    "Per-step best times of the plan chain, built from the same calls `simulate` makes."
    best = {}
    for r in range(repeats + 1):
        t = {}
        def lap(name, t0): now = time.perf_counter(); t[name] = t.get(name, 0.0) + now - t0; return now
        for key, x in utts.items():
            t0 = time.perf_counter(); d = ch.draw_settings(cfg, key, SEED)
            t0 = lap('seeds (draw_settings)', t0); y = ch.resample(x, SR, NB)
            t0 = lap('resample 16k->8k (soxr HQ)', t0); y = ch.to_float(ch.codec_roundtrip(ch.to_int16(y), d['codec']))
            t0 = lap('G.711 mu-law (int16, LUT, float)', t0); y = ch.bandpass(y, *cfg.bandpass_hz)
            t0 = lap('band-pass 300-3400', t0)
            y = ch.conceal(y, ch.lost_frames(math.ceil(len(y) / ch.FRAME), d['loss_rate'], d['loss_rng']),
                           cfg.concealment)
            t0 = lap('frame loss (zeros)', t0)
            talkers = pool.draw(d['babble_rng'], cfg.babble_talkers, key)
            noise = ch.babble([pool.audio[k] for k in talkers], len(y), d['babble_rng'])
            y = y + ch.noise_gain(y, noise, d['snr_db']) * noise
            t0 = lap('babble (4 talkers, mix at SNR)', t0)
            np.clip(ch.fit_length(ch.resample(y, NB, SR), len(x)), -1.0, 32767 / 32768).astype(np.float32)
            lap('resample 8k->16k (soxr HQ)', t0)
        # r == 0 is the warm-up
        if r: best = {k: min(v, best.get(k, math.inf)) for k, v in t.items()}
    return best

def sox_chain(utts, pool, cfg, tmp: str):
    "Write inputs and pre-scaled babble files (not timed); return the timed job: 3 sox processes per utterance."
    jobs = []
    for key, x in utts.items():
        d = ch.draw_settings(cfg, key, SEED)
        y = ch.bandpass(ch.to_float(ch.codec_roundtrip(ch.to_int16(ch.resample(x, SR, NB)), d['codec'])))
        noise = ch.babble([pool.audio[k] for k in pool.draw(d['babble_rng'], cfg.babble_talkers, key)], len(y),
                          d['babble_rng'])
        f = {s: f'{tmp}/{key}-{s}.wav' for s in ('in', 'ul', 'bp', 'babble', 'out')}
        sf.write(f['in'], x, SR, subtype='PCM_16')
        sf.write(f['babble'], ch.noise_gain(y, noise, d['snr_db']) * noise, NB, subtype='PCM_16')
        jobs.append([['sox', '-D', f['in'], '-e', 'u-law', '-b', '8', f['ul'], 'rate', '-v', '8k'],
                     ['sox', '-D', f['ul'], '-e', 'signed', '-b', '16', f['bp'], 'sinc', '300-3400'],
                     ['sox', '-D', '-m', '-v', '1', f['bp'], '-v', '1', f['babble'], f['out'], 'rate', '-v', '16k']])
    return lambda: [subprocess.run(c, check=True, capture_output=True) for job in jobs for c in job]

def lhotse_narrowband():
    "lhotse's Narrowband transform; (transform, note). Falls back to a torchaudio stand-in if torchaudio is missing."
    from lhotse.augmentation import Narrowband
    try: return Narrowband(codec='mulaw', source_sampling_rate=SR, restore_orig_sr=True), ''
    except ImportError as e: why = f'{type(e).__name__}: {e}'
    # torchaudio.functional.mu_law_encoding/decoding (quantization_channels=256), as lhotse calls them
    import torch
    def enc(x, mu=255.0):
        return ((torch.sign(x) * torch.log1p(mu * torch.abs(x)) / math.log1p(mu) + 1) / 2 * mu + 0.5).to(torch.int64)
    def dec(q, mu=255.0):
        x = q.float() / mu * 2 - 1.0; return torch.sign(x) * (torch.exp(torch.abs(x) * math.log1p(mu)) - 1.0) / mu
    ta = types.ModuleType('torchaudio'); ta.__version__ = '2.6.0+benchshim'
    ta.__spec__ = importlib.machinery.ModuleSpec('torchaudio', None)
    ta.transforms = types.SimpleNamespace(MuLawEncoding=lambda: enc, MuLawDecoding=lambda: dec)
    sys.modules['torchaudio'] = ta
    return Narrowband(codec='mulaw', source_sampling_rate=SR, restore_orig_sr=True), f'torchaudio stand-in ({why})'

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--utts', type=int, default=20); p.add_argument('--seconds', type=float, default=60.0)
    p.add_argument('--repeats', type=int, default=7); p.add_argument('--json', default=None)
    a = p.parse_args()
    vers = {m: version(m) for m in ('numpy', 'soxr', 'scipy', 'lhotse', 'audiomentations', 'torch', 'av')}
    sox_v = subprocess.run(['sox', '--version'], capture_output=True, text=True).stdout.strip().split()[-1]
    print(f"machine: nproc={os.cpu_count()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, "
          + ', '.join(f'{k} {v}' for k, v in vers.items()) + f', sox {sox_v}; load average {os.getloadavg()}')
    utts = build(a.utts, a.seconds)
    audio_s = sum(map(len, utts.values())) / SR
    pool = ch.BabblePool({k: ch.resample(x, SR, NB) for k, x in utts.items()})
    plan, real = ch.PRESETS['plan'], ch.PRESETS['realistic']
    print(f'audio: {len(utts)} utterances, {audio_s:.1f} s at 16 kHz; best of {a.repeats} after 1 warm-up; '
          'single process\n')
    rows, notes = [], {}
    def add(name, fn, note=''):
        try: r = timed(fn, a.repeats)
        except Exception as e:
            print(f'{name}: could not run: {type(e).__name__}: {e}'); notes[name] = f'failed: {e}'; return
        rows.append(dict(method=name, rtf=audio_s / r['wall_s'], **r, note=note))
    add('plan (ours)', lambda: [ch.simulate(x, plan, k, SEED, pool) for k, x in utts.items()])
    add('realistic (ours)', lambda: [ch.simulate(x, real, k, SEED, pool) for k, x in utts.items()], 'codec mix, PLC')
    with tempfile.TemporaryDirectory() as tmp:
        add('sox chain (3 processes/utt)', sox_chain(utts, pool, plan, tmp), 'no frame loss (sox has none)')
    try:
        nb, note = lhotse_narrowband()
        add('lhotse Narrowband(mulaw)', lambda: [nb(x[None], SR) for x in utts.values()],
            note or 'resample+mu-law only')
    except Exception as e: print(f'lhotse Narrowband: could not run: {type(e).__name__}: {e}'); notes['lhotse'] = str(e)
    try:
        import audiomentations as am
        aug = am.Compose([am.BandPassFilter(1850, 1850, 3100 / 1850, 3100 / 1850, 24, 24, p=1.0),
                          am.BitCrush(8, 8, p=1.0), am.AddGaussianSNR(10.0, 25.0, p=1.0)])
        add('audiomentations', lambda: [aug(x, SR) for x in utts.values()], 'band-pass+8 bit+noise, 16 kHz')
    except Exception as e:
        print(f'audiomentations: could not run: {type(e).__name__}: {e}'); notes['audiomentations'] = str(e)
    steps = plan_steps(utts, pool, plan, a.repeats)
    base = next((r['wall_s'] for r in rows if r['method'] == 'plan (ours)'), None)
    if base is not None:
        parts = [*steps.items(), ('rest of simulate (residual)', base - sum(steps.values()))]
        rows[1:1] = [dict(method=f'  plan: {n}', rtf=audio_s / t if t > 0 else None, wall_s=t, cpu_s=None,
                          note=f'{100 * t / base:.0f} % of plan') for n, t in parts]
    print(f"{'method':48s} {'x real time/core':>17s} {'x plan':>8s} {'cpu/wall':>9s}  note")
    for r in rows:
        ratio = f"{r['wall_s'] / base:8.2f}" if base else ' ' * 8
        cw = f"{r['cpu_s'] / r['wall_s']:9.2f}" if r.get('cpu_s') else ' ' * 9
        rtf = f"{r['rtf']:17.0f}" if r['rtf'] else f"{'-':>17s}"
        print(f"{r['method']:48s} {rtf} {ratio} {cw}  {r['note']}")
    by = {r['method']: r for r in rows}
    if base is not None: print(f"\nplan chain: {by['plan (ours)']['rtf']:.0f} x real time per core (target >= 3000x)")
    sox = by.get('sox chain (3 processes/utt)')
    if base is not None and sox: print(f"plan chain vs sox chain: {sox['wall_s'] / base:.1f} x (target >= 4x)")
    print(f'load average at the end: {os.getloadavg()}')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(versions=vers, sox=sox_v, nproc=os.cpu_count(), python=platform.python_version(),
                           audio_s=audio_s, utterances=len(utts), repeats=a.repeats, rows=rows, notes=notes),
                      f, ensure_ascii=False, indent=1)
    return 0 if base is not None and not notes else 1

if __name__ == '__main__':
    sys.exit(main())
