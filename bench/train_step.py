"""One optimizer step of each stage's freeze plan (`fun_asr_8k.model.FREEZE_PLANS`): time, throughput, peak memory.

What it measures: for each stage (baseline, stage1, stage2, stage3) the model is built with that stage's freeze plan
(`freeze_plan_config` + `apply_freeze_plan`, model class FunASRNanoCTC), put in train mode (as funasr's Trainer does),
and trained for --warmup untimed steps, then --steps timed steps. One step = forward (FunASRNanoCTC.forward: LLM
cross-entropy, plus the CTC loss where the plan has `ctc_train`) + backward + clip_grad_norm_(5.0) over the trainable
parameters + AdamW.step (lr 1e-4, weight decay 0, the stages' optimizer; no LR scheduler) + zero_grad(set_to_none).
On CUDA the step is bracketed by synchronize(). Data preparation (features, collation) is NOT in the step time: the
batches are made and moved to the device before the timed loop, as with funasr's dataloader workers.

Each stage runs in its own fresh Python process (this file with a hidden --_child flag), so peak memory is per stage:
  GPU  torch.cuda.max_memory_allocated() over build + warm-up + timed steps ("peak MB"), and memory_allocated() after
       the model and optimizer are built ("static MB": weights; AdamW state appears after the first step, in the peak).
  CPU  peak RSS of the process (getrusage ru_maxrss, "peak MB"), which includes torch/funasr themselves, and the RSS
       after the imports, before the model is built, subtracted from it ("model+train MB").

Scales:
  tiny  (default; CPU) A tiny Fun-ASR-Nano (`make_tiny_model`: the same funasr classes at tiny sizes, tokenizers trained
        on the corpus text) made on the fly in a temp dir from a small espeak-ng corpus (`make_corpus`, --utts general
        utterances of about 3-4 s), formatted as the stages' training jsonl (`prep_clean`). Each child loads it with
        `load_model(model_dir, **freeze_plan_config(stage))` (funasr AutoModel, so LoRA is wrapped on load as in
        training) and makes REAL batches with funasr's own pipeline: dataset FunASR (index_ds FunASR, the model's
        frontend and tokenizer), batch sampler BatchSampler with train.py's dataset_conf (batch_type token,
        batch_size = max_token_length = --batch_tokens, batch_size_token_max 4x, sort_size 1024, shuffle) and the
        dataset's collator; the same seed gives every stage the same batches (cycled if the corpus has fewer).
        Default token batch: 3000 for every stage (the stage notebooks' smoke defaults).
  full  (GPU) The full-size Fun-ASR-Nano configuration of `fun_asr_8k.model` (FUN_ASR_NANO: SenseVoiceEncoderSmall 50
        blocks, Transformer adaptor, 5-layer CTC decoder + 60515-way CTC head, Qwen3-0.6B from QWEN3_0_6B), built
        the way `full_size_model` builds it on the meta device, but for real on --device with RANDOM weights (no
        download, no checkpoint): a temp dir with the Qwen3-0.6B config.json and a CTC token list. --bf16 makes the
        LLM bf16 (llm_dtype bf16) and wraps the forward in bf16 autocast, as train.py's bf16=True does (use_bf16).
        Batches are SYNTHESISED with the shapes funasr's FunASR dataset would give (no Qwen tokenizer offline):
        utterances of --utt_seconds at 16 kHz; fbank frames (25/10 ms, snip edges) and LFR frames (T) taken from the
        model's own WavFrontend on noise; speech = N(0,1) features (B, T, 560); fake_token_len = funasr's formula
        (about ceil(T/8)); input_ids = the ChatML prompt (18 tokens before the speech, 5 after, as Qwen3 tokenizes
        the project's prompt) + the speech slots + the transcript (--chars_per_s * --utt_seconds characters, counted
        as one token each: an upper bound for Qwen's Chinese tokens) + <|im_end|>; labels -100 on the prompt and
        speech; item[i]['assistant'] = [transcript] for the CTC loss. B = what the token sampler packs: the largest
        B with B * (fbank frames + transcript length) <= batch_tokens (at most 199), all utterances the same length.
        Default token batch: 8192 for baseline/stage1/stage2 and 4096 for stage3 (the stage notebooks' full
        defaults; the baseline is not trained at full scale, it is shown as the everything-trains reference).
        `--scale full --device cpu` runs the same code on the CPU for a feasibility check (give a small
        --batch_tokens and --utt_seconds; the baseline's AdamW state alone is ~11 GB there).

Printed per stage: step time (mean over the timed steps, and the fastest), tokens/s (funasr's batch-token units:
fbank frames + transcript length, summed over the batch's utterances: what --batch_tokens budgets), LLM tokens/s
(attention_mask.sum(): what train.log's tokens_per_s reports), audio seconds per second, peak memory, trainable/total
parameters; then the same numbers as ratios to stage1 of the same run (>1: more than stage1). The stages' token
batches may differ (stage3 4096 at full scale): compare tokens/s, not step times, across batch sizes.
Stage 3 trains with accum_grad=2 in the plan; here every step steps the optimizer (its cost is tiny for LoRA).
Targets are not asserted: the exit status is non-zero only if a stage crashed (out-of-memory counts as a crash).

Run: python bench/train_step.py [--scale tiny|full] [--steps N] [--warmup N] [--batch_tokens N] [--device cpu|cuda]
                                [--bf16] [--stages baseline,stage1,stage2,stage3] [--utts 40] [--utt_seconds 10]
                                [--chars_per_s 4] [--threads N] [--json PATH]
CPU threads: funasr's AutoModel sets torch to 4 threads (its ncpu default) whatever the machine has; the children set
them back after the build to the CPUs the process may use (--threads overrides). On a 2-core machine 4 threads made the
tiny steps about 2.4x slower.
Default run (tiny, CPU): about 45 s on a 2-core machine.
"""
import argparse, json, os, platform, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

