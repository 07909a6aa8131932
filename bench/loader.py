"""Data-loader throughput: funasr's FunASR dataset with fbank on the fly, N workers; the CPU cores a GPU needs.

What it measures: the loader funasr's train_ds builds for a stage (nbs/03_stage_config.ipynb `funasr_config`): dataset
`FunASR` (index_ds FunASR) over the project's formatted jsonl, with the model's frontend (`WavFrontend`: fbank 80 x
25/10 ms, LFR 7/6, CMVN) computing features on the fly, the tokenizer making the ChatML prompt, funasr's BatchSampler
(batch_type token, the token batch, sort_size 1024, at most 199 utterances) and the dataset's collator, in a
torch DataLoader with N worker processes (0: all in the main process), as train_ds runs it (pin_memory off: there is no
GPU in this measurement). Per worker count it iterates batches for --seconds (whole epochs over and over, a fresh
iterator each) and counts the audio in them (LFR frames x 60 ms).

Printed per worker count: batches and audio seconds per wall second ("audio x", what one GPU process would get), and
per CPU second ("audio s / CPU s": the audio delivered per second of CPU the main process and its workers used,
getrusage SELF + CHILDREN, so a busy shared machine changes it little). The cores one GPU needs for the loader to keep
up = the GPU's audio x real time / (audio s per CPU s), printed with its numbers for the GPU rates given
(--gpu_audio_x, or --gpu_json: JSON files of bench/train_step.py, whose stages' plan-batch and best rates are taken;
default: the 163x that GPU_NOTES measured at the plan batch and the 1,600x target of issue 18).

Data: --data JSONL (a formatted jsonl of Stage 0, e.g. exp_output/data/simulated_8k_telephone/train_formatted.jsonl)
or, by default, a synthetic corpus made here: --files wav files (16 kHz PCM_16, lengths from the WenetSpeech-M-like mix
of bench/padding.py, noise shaped like speech: a few formant-like resonances, syllable-rate on/off) in a temp folder
(in /dev/shm when there is one: the cost measured is CPU, not this machine's disk), listed --repeat times under
distinct keys in a jsonl of the project's own lines (`fun_asr_8k.manifest.chatml_line`, speech_length in fbank
frames, text_length in characters; transcripts from `fun_asr_8k.sentences`). The frontend and tokenizer are the
released tiny model's (`fun_asr_8k/released_tiny`: the same WavFrontend settings as Fun-ASR-Nano, a character
tokenizer instead of Qwen's BPE; tokenizing is a small part of the cost). The fbank backends, each measured in the same
run (--fbank, a comma list): `project` = `fun_asr_8k.model.kaldi_fbank`, what training uses (importing the project's
model module puts it in funasr's place); `knf` = funasr's own `funasr.utils.fbank.fbank` with kaldi-native-fbank (what
funasr uses without torchaudio, as on this machine and the GPU node); `torchaudio` = funasr's with torchaudio's
Kaldi fbank (only where torchaudio imports). "x knf" is a row's audio per CPU second over the knf row's with as many
workers.

Run: python bench/loader.py [--workers 0,1,2] [--seconds 8] [--data JSONL] [--files 200] [--repeat 20]
                            [--batch_tokens 8192] [--fbank project,knf[,torchaudio]] [--gpu_audio_x 163,1600]
                            [--gpu_json train_step.json] [--json out.json]
Default run: about 70 s on a 2-core machine. No GPU.
"""
import argparse, json, os, resource, shutil, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from padding import draw_seconds, utterance_shapes  # noqa: E402

SR = 16000


def speechlike(seconds: float, rng):
    "Noise through a few formant-like resonances, switched on and off at a syllable rate (content is irrelevant)."
    import numpy as np
    from scipy.signal import lfilter
    n = int(round(seconds * SR))
    x = rng.standard_normal(n)
    y = np.zeros(n)
    for f, bw in ((500, 80), (1500, 120), (2500, 160)):
        r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * f / SR
        y += lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)
    env = (np.sin(2 * np.pi * 4.0 * np.arange(n) / SR + rng.uniform(0, 6.28)) > -0.3).astype(float)
    y *= env
    return (0.3 * y / (np.abs(y).max() + 1e-9)).astype('float32')


