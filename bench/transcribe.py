"""Whole calls: which VAD finds the lines of a call, and how fast `fa8k-transcribe` transcribes calls.

Part `vad` (CPU): the dev long calls (`fun_asr_8k.corpus.make_long_calls(..., LongCallSpec(split='dev'))`: the dev set's
lines and speakers, never the test calls) through three VADs whose weights ship in their wheels: Silero VAD (the one
`fa8k-transcribe` uses; run two ways: its own loop, a model call a 32 ms window, and `fun_asr_8k.transcribe.
speech_probs`, each channel of a call cut into 30 s pieces run side by side in one batch), WebRTC's VAD
(webrtcvad-wheels, modes 1-3, its 10 ms decisions averaged over Silero's 32 ms frames) and TEN VAD (ten-vad; its
library needs libc++ from the system, the row says so where it cannot load). Every VAD's frame probabilities become
segments by the same rules (Silero's `get_speech_timestamps_from_probs`, `VadConfig`'s minimum speech and silence),
at several thresholds. Printed per row:
true lines found (half of it or more inside found segments) and missed, segments found and invented (less than half
of it a true line), segments that hold two lines or more (merged), the median start and end error of the segments that
are a line's best match, and the VAD's speed (channel seconds per CPU second, one thread). Then, for Silero at the
threshold `VadConfig` uses, the speech energy (`speech_energy_db`) of segments that are a true line and of invented
ones: the guard `MIN_SPEECH_DB` must lie between them.

Part `speed`: the smoke long calls (`exp_output/data/long_calls/calls.jsonl`, made by `fa8k-run`'s Stage 0) transcribed
end to end (reading, VAD, decoding, alignment) by `fun_asr_8k.transcribe.transcribe`, batch size swept, and, as the
baseline in the same run, by FunASR's own pipeline: `funasr.AutoModel(model=DIR, vad_model='silero-vad')` with
`generate(input=[each channel as a 16 kHz wav], batch_size_s=...)` (dither off, as `decode`), the same model and the
same VAD package, offline. Printed: calls per second, real-time factor (seconds of computing per second of call) and
the ratio to FunASR's pipeline. `--scale smoke` (default): the released tiny model on the CPU; `--scale full --device
cuda`: the full-size stand-in (`fa8k-make-full-model`: Fun-ASR-Nano-2512's architecture, 0.87 B parameters, random
weights, written once into --work, 3.5 GB) on a GPU: it writes up to its token budget on every segment, the slowest
case. `--dry_run` prints what would run and exits.

Run: python bench/transcribe.py --exp_output EXP [--part vad,speed] [--batches 1,4,16,32] [--scale smoke|full]
                                [--device cpu|cuda] [--work DIR] [--dry_run] [--json out.json]
A default run takes about 3 minutes on 2 cores (the dev calls are made once into --work).
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np

W = 512   # Silero's frame at 16 kHz
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def silero_probs(x, model):
    import torch
    model.reset_states()
    xs = torch.from_numpy(np.pad(x, (0, -len(x) % W)))
    with torch.no_grad():
        return [model(xs[i:i + W], 16000).item() for i in range(0, len(xs), W)]


def webrtc_probs(x, mode):
    import webrtcvad
    vad, pcm = webrtcvad.Vad(mode), (np.clip(np.pad(x, (0, -len(x) % W)), -1, 1) * 32767).astype('<i2')
    f = np.array([vad.is_speech(pcm[i:i + 160].tobytes(), 16000) for i in range(0, len(pcm) - 159, 160)], float)
    return [f[int(i * 3.2):int((i + 1) * 3.2) + 1].mean() for i in range(len(pcm) // W)]   # 10 ms onto 32 ms


def ten_probs(x):
    from ten_vad import TenVad
    vad, pcm = TenVad(256, 0.5), (np.clip(np.pad(x, (0, -len(x) % W)), -1, 1) * 32767).astype(np.int16)
    p = [vad.process(pcm[i:i + 256])[0] for i in range(0, len(pcm), 256)]
    return list(np.mean(np.array(p).reshape(-1, 2), 1))


def vad_part(corpus, work, res):
    from silero_vad.utils_vad import get_speech_timestamps_from_probs
    from fun_asr_8k.corpus import LongCallSpec, make_long_calls
    from fun_asr_8k.transcribe import (VadConfig, frame_db, match_segments, overlap, read_call, silero,
                                       speech_energy_db, speech_probs, speech_regions)
    import torch
    torch.set_num_threads(1)
    cfg = VadConfig()
    calls = [json.loads(line) for line in make_long_calls(corpus, work / 'dev_calls', LongCallSpec(split='dev'))
             .read_text().splitlines()]
    tracks, by_call = [], []
    for c in calls:
        xs, _ = read_call(c['source'])
        by_call.append(len(xs))
        tracks += [(x, [(g['start'], g['end']) for g in c['segments'] if g['speaker'] == s])
                   for x, s in zip(xs, c['channels'])]

    def per_call(x_list):   # fa8k-transcribe's way: a call's channels, cut in pieces, side by side
        out, i = [], 0
        for n in by_call: out += speech_probs(x_list[i:i + n]); i += n
        return out
    secs = sum(len(x) for x, _ in tracks) / 16000
    print(f'dev long calls: {len(calls)} calls, {secs:.0f} channel-seconds, {sum(len(t) for _, t in tracks)} lines')
    vads = {'silero, one call a window': lambda x: silero_probs(x, silero()), 'silero, pieces (fa8k)': None}
    vads.update({f'webrtc mode {m}': (lambda m: lambda x: webrtc_probs(x, m))(m) for m in (1, 2, 3)})
    vads['ten-vad'] = ten_probs
    print(f"{'VAD':26s}{'thr':>5s}{'found':>7s}{'missed':>7s}{'segments':>9s}{'invented':>9s}{'merged':>7s}"
          f"{'start ms':>9s}{'end ms':>7s}{'x real time':>12s}")
    for name, probs in vads.items():
        try:
            t = time.process_time()
            p = [list(q) for q in per_call([x for x, _ in tracks])] if probs is None else [probs(x) for x, _ in tracks]
            speed = secs / (time.process_time() - t)
        except (OSError, ImportError) as e:
            print(f'{name:26s} cannot run here: {e}'); res['vad'][name] = dict(error=str(e)); continue
        for thr in THRESHOLDS:
            tot, starts, ends = dict(found=0, missed=0, n=0, invented=0, merged=0), [], []
            for (x, true), pr in zip(tracks, p):
                ts = get_speech_timestamps_from_probs(pr, sampling_rate=16000, threshold=thr,
                                                      min_speech_duration_ms=int(1000 * cfg.min_speech_s),
                                                      min_silence_duration_ms=int(1000 * cfg.min_silence_s),
                                                      audio_length_samples=len(x), return_seconds=True)
                found = [(t['start'], t['end']) for t in ts]
                m = match_segments(true, found)
                tot.update(found=tot['found'] + m['found'], missed=tot['missed'] + m['missed'],
                           n=tot['n'] + len(found), invented=tot['invented'] + m['invented'],
                           merged=tot['merged'] + sum(sum(overlap(f, [g]) > 0.5 * (g[1] - g[0]) for g in true) > 1
                                                      for f in found))
                starts += [abs(found[j][0] - true[i][0]) for i, j in m['pairs']]
                ends += [abs(found[j][1] - true[i][1]) for i, j in m['pairs']]
            row = dict(tot, start_ms=round(1000 * float(np.median(starts))),
                       end_ms=round(1000 * float(np.median(ends))), x_real_time=round(speed))
            res['vad'].setdefault(name, {})[thr] = row
            print(f"{name:26s}{thr:5.2f}{row['found']:7d}{row['missed']:7d}{row['n']:9d}{row['invented']:9d}"
                  f"{row['merged']:7d}{row['start_ms']:9d}{row['end_ms']:7d}{row['x_real_time']:12d}")
    energy, regions = dict(line=[], invented=[]), []
    i = 0
    for n in by_call: regions += speech_regions([x for x, _ in tracks[i:i + n]], cfg); i += n
    for (x, true), regs in zip(tracks, regions):
        floor = float(np.percentile(frame_db(x), 10))
        for a, b in regs:
            kind = 'invented' if overlap((a, b), true) < 0.5 * (b - a) else 'line'
            energy[kind].append(round(speech_energy_db(x[int(a * 16000):int(b * 16000)], floor), 1))
    res['energy'] = energy
    print(f"speech energy above the channel's floor, Silero at {cfg.threshold}: lines {sorted(energy['line'])[:5]} "
          f"... (lowest), invented {sorted(energy['invented'])}")


def funasr_pipeline(model_dir, wavs, device, batch_size_s):
    "FunASR's own VAD + ASR pipeline on mono 16 kHz channel files: seconds taken."
    from funasr import AutoModel
    import fun_asr_8k.model  # noqa: F401  (the project's fbank in funasr's place, as in every other row)
    am = AutoModel(model=str(model_dir), vad_model='silero-vad', vad_kwargs=dict(max_single_segment_time=30000),
                   device=device, disable_update=True, frontend_conf=dict(dither=0.0), disable_pbar=True,
                   disable_log=True)
    t = time.perf_counter()
    am.generate(input=[str(w) for w in wavs], batch_size_s=batch_size_s)
    return time.perf_counter() - t


def speed_part(args, work, res):
    import soundfile as sf
    import torch
    from fun_asr_8k.channel import resample
    from fun_asr_8k.model import decodable, load_checkpoint, make_full_model
    from fun_asr_8k.plan import RELEASED_TINY
    from fun_asr_8k.transcribe import transcribe
    if args.device == 'cpu': torch.set_num_threads(1)
    calls_file = Path(args.exp_output) / 'data' / 'long_calls' / 'calls.jsonl'
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    audio_s = sum(c['seconds'] for c in calls)
    model = RELEASED_TINY if args.scale == 'smoke' else work / 'full_model'
    if args.scale == 'full' and not (model / 'model.pt').exists():
        print(f'making the full-size stand-in in {model} (3.5 GB, once)'); make_full_model(model, args.corpus)
    am = decodable(load_checkpoint(model, args.device))
    wavs = []
    for c in calls:   # FunASR's pipeline reads a file a channel (it mixes a stereo file into one)
        y, sr = sf.read(c['source'], dtype='float32', always_2d=True)
        for j in range(y.shape[1]):
            wavs.append(work / 'channels' / f"{c['key']}-{j}.wav"); wavs[-1].parent.mkdir(parents=True, exist_ok=True)
            sf.write(wavs[-1], resample(y[:, j], sr, 16000), 16000)
    base = funasr_pipeline(model, wavs, args.device, 300)
    res['speed'] = dict(calls=len(calls), audio_s=audio_s, model=str(model), device=args.device,
                        funasr=dict(seconds=round(base, 2), calls_per_s=round(len(calls) / base, 4),
                                    rtf=round(base / audio_s, 4)), ours={})
    print(f'{len(calls)} calls, {audio_s:.0f} s; model {model}, {args.device}')
    print(f"{'pipeline':34s}{'calls/s':>9s}{'RTF':>9s}{'x FunASR':>10s}")
    print(f"{'FunASR AutoModel + silero-vad':34s}{len(calls) / base:9.3f}{base / audio_s:9.4f}{1.0:10.2f}")
    for b in args.batches:
        out = Path(tempfile.mkdtemp(dir=work))
        t = time.perf_counter()
        s = transcribe(calls_file, model, out, None, batch=b, device=args.device, loader=lambda: am, progress=False)
        dt = time.perf_counter() - t
        res['speed']['ours'][b] = dict(seconds=round(dt, 2), rtf=round(dt / audio_s, 4), vad_s=s['vad_s'],
                                       decode_s=s['decode_s'], x_funasr=round(base / dt, 2))
        print(f"{'fa8k-transcribe, batch ' + str(b):34s}{len(calls) / dt:9.3f}{dt / audio_s:9.4f}{base / dt:10.2f}"
              f"   (VAD {s['vad_s']:.1f} s, decoding {s['decode_s']:.1f} s)")
        shutil.rmtree(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--exp_output', default='exp_output', help='a smoke run: its smoke_corpus and long calls')
    ap.add_argument('--part', default='vad,speed')
    ap.add_argument('--batches', default='1,4,16,32', help='segments per decoding call, swept')
    ap.add_argument('--scale', default='smoke', choices=('smoke', 'full'))
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--corpus', default=None, help='the smoke corpus (default EXP/smoke_corpus)')
    ap.add_argument('--work', default=None, help='where dev calls and the full-size stand-in go (default: a temp dir)')
    ap.add_argument('--dry_run', action='store_true')
    ap.add_argument('--json', default=None)
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(',')]
    args.corpus = Path(args.corpus or Path(args.exp_output) / 'smoke_corpus')
    work = Path(args.work or tempfile.mkdtemp(prefix='bench_transcribe_'))
    parts = args.part.split(',')
    if args.scale == 'full' and 'vad' in parts: parts.remove('vad')   # the VADs run on the CPU whatever the scale
    plan = dict(parts=parts, scale=args.scale, device=args.device, batches=args.batches, work=str(work),
                calls=str(Path(args.exp_output) / 'data' / 'long_calls' / 'calls.jsonl'), corpus=str(args.corpus),
                model='fun_asr_8k/released_tiny' if args.scale == 'smoke' else str(work / 'full_model'))
    print(json.dumps(plan, indent=1))
    if args.dry_run: return
    if args.device.startswith('cuda'):
        import torch
        if not torch.cuda.is_available(): sys.exit('error: --device cuda but torch sees no GPU')
    work.mkdir(parents=True, exist_ok=True)
    res = dict(plan=plan, vad={})
    if 'vad' in parts: vad_part(args.corpus, work, res)
    if 'speed' in parts: speed_part(args, work, res)
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1, default=str) + '\n')


if __name__ == '__main__':
    main()