STAGES = ('baseline', 'stage1', 'stage2', 'stage3')
DEFAULT_TOKENS = {'tiny': dict(baseline=3000, stage1=3000, stage2=3000, stage3=3000),
                  'full': dict(baseline=8192, stage1=8192, stage2=8192, stage3=4096)}
# Qwen3 tokens of the ChatML text before / after the speech slots (system + user prompt)
PROMPT_BEFORE, PROMPT_AFTER = 18, 5
LR, GRAD_CLIP, SAMPLE_MAX = 1e-4, 5.0, 200
MARK = '@@train_step@@ '
MB = 1 << 20

def _rss_mb() -> float:
    "Current resident set size of this process (MB)."
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

# ---------------------------------------------------------------- child side (one stage, a fresh process)
def _tiny_model_and_batches(job: dict, device: str):
    "The tiny model with the stage's plan (funasr AutoModel) and real funasr batches of the formatted jsonl."
    import random, numpy as np, torch
    from funasr.register import tables
    from funasr.train_utils.device_funcs import to_device
    from fun_asr_8k.model import apply_freeze_plan, freeze_plan_config, load_model
    am = load_model(job['model_dir'], device=device, **freeze_plan_config(job['stage']))
    model = apply_freeze_plan(am.model, job['stage'])   # what train_ds does from freeze_param / lora_only
    bt = job['batch_tokens']
    conf = dict(am.kwargs['dataset_conf'], index_ds='FunASR', batch_sampler='BatchSampler', batch_type='token',
                batch_size=bt, max_token_length=bt, batch_size_token_max=4 * bt, sort_size=1024, shuffle=True,
                num_workers=0, pin_memory=False)
    random.seed(0); np.random.seed(0); torch.manual_seed(0)   # the dataset draws the user prompt with random.choice
    ds = tables.dataset_classes['FunASR'](job['train'], frontend=am.kwargs['frontend'],
                                          tokenizer=am.kwargs['tokenizer'], is_training=True, **conf)
    loader_args = tables.batch_sampler_classes['BatchSampler'](ds, **conf)
    loader_args['pin_memory'] = False
    dl = torch.utils.data.DataLoader(ds, collate_fn=ds.collator, **loader_args)
    need, batches = job['warmup'] + job['steps'], []
    for epoch in range(1000):
        loader_args['batch_sampler'].set_epoch(epoch)
        for b in dl:
            tokens = sum(it.get('source_len', 0) for it in b['item'])
            padded = len(b['item']) * max(it.get('source_len', 0) for it in b['item'])
            batches.append((to_device(b, device), dict(tokens=tokens, padded_tokens=padded)))
            if len(batches) >= need: break
        if len(batches) >= need or not batches: break
    if not batches:
        raise RuntimeError(f'no batch from {job["train"]} at batch_tokens={bt} (utterances longer than the batch?)')
    return model, batches, dict(model_dir=job['model_dir'], data=job['train'])