def synth_corpus(work: Path, files: int, repeat: int, seed: int = 0) -> tuple[Path, dict]:
    "`files` wavs of the length mix and a formatted jsonl listing them `repeat` times under distinct keys."
    import numpy as np
    from fun_asr_8k.manifest import chatml_line, wav_bytes
    from fun_asr_8k.sentences import general_sentence
    rng = np.random.default_rng(seed)
    secs = draw_seconds('wenet_m', files, seed)
    shapes = utterance_shapes(secs)
    (work / 'wav').mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(secs):
        wav = work / 'wav' / f'u{i:05d}.wav'
        wav.write_bytes(wav_bytes(speechlike(float(s), rng), SR))
        text = ''
        while len(text) < max(2, round(4 * s)): text += general_sentence(rng)[0]
        text = text[:max(2, round(4 * s))]
        lines.append((str(wav), text, int(shapes['frames'][i])))
    jsonl = work / 'train_formatted.jsonl'
    with open(jsonl, 'w', encoding='utf-8') as f:
        for r in range(repeat):
            for i, (wav, text, frames) in enumerate(lines):
                d = chatml_line(f'u{i:05d}_r{r:03d}', wav, text, frames, len(text))
                f.write(json.dumps(d, ensure_ascii=False) + '\n')
    return jsonl, dict(files=files, repeat=repeat, lines=files * repeat, seconds_mean=float(secs.mean()),
                       hours=float(secs.sum()) * repeat / 3600)


FBANKS = ('project', 'knf', 'torchaudio')


def set_fbank_backend(which: str) -> str:
    "Make funasr's WavFrontend compute fbank with `which` (FBANKS); what it is, in words."
    import funasr.utils.fbank as fb
    from fun_asr_8k.model import funasr_fbank, kaldi_fbank
    if which == 'project':
        fb.fbank = kaldi_fbank
        return 'fun_asr_8k.model.kaldi_fbank'
    if which == 'torchaudio' and not fb._HAS_TORCHAUDIO:
        raise SystemExit('error: --fbank torchaudio: torchaudio does not import here')
    if which == 'knf':
        import kaldi_native_fbank
        fb._HAS_TORCHAUDIO, fb._knf = False, kaldi_native_fbank
    fb.fbank = funasr_fbank
    return f'funasr.utils.fbank ({"torchaudio" if which == "torchaudio" else "kaldi-native-fbank"})'


def make_dataset(jsonl: Path, batch_tokens: int):
    "funasr's FunASR dataset and BatchSampler arguments as train_ds makes them, with the released tiny model's parts."
    import logging
    from funasr.register import tables
    import funasr.datasets.fun_asr_datasets.datasets  # noqa: F401
    import funasr.datasets.audio_datasets.samplers  # noqa: F401
    import funasr.frontends.wav_frontend  # noqa: F401
    import funasr.tokenizer.hf_tokenizer  # noqa: F401
    from fun_asr_8k.model import model_config
    from fun_asr_8k.plan import RELEASED_TINY
    logging.disable(logging.WARNING)
    cfg = model_config(RELEASED_TINY)
    frontend = tables.frontend_classes[cfg['frontend']](**cfg['frontend_conf'])
    tokenizer = tables.tokenizer_classes[cfg['tokenizer']](**cfg['tokenizer_conf'])
    conf = dict(index_ds='FunASR', batch_sampler='BatchSampler', batch_type='token', batch_size=batch_tokens,
                max_token_length=batch_tokens, batch_size_token_max=4 * batch_tokens, sort_size=1024, shuffle=True)
    ds = tables.dataset_classes['FunASR'](str(jsonl), frontend=frontend, tokenizer=tokenizer, is_training=True, **conf)
    return ds, conf