def _full_model(job: dict, device: str, work: Path):
    ("The full-size FunASRNanoCTC (FUN_ASR_NANO + QWEN3_0_6B, as full_size_model configures it) on `device`, "
     "random weights.")
    import copy, torch
    from fun_asr_8k.model import FUN_ASR_NANO, QWEN3_0_6B, FunASRNanoCTC, apply_freeze_plan, freeze_plan_config
    (work / 'Qwen3-0.6B').mkdir(parents=True, exist_ok=True)
    (work / 'Qwen3-0.6B' / 'config.json').write_text(json.dumps(QWEN3_0_6B))
    (work / 'ctc_tokens.txt').write_text('<unk>\n<blank>\n')   # the CTC head keeps ctc_vocab_size (60515) outputs
    cfg = copy.deepcopy(FUN_ASR_NANO)
    cfg['llm_conf'].update(init_param_path=str(work / 'Qwen3-0.6B'), llm_dtype='bf16' if job['bf16'] else 'fp32')
    cfg.update(ctc_tokenizer='CharTokenizer', ctc_tokenizer_conf=dict(token_list=str(work / 'ctc_tokens.txt')))
    plan = freeze_plan_config(job['stage'])
    for k in ('audio_encoder_conf', 'audio_adaptor_conf', 'ctc_decoder_conf', 'llm_conf'): cfg[k].update(plan[k])
    torch.manual_seed(0)
    with torch.device(device):
        m = FunASRNanoCTC(**{k: v for k, v in cfg.items() if k != 'model'}, ctc_train=plan['ctc_train'],
                          peft_lora=plan['peft_lora'], detach_ctc_decoder=plan['detach_ctc_decoder'])
    return apply_freeze_plan(m, job['stage']), cfg

def _synthetic_batches(job: dict, cfg: dict, device: str):
    ("Batches with the shapes funasr's FunASR dataset + token sampler give utterances of --utt_seconds "
     "(see the docstring).")
    import torch
    from funasr.register import tables
    fe = tables.frontend_classes[cfg['frontend']](**{**cfg['frontend_conf'], 'cmvn_file': None})
    n = int(round(job['utt_seconds'] * 16000))
    g = torch.Generator().manual_seed(0)
    _, lens = fe(torch.randn(1, n, generator=g) * 0.1, torch.tensor([n]))
    T = int(lens[0])                                          # LFR frames (60 ms)
    frames = max(0, 1 + (n - 400) // 160)                     # fbank frames: the jsonl's speech_length
    o = 1 + (T - 3 + 2) // 2; o = 1 + (o - 3 + 2) // 2; fake = (o - 1) // 2 + 1   # the dataset's fake_token_len
    n_chars = max(1, round(job['chars_per_s'] * job['utt_seconds']))
    source_len = frames + n_chars
    bt = job['batch_tokens']
    if source_len > bt:
        raise ValueError(f'an utterance of {job["utt_seconds"]} s is {source_len} tokens > batch_tokens {bt}: '
                         'funasr drops it')
    B = min(bt // source_len, SAMPLE_MAX - 1)
    L = PROMPT_BEFORE + fake + PROMPT_AFTER + n_chars + 1
    vocab = 151643                                            # Qwen3's ordinary tokens (below the special ones)
    text = ''.join(chr(0x4E00 + int(i)) for i in torch.randint(0, 3000, (n_chars,), generator=g))
    batches = []
    for _ in range(job['warmup'] + job['steps']):
        ids = torch.randint(0, vocab, (B, L), generator=g)
        labels = ids.clone(); labels[:, :PROMPT_BEFORE + fake + PROMPT_AFTER] = -100
        b = dict(speech=torch.randn(B, T, 560, generator=g), speech_lengths=torch.full((B,), T, dtype=torch.long),
                 input_ids=ids, attention_mask=torch.ones(B, L, dtype=torch.int32), labels_ids=labels,
                 fbank_beg=torch.full((B, 1), PROMPT_BEFORE, dtype=torch.int32),
                 fake_token_len=torch.full((B, 1), fake, dtype=torch.int32),
                 item=[dict(key=f'synth{i}', system=['You are a helpful assistant.'], user=['语音转写：<speech>'],
                            assistant=[text], source_len=source_len) for i in range(B)])
        batches.append(({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()},
                        dict(tokens=B * source_len, padded_tokens=B * source_len)))
    return batches, dict(utterances=B, utt_seconds=job['utt_seconds'], fbank_frames=frames, lfr_frames=T,
                         speech_tokens=fake, transcript_chars=n_chars, llm_seq_len=L, source_len=source_len)

def _child(job: dict) -> dict:
    "Build one stage's model and batches, warm up, time the steps; the measurements."
    t_start = time.perf_counter()
    import torch
    import fun_asr_8k.model  # noqa: F401  (registers FunASRNanoCTC)
    import logging; logging.disable(logging.WARNING)           # funasr logs every batch it builds
    device = job['device']
    cuda = device.startswith('cuda')
    if cuda:   # funasr's train_ds defaults
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    import_s, rss0 = time.perf_counter() - t_start, _rss_mb()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix='train_step_full_'))
    try:
        if job['scale'] == 'tiny':
            model, batches, shape = _tiny_model_and_batches(job, device)
        else:
            model, cfg = _full_model(job, device, work)
            batches, shape = _synthetic_batches(job, cfg, device)
    finally: shutil.rmtree(work, ignore_errors=True)
    build_s = time.perf_counter() - t0
    # after the build: funasr's AutoModel sets torch's threads to its ncpu (4 by default) whatever the machine has
    if job.get('threads'): torch.set_num_threads(job['threads'])
    elif not cuda: torch.set_num_threads(len(os.sched_getaffinity(0)))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    n_total, n_train = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in params)
    from fun_asr_8k.model import block_table
    blocks = block_table(model)
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    if cuda: sync(); static = torch.cuda.memory_allocated() / MB
    else: static = _rss_mb() - rss0
    bf16 = job.get('bf16') and cuda
    dev_type = 'cuda' if cuda else 'cpu'

    def step(batch):
        # forward edits some in place
        b = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=bool(bf16)):
            loss, stats, _ = model(**b)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step(); opt.zero_grad(set_to_none=True)
        return loss, stats, gn

    times, losses, llm_tokens, audio_s = [], [], [], []
    for i, (batch, meta) in enumerate(batches):
        timed = i >= job['warmup']
        sync(); t = time.perf_counter()
        loss, stats, gn = step(batch)
        sync(); dt = time.perf_counter() - t
        if timed:
            times.append(dt); losses.append(float(loss))
            llm_tokens.append(int(batch['attention_mask'].sum()))
            audio_s.append(float(batch['speech_lengths'].sum()) * 0.06 if 'speech_lengths' in batch else 0.0)
    timed_meta = [m for _, m in batches[job['warmup']:]]
    total = sum(times)
    peak = torch.cuda.max_memory_allocated() / MB if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(stage=job['stage'], device=device, batch_tokens=job['batch_tokens'], steps=len(times),
                warmup=job['warmup'], step_s=total / len(times), step_min_s=min(times), step_times=times,
                tokens_per_step=sum(m['tokens'] for m in timed_meta) / len(times),
                padded_tokens_per_step=sum(m['padded_tokens'] for m in timed_meta) / len(times),
                utts_per_step=sum(len(b['item']) for b, _ in batches[job['warmup']:]) / len(times),
                tokens_per_s=sum(m['tokens'] for m in timed_meta) / total, llm_tokens_per_s=sum(llm_tokens) / total,
                audio_x_real=sum(audio_s) / total, loss_first=losses[0], loss_last=losses[-1],
                loss_parts={k: float(stats[k]) for k in ('llm_loss', 'ctc_loss') if k in stats},
                peak_mb=peak, static_mb=static, rss_before_build_mb=None if cuda else rss0,
                train_mb=None if cuda else peak - rss0, params=n_total, trainable=n_train, blocks=blocks,
                ctc_train=bool(getattr(model, 'ctc_train', False)), lora=hasattr(model.llm, 'peft_config'),
                llm_dtype=getattr(model, 'llm_dtype', None), bf16_autocast=bool(bf16),
                torch_threads=torch.get_num_threads(),
                import_s=import_s, build_s=build_s, batch_shape=shape,
                gpu=torch.cuda.get_device_name() if cuda else None)