def measure(ds, conf: dict, workers: int, seconds: float) -> dict:
    "Batches, audio and CPU of iterating the loader with `workers` workers for `seconds` (whole epochs)."
    import torch
    from funasr.register import tables
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    batches = utts = 0
    audio = first_t = 0.0
    audio_after_first = 0.0
    epoch = 0
    while time.perf_counter() - t0 < seconds:
        args = tables.batch_sampler_classes['BatchSampler'](ds, **conf, num_workers=workers)
        args.update(pin_memory=False, persistent_workers=False)
        if workers == 0: args.pop('prefetch_factor', None)
        args['batch_sampler'].set_epoch(epoch)
        dl = torch.utils.data.DataLoader(ds, collate_fn=ds.collator, **args)
        it = iter(dl)
        for b in it:
            a = float(b['speech_lengths'].sum()) * 0.06
            batches += 1; utts += len(b['item']); audio += a
            if first_t == 0.0: first_t = time.perf_counter()
            else: audio_after_first += a
            if time.perf_counter() - t0 >= seconds: break
        del it, dl            # ends the workers, so that their CPU time is counted
        epoch += 1
    wall = time.perf_counter() - t0
    self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_main = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    cpu_workers = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    steady = audio_after_first / max(time.perf_counter() - first_t, 1e-9) if first_t else 0.0
    return dict(workers=workers, wall_s=wall, epochs=epoch, batches=batches, utts=utts, audio_s=audio,
                audio_x=audio / wall, audio_x_steady=steady, batches_per_s=batches / wall,
                cpu_main_s=cpu_main, cpu_workers_s=cpu_workers,
                audio_per_cpu_s=audio / max(cpu_main + cpu_workers, 1e-9),
                first_batch_s=(first_t - t0) if first_t else None)