# ---------------------------------------------------------------- parent side
def run_child(job: dict) -> dict:
    "Run one stage in a fresh process; its result, or dict(error=...) with the end of its output."
    r = subprocess.run([sys.executable, __file__, '--_child', json.dumps(job)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONUNBUFFERED='1'))
    for line in r.stdout.splitlines():
        if line.startswith(MARK): return json.loads(line[len(MARK):])
    tail = (r.stdout + r.stderr).strip().splitlines()[-25:]
    oom = any('OutOfMemoryError' in l or 'out of memory' in l.lower() for l in tail)
    return dict(stage=job['stage'], error=('out of memory: ' if oom else '') + f'exit {r.returncode}', tail=tail)

def prepare_tiny(work: Path, utts: int) -> dict:
    "A small espeak-ng corpus, its training jsonl (as Stage 0 formats the clean set) and a tiny model dir, in `work`."
    from fun_asr_8k.data import CorpusSpec, make_corpus, prep_clean
    from fun_asr_8k.model import make_tiny_model
    import logging; logging.disable(logging.WARNING)
    t = time.perf_counter()
    info = make_corpus(work / 'corpus',
                       CorpusSpec(general_train=utts, general_dev=2, general_test=0, tel_train=12, tel_dev=4,
                                  tel_test=0),
                       progress=False)
    rep = prep_clean(work / 'corpus' / 'general' / 'train_M.jsonl', work / 'train_formatted.jsonl')
    make_tiny_model(work / 'tiny_model', work / 'corpus')
    return dict(model_dir=str(work / 'tiny_model'), train=str(work / 'train_formatted.jsonl'), utterances=rep['n_kept'],
                audio_s=round(rep['hours_kept'] * 3600, 1), prep_s=round(time.perf_counter() - t, 1),
                corpus_hours=info['hours'])