def gpu_rates(a) -> list[tuple[str, float]]:
    "The GPU audio x real time rates to size the loader for: (label, rate)."
    out = []
    for path in (a.gpu_json or '').split(','):
        if not path.strip(): continue
        for s, q in json.loads(Path(path).read_text()).get('summary', {}).items():
            out.append((f"{s} at batch {q['plan_tokens']}", q['plan_audio_x']))
            out.append((f"{s} best ({q['best_name']} at {q['best_tokens']})", q['best_audio_x']))
    if out: return out
    if a.gpu_audio_x:
        return [(f'GPU at {x}x real time', float(x)) for x in a.gpu_audio_x.split(',') if x.strip()]
    return [('stage 1, plan batch, one H200 (GPU_NOTES)', 163.0), ('issue 18 target for stage 1', 1600.0)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workers', default='0,1,2', help='DataLoader worker counts to measure')
    p.add_argument('--seconds', type=float, default=8.0, help='wall seconds of loading per worker count')
    p.add_argument('--data', default=None, help='a formatted jsonl (default: a synthetic corpus made here)')
    p.add_argument('--files', type=int, default=200, help='synthetic corpus: distinct wav files')
    p.add_argument('--repeat', type=int, default=20, help='synthetic corpus: times each file is listed')
    p.add_argument('--batch_tokens', type=int, default=8192)
    p.add_argument('--fbank', default='project,knf', help=f'fbank backends to measure, comma list of {FBANKS}')
    p.add_argument('--gpu_audio_x', default=None, help='GPU audio x real time rate(s) to size the loader for')
    p.add_argument('--gpu_json', default=None, help="bench/train_step.py's --json output(s), comma list: its rates")
    p.add_argument('--json', default=None)
    a = p.parse_args()
    try: workers = [int(w) for w in a.workers.split(',') if w.strip()]
    except ValueError: p.error(f'--workers {a.workers!r}: expected integers like 0,1,2')
    if not workers or min(workers) < 0 or a.seconds <= 0: p.error('--workers >= 0 each, --seconds > 0')
    fbanks = [f.strip() for f in a.fbank.split(',') if f.strip()]
    if not fbanks or set(fbanks) - set(FBANKS): p.error(f'--fbank {a.fbank!r}: a comma list of {FBANKS}')
    if a.data and not Path(a.data).is_file():
        print(f'error: --data {a.data}: no such file', file=sys.stderr); sys.exit(2)
    for f in (a.gpu_json or '').split(','):
        if f.strip() and not Path(f).is_file():
            print(f'error: --gpu_json {f}: no such file', file=sys.stderr); sys.exit(2)
    import torch
    torch.set_num_threads(1)    # the main process as one core (DataLoader workers run one thread each)
    t0 = time.perf_counter()
    base = Path('/dev/shm') if Path('/dev/shm').is_dir() else None
    work = Path(tempfile.mkdtemp(prefix='loader_bench_', dir=base))
    try:
        if a.data: jsonl, corpus = Path(a.data), dict(data=a.data)
        else: jsonl, corpus = synth_corpus(work, a.files, a.repeat)
        ds, conf = make_dataset(jsonl, a.batch_tokens)
        setup = time.perf_counter() - t0
        what = (f"{a.data}" if a.data else f"synthetic: {corpus['files']} wavs of the WenetSpeech-M-like mix (mean "
                f"{corpus['seconds_mean']:.2f} s) x {corpus['repeat']} = {corpus['lines']} lines, "
                f"{corpus['hours']:.2f} h, under {work}")
        print(f"loader: funasr FunASR dataset, WavFrontend, BatchSampler {a.batch_tokens} tokens; "
              f"{len(ds)} utterances ({what}); made in {setup:.1f} s; {os.cpu_count()} CPUs here")
        rows, backends = [], {}
        for fbank in fbanks:
            backends[fbank] = set_fbank_backend(fbank)
            print(f"fbank {fbank}: {backends[fbank]}")
            for w in workers:
                r = dict(measure(ds, conf, w, a.seconds), fbank=fbank)
                rows.append(r)
                print(f"  workers {w}: {r['batches']} batches, {r['audio_s']:.0f} s of audio in {r['wall_s']:.1f} s",
                      flush=True)
    finally: shutil.rmtree(work, ignore_errors=True)
    knf = {r['workers']: r['audio_per_cpu_s'] for r in rows if r['fbank'] == 'knf'}
    head = (f"{'fbank':>10} {'workers':>7} {'batch/s':>8} {'audio x':>8} {'steady x':>9} {'CPU main s':>10} "
            f"{'CPU workers s':>13} {'audio s / CPU s':>15} {'x knf':>6} {'1st batch s':>11}")
    print('\n' + head); print('-' * len(head))
    for r in rows:
        ratio = f"{r['audio_per_cpu_s'] / knf[r['workers']]:6.2f}" if r['workers'] in knf else f"{'-':>6}"
        print(f"{r['fbank']:>10} {r['workers']:7d} {r['batches_per_s']:8.1f} {r['audio_x']:8.1f} "
              f"{r['audio_x_steady']:9.1f} {r['cpu_main_s']:10.1f} {r['cpu_workers_s']:13.1f} "
              f"{r['audio_per_cpu_s']:15.1f} {ratio} {(r['first_batch_s'] or 0):11.2f}")
    print("\ncores per GPU = GPU audio x real time / loader audio seconds per CPU second (best with workers)")
    need, per_core = [], {}
    for fbank in fbanks:
        mine = [r for r in rows if r['fbank'] == fbank]
        per_core[fbank] = max((r['audio_per_cpu_s'] for r in mine if r['workers'] > 0),
                              default=mine[0]['audio_per_cpu_s'])
        for label, x in gpu_rates(a):
            n = x / per_core[fbank]
            need.append(dict(fbank=fbank, gpu=label, gpu_audio_x=x, cores=n))
            print(f"  {fbank:>10}: {label}: {x:.0f} / {per_core[fbank]:.1f} = {n:.1f} cores "
                  f"(+ the training process's own core)")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(args=vars(a), fbank=backends, corpus=corpus, utterances=len(ds),
                                                rows=rows, audio_per_cpu_s=per_core, cores_per_gpu=need,
                                                cpus=os.cpu_count()), indent=1))
    print(f'total {time.perf_counter() - t0:.0f} s')


if __name__ == '__main__':
    main()