def fmt_params(n: int) -> str:
    return f'{n / 1e9:.2f}B' if n >= 1e9 else f'{n / 1e6:.1f}M' if n >= 1e5 else f'{n / 1e3:.1f}k'

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--scale', choices=('tiny', 'full'), default='tiny')
    p.add_argument('--steps', type=int, default=20, help='timed optimizer steps per stage')
    p.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    p.add_argument('--batch_tokens', type=int, default=None,
                   help='token batch of every stage (default: the stage defaults, see above)')
    p.add_argument('--device', default=None, help='cpu | cuda (default: cpu for tiny, cuda for full)')
    p.add_argument('--bf16', action='store_true',
                   help='full scale: bf16 LLM weights + bf16 autocast (train.py bf16=True)')
    p.add_argument('--stages', default=','.join(STAGES))
    p.add_argument('--utts', type=int, default=40, help='tiny: utterances in the synthesised corpus')
    p.add_argument('--utt_seconds', type=float, default=10.0, help='full: utterance length of the synthetic batches')
    p.add_argument('--chars_per_s', type=float, default=4.0, help='full: transcript characters per second of audio')
    p.add_argument('--threads', type=int, default=0,
                   help='torch threads, set after the model is built (0: the CPUs this process may use on CPU; '
                        'on GPU as left by the build)')
    p.add_argument('--json', default=None)
    a = p.parse_args()
    device = a.device or ('cpu' if a.scale == 'tiny' else 'cuda')
    stages = [s.strip() for s in a.stages.split(',') if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad: p.error(f'unknown stage(s) {bad}; expected {STAGES}')
    if a.steps < 1 or a.warmup < 0: p.error('--steps >= 1 and --warmup >= 0')
    if device.startswith('cuda'):
        import torch
        if not torch.cuda.is_available(): p.error(f'--device {device}: no CUDA here (torch {torch.__version__})')
    tokens = {s: a.batch_tokens or DEFAULT_TOKENS[a.scale][s] for s in stages}
    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix='train_step_'))
    try:
        base = dict(scale=a.scale, device=device, steps=a.steps, warmup=a.warmup, bf16=a.bf16, threads=a.threads,
                    utt_seconds=a.utt_seconds, chars_per_s=a.chars_per_s)
        data = prepare_tiny(work, a.utts) if a.scale == 'tiny' else {}
        if data:
            print(f"tiny model + {data['utterances']} utterances ({data['audio_s']} s of audio) "
                  f"made in {data['prep_s']} s under {work}")
        results = []
        for s in stages:
            r = run_child(dict(base, **data, stage=s, batch_tokens=tokens[s]))
            results.append(r)
            if 'error' in r: print(f'{s}: FAILED ({r["error"]})\n  ' + '\n  '.join(r['tail']), file=sys.stderr)
            else: print(f"{s}: done ({r['steps']} steps, build {r['build_s']:.1f} s)", flush=True)
    finally: shutil.rmtree(work, ignore_errors=True)
    ok = {r['stage']: r for r in results if 'error' not in r}
    cuda = device.startswith('cuda')
    mem = 'peak alloc MB' if cuda else 'peak RSS MB'
    print(f"\nscale {a.scale}, device {device}"
          + (f" ({next(iter(ok.values()))['gpu']})" if cuda and ok else f", {os.cpu_count()} CPUs")
          + f", {a.warmup} warm-up + {a.steps} timed steps per stage" + (', bf16 LLM' if a.bf16 else '')
          + f"; torch threads " + (str(next(iter(ok.values()))['torch_threads']) if ok else '?'))
    hdr = (f"{'stage':9} {'batch tok':>9} {'utts':>5} {'step s':>8} {'min s':>8} {'tok/s':>9} {'LLM tok/s':>9} "
           f"{'audio x':>8} {mem:>13} {'model+train MB' if not cuda else 'static MB':>14} {'trainable':>10} "
           f"{'total':>8} {'train %':>7}")
    print(hdr); print('-' * len(hdr))
    for s in stages:
        r = next(x for x in results if x['stage'] == s)
        if 'error' in r: print(f'{s:9} FAILED: {r["error"]}'); continue
        extra = r['static_mb'] if cuda else r['train_mb']
        print(f"{s:9} {r['tokens_per_step']:9.0f} {r['utts_per_step']:5.1f} {r['step_s']:8.4f} {r['step_min_s']:8.4f} "
              f"{r['tokens_per_s']:9.0f} {r['llm_tokens_per_s']:9.0f} {r['audio_x_real']:8.1f} {r['peak_mb']:13.0f} "
              f"{extra:14.0f} {fmt_params(r['trainable']):>10} "
              f"{fmt_params(r['params']):>8} {100 * r['trainable'] / r['params']:7.2f}")
    ratios = {}
    if 'stage1' in ok:
        ref = ok['stage1']
        print(f"\nratio to stage1 (same run)  {'step s':>8} {'tok/s':>8} {'peak mem':>9} "
              f"{'model+train' if not cuda else 'static':>11} {'trainable':>10}")
        for s in stages:
            if s not in ok: continue
            r = ok[s]
            key = 'static_mb' if cuda else 'train_mb'
            ratios[s] = dict(step_s=r['step_s'] / ref['step_s'], tokens_per_s=r['tokens_per_s'] / ref['tokens_per_s'],
                             peak_mb=r['peak_mb'] / ref['peak_mb'], **{key: r[key] / ref[key] if ref[key] else None},
                             trainable=r['trainable'] / ref['trainable'] if ref['trainable'] else None)
            q = ratios[s]
            print(f"{s:27} {q['step_s']:8.2f} {q['tokens_per_s']:8.2f} {q['peak_mb']:9.2f} "
                  f"{(q[key] if q[key] is not None else float('nan')):11.2f} {(q['trainable'] or float('nan')):10.3f}")
    for s, r in ok.items():
        print(f"{s}: loss {r['loss_first']:.3f} -> {r['loss_last']:.3f} {r['loss_parts'] or ''}; "
              f"ctc_train={r['ctc_train']} lora={r['lora']} "
              f"llm_dtype={r['llm_dtype']}; trainable blocks: "
              + ', '.join(f"{b['block']} {fmt_params(b['trainable'])}" for b in r['blocks'] if b['trainable']))
    if a.scale == 'full' and ok:
        sh = next(iter(ok.values()))['batch_shape']
        print(f"synthetic utterance: {sh['utt_seconds']} s = {sh['fbank_frames']} fbank frames, "
              f"{sh['lfr_frames']} LFR frames, {sh['speech_tokens']} speech tokens, "
              f"{sh['transcript_chars']} transcript tokens, LLM sequence {sh['llm_seq_len']}")
    print(f'total {time.perf_counter() - t_all:.0f} s')
    if a.json:
        Path(a.json).write_text(json.dumps(dict(args=vars(a), device=device, batch_tokens=tokens, data=data,
                                                results=results, ratios_to_stage1=ratios, platform=platform.platform(),
                                                python=platform.python_version()),
                                           indent=1, ensure_ascii=False))
    sys.exit(1 if len(ok) < len(stages) else 0)

if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--_child':
        res = _child(json.loads(sys.argv[2]))
        print(MARK + json.dumps(res))
    else: main()
