"""One optimizer step of each stage's freeze plan (`fun_asr_8k.model.FREEZE_PLANS`): time, throughput, memory, MFU.

What it measures: for each stage (baseline, stage1, stage2, stage3) the model is built with that stage's freeze plan
(`freeze_plan_config` + `apply_freeze_plan`, model class FunASRNanoCTC), put in train mode (as funasr's Trainer does),
and, at each token batch of --batch_tokens (a comma list sweeps them), trained for --warmup untimed steps, then --steps
timed steps. One step = forward (FunASRNanoCTC.forward: LLM cross-entropy, plus the CTC loss where the plan has
`ctc_train`) + backward + clip_grad_norm_(5.0) over the trainable parameters + AdamW.step (lr 1e-4, weight decay 0,
the stages' optimizer; a fresh optimizer at each point; no LR scheduler) + zero_grad(set_to_none). On CUDA the step is
bracketed by synchronize(). Making a batch (features, collation) is NOT in the step time: as with funasr's dataloader
workers, the batch is ready (on the device) before the step's clock starts.

Each stage runs in its own fresh Python process (this file with a hidden --_child flag); the points of a sweep and the
variants run one after another in that process, on the same model. Per point:
  GPU  torch.cuda.max_memory_allocated() since the point started ("peak MB": weights + AdamW state + the batch's
       activations; reset before each point), and memory_allocated() after the model is built ("static MB").
  CPU  peak RSS of the process (getrusage ru_maxrss, "peak MB", which only grows over a sweep), which includes
       torch/funasr themselves, and that minus the RSS after the imports ("model+train MB").
  FLOPs  one extra untimed forward + backward of the first timed batch under torch.utils.flop_counter.FlopCounterMode
       (what the step really executes: matmuls, convolutions, attention; elementwise ops and the optimizer are not
       counted), in total and per block (audio_encoder, audio_adaptor, ctc_decoder, ctc, llm). MFU = FLOPs per audio
       second of that batch x audio seconds per second / the device's dense bf16 peak (--peak_tflops, or looked up from
       the device name: the datasheet number, e.g. 989 TFLOP/s for H100 SXM / H200). On CUDA the run also measures
       what a plain bf16 matmul (8192^3) reaches on this device ("matmul TFLOP/s": ~790 on the H200 of GPU_NOTES) and
       prints the MFU against that too. FLOPs are counted whatever the precision; with --precision bf16_llm or fp32
       the encoder's matmuls run in TF32/fp32, whose peak is lower: MFU against the bf16 peak then understates.
  phases  one more untimed step with a synchronize() after the forward and after the backward: forward / backward /
       clip + optimizer seconds (where the time goes).
An out-of-memory point is reported as the limit; the stage's larger batches are then not tried.

Scales:
  tiny  (default; CPU) A tiny Fun-ASR-Nano (`make_tiny_model`: the same funasr classes at tiny sizes, tokenizers trained
        on the corpus text) made on the fly in a temp dir from a small espeak-ng corpus (`make_corpus`, --utts general
        utterances of about 3-4 s), formatted as the stages' training jsonl (`prep_clean`). Each child loads it with
        `load_model(model_dir, **freeze_plan_config(stage))` (funasr AutoModel, so LoRA is wrapped on load as in
        training) and makes REAL batches with funasr's own pipeline: dataset FunASR (index_ds FunASR, the model's
        frontend and tokenizer), batch sampler BatchSampler with stage_config.py's dataset_conf (batch_type token,
        batch_size = max_token_length = the token batch, batch_size_token_max 4x, sort_size 1024, shuffle) and the
        dataset's collator; the same seed gives every stage the same batches (cycled if the corpus has fewer).
        Default token batch: 3000 for every stage (the stage notebooks' smoke defaults).
  full  (GPU) The full-size Fun-ASR-Nano configuration of `fun_asr_8k.model` (FUN_ASR_NANO_2512: SenseVoiceEncoderSmall
        50 blocks, Transformer adaptor, 5-layer CTC decoder + 60515-way CTC head, Qwen3-0.6B from QWEN3_0_6B), built
        the way `full_size_model` builds it on the meta device, but for real on --device with RANDOM weights (no
        download, no checkpoint): a temp dir with the Qwen3-0.6B config.json and a CTC token list.
        Batches are SYNTHESISED with the shapes funasr's FunASR dataset gives (no Qwen tokenizer offline): utterances
        at 16 kHz; fbank frames (25/10 ms, snip edges) and LFR frames (T = ceil(frames / 6), checked against the
        model's own WavFrontend); speech = N(0,1) features (B, T, 560) right-padded; fake_token_len = funasr's
        formula (about ceil(T/8)); input_ids = the ChatML prompt (18 tokens before the speech, 5 after, as Qwen3
        tokenizes the project's prompt) + the speech slots + the transcript (--chars_per_s characters a second,
        counted as one token each: an upper bound for Qwen's Chinese tokens) + <|im_end|>, padded as funasr's
        collator pads (-1, attention 0); labels -100 on the prompt and speech; item[i]['assistant'] = the transcript
        (for the CTC loss). Which utterances make a batch (--lengths):
          fixed    (default) every utterance --utt_seconds long; B = the largest B with B x (fbank frames +
                   transcript length) <= the token batch (at most 199): what funasr's sampler packs.
          wenet_m  a WenetSpeech-M-like mix (bench/padding.py: log-normal, median 2.0 s, within 1-20 s), cut into
                   batches by funasr's OWN BatchSampler (token budget = padded length x utterances, sort buffer
                   --sort_size, at most --sample_max - 1 utterances), so the batches carry funasr's padding. The
                   timed batches are picked at evenly spaced quantiles of the epoch's batch sizes; the epoch's
                   largest batch (most padded elements) is the first warm-up step, so the peak memory is the epoch's.
          uniform  the same with lengths uniform in 1-20 s.
        Default token batch: 8192 for baseline/stage1/stage2 and 4096 for stage3 (the stage notebooks' full
        defaults; the baseline is not trained at full scale, it is shown as the everything-trains reference).
        --sweep adds 8192,16384,32768,65536,131072,262144 to each stage's own default.
        `--scale full --device cpu` runs the same code on the CPU for a feasibility check (give a small
        --batch_tokens and --utt_seconds, stages stage2/stage3: the baseline's AdamW state alone is ~11 GB there).

Precision (--precision): fp32 (the plan's default, StageParams.bf16=False: fp32 weights, TF32 matmuls on CUDA as
funasr's train_ds allows them), bf16_llm (the LLM's weights in bf16 and funasr's own autocast around the LLM only:
the encoder stays fp32/TF32), bf16 (= --bf16 = StageParams.bf16=True: bf16 LLM weights and bf16 autocast over the WHOLE
forward, as funasr's Trainer does with use_bf16, so the encoder's matmuls run in bf16 too). CUDA settings as funasr's
train_ds sets them: cudnn.deterministic=True, cudnn.benchmark=False, TF32 matmuls.

Variants (--variants a,b,...; each measured on its own against the base settings at one token batch, --variant_tokens,
default the sweep's fastest batch that fit; '+' joins variants into one, e.g. nondet+fused_adamw):
  bf16_llm         the LLM alone in bf16 (funasr's LLM autocast), no autocast over the encoder
  bf16_all         bf16 autocast over the whole forward (when the base is bf16_llm)
  nondet           torch.backends.cudnn.deterministic=False (funasr's train_ds sets True; the encoder's FSMN memory
                   is a depthwise Conv1d, which cuDNN runs)
  fused_adamw      torch.optim.AdamW(fused=True)
  compile_encoder  torch.compile of each encoder layer (regional: one graph serves every layer of a width, so the
                   compile time is that of two layers, not of 70), dynamic=True (token batches change shape every
                   step), the FSMN memory (a depthwise Conv1d) left eager: inductor's convolution-backward lowering
                   guards on the length (measured: Eq(T, 40) from _inductor/kernel/conv.py
                   convolution_backward_lowering), so a compiled conv recompiles for every new length. Its compile
                   time (the warm-up steps' time beyond the steady step) is reported apart and bounded by
                   --compile_timeout_s (SIGALRM); graphs compiled during the timed steps (new lengths) are counted
  fixed10s         the same token batch made of 10 s utterances (the calibration of GPU_NOTES)
  best             every single variant above that was >= 3 % faster here, together (known only after them)
CUDA graphs are not offered: the batches change shape every step (token batching), FunASRNano.forward reads
fbank_beg with .item() per utterance (a host sync inside the step) and splices speech into the prompt in a Python
loop, so a captured graph would be valid for one shape only; torch.compile's mode='reduce-overhead' would re-record
one per shape.

Budget: --budget_s bounds the whole run: each stage's child gets a deadline (a share of what is left: 3 shares for a
stage with variants, 1 otherwise); a point or variant still running at the deadline stops after its current step
(with fewer timed steps than asked: 'cut', or not reported if none was timed), the FLOP count and phase step are left
out past it, later points are not started; a child is killed 20 s after its deadline. Every point a child finished is
printed as it finishes and kept.

Printed per stage and point: token batch, utterances, step time (mean; fastest), tokens/s (funasr's batch-token units:
fbank frames + transcript length summed over the utterances: what the token batch budgets), LLM tokens/s
(attention_mask.sum(): what train.log's tokens_per_s reports), audio seconds per second ("audio x"), peak memory,
TFLOP per step, MFU; then ratios to the stage's plan batch (and, with one batch per stage, to stage1); the variants
with their speed-up over the base at the same batch in the same process; the phases; a last compact table of the
best point per stage against its plan batch, and the targets of issue 18 (stage 1 >= 10x the plan batch's tokens/s,
>= 1,600x real time). Targets are printed, not asserted; the exit status is non-zero only if a stage crashed
(running out of memory at the first batch counts as a crash; at a later point of a sweep it is the limit).
Stage 3 trains with accum_grad=2 in the plan; here every step steps the optimizer (its cost is tiny for LoRA).

Run: python bench/train_step.py [--scale tiny|full] [--steps N] [--warmup N] [--batch_tokens N[,N...]] [--sweep]
        [--device cpu|cuda] [--bf16 | --precision fp32|bf16_llm|bf16] [--stages baseline,stage1,stage2,stage3]
        [--lengths fixed|wenet_m|uniform] [--sample_max 200] [--sort_size 1024|scaled] [--utts 40] [--utt_seconds 10]
        [--chars_per_s 4] [--variants LIST] [--variant_stages stage1] [--variant_tokens N] [--compile_timeout_s 90]
        [--peak_tflops X] [--no_flops] [--budget_s S] [--threads N] [--json PATH]
CPU threads: funasr's AutoModel sets torch to 4 threads (its ncpu default) whatever the machine has; the children set
them back after the build to the CPUs the process may use (--threads overrides). On a 2-core machine 4 threads made the
tiny steps about 2.4x slower.
Default run (tiny, CPU): about 45 s on a 2-core machine.
"""
import argparse, json, os, platform, resource, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from padding import MIXES, PROMPT_AFTER, PROMPT_BEFORE, draw_seconds, funasr_batches, utterance_shapes  # noqa: E402

STAGES = ('baseline', 'stage1', 'stage2', 'stage3')
DEFAULT_TOKENS = {'tiny': dict(baseline=3000, stage1=3000, stage2=3000, stage3=3000),
                  'full': dict(baseline=8192, stage1=8192, stage2=8192, stage3=4096)}
SWEEP = {'tiny': (1500, 3000, 6000, 12000), 'full': (8192, 16384, 32768, 65536, 131072, 262144)}
VARIANTS = ('bf16_llm', 'bf16_all', 'nondet', 'fused_adamw', 'compile_encoder', 'fixed10s', 'best')
PRECISIONS = ('fp32', 'bf16_llm', 'bf16')
# dense bf16 tensor-core peak (TFLOP/s) from the datasheets, by device name (first match wins)
PEAK_TFLOPS = (('H200 NVL', 835), ('H200', 989), ('GH200', 989), ('H100 NVL', 835), ('H100 PCIe', 756),
               ('H100', 989), ('H800', 989), ('B200', 2250), ('B100', 1750), ('A100', 312), ('A800', 312),
               ('L40S', 362), ('L40', 181), ('L4', 121), ('A10G', 70), ('A10', 125), ('RTX 4090', 165))
LR, GRAD_CLIP, SAMPLE_MAX = 1e-4, 5.0, 200
QWEN_ORDINARY, DRY_VOCAB = 151643, 4096   # Qwen3's ordinary tokens (below the special ones); a dry run's vocabulary
MARK = '@@train_step@@ '
MB = 1 << 20


def _rss_mb() -> float:
    "Current resident set size of this process (MB)."
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')


def peak_tflops_of(name: str | None) -> float | None:
    "The datasheet dense bf16 peak of a device name (None if not in the table)."
    for key, v in PEAK_TFLOPS:
        if name and key.lower() in name.lower(): return float(v)
    return None


def _emit(kind: str, **d):
    print(MARK + json.dumps(dict(kind=kind, **d)), flush=True)


# ---------------------------------------------------------------- child side (one stage, a fresh process)
def _tiny_model(job: dict, device: str):
    "The tiny model with the stage's plan (funasr AutoModel)."
    from fun_asr_8k.model import apply_freeze_plan, freeze_plan_config, load_model
    am = load_model(job['model_dir'], device=device, **freeze_plan_config(job['stage']))
    return am, apply_freeze_plan(am.model, job['stage'])   # what train_ds does from freeze_param / lora_only


def _tiny_batches(job: dict, am, device: str, bt: int) -> list:
    "REAL funasr batches of the formatted jsonl at token batch `bt`: [(make() -> batch, meta)]."
    import random, numpy as np, torch
    from funasr.register import tables
    from funasr.train_utils.device_funcs import to_device
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
            srcs = [it.get('source_len', 0) for it in b['item']]
            b = to_device(b, device)
            meta = dict(tokens=sum(srcs), padded_tokens=len(srcs) * max(srcs), utts=len(srcs),
                        audio_s=float(b['speech_lengths'].sum()) * 0.06 if 'speech_lengths' in b else 0.0)
            batches.append(lambda b=b, meta=meta: ({k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                                    for k, v in b.items()}, meta))
            if len(batches) >= need: break
        if len(batches) >= need or not batches: break
    if not batches:
        raise RuntimeError(f'no batch from {job["train"]} at batch_tokens={bt} (utterances longer than the batch?)')
    return batches


def _full_model(job: dict, device: str, work: Path):
    ("The full-size FunASRNanoCTC (FUN_ASR_NANO_2512 + QWEN3_0_6B, as full_size_model configures it) on `device`, "
     "random weights.")
    import copy, torch
    from fun_asr_8k.model import (FUN_ASR_NANO_2512, QWEN3_0_6B, FunASRNanoCTC, apply_freeze_plan, freeze_plan_config,
                                  input_size)
    (work / 'Qwen3-0.6B').mkdir(parents=True, exist_ok=True)
    (work / 'Qwen3-0.6B' / 'config.json').write_text(json.dumps(QWEN3_0_6B))
    (work / 'ctc_tokens.txt').write_text('<unk>\n<blank>\n')   # the CTC head keeps ctc_vocab_size (60515) outputs
    cfg = copy.deepcopy(FUN_ASR_NANO_2512)
    llm_dtype = 'fp32' if job['precision'] == 'fp32' else 'bf16'
    cfg['llm_conf'].update(init_param_path=str(work / 'Qwen3-0.6B'), llm_dtype=llm_dtype)
    cfg['dataset_conf'].update(ctc_tokenizer='CharTokenizer',
                              ctc_tokenizer_conf=dict(token_list=str(work / 'ctc_tokens.txt')))
    plan = freeze_plan_config(job['stage'])
    for k in ('audio_encoder_conf', 'audio_adaptor_conf', 'ctc_decoder_conf', 'llm_conf'): cfg[k].update(plan[k])
    if job.get('depth'):   # dry runs: the full widths, `depth` blocks of the encoder and the LLM
        cfg['audio_encoder_conf'].update(num_blocks=job['depth'], tp_blocks=1)
        small = dict(QWEN3_0_6B, num_hidden_layers=job['depth'], vocab_size=DRY_VOCAB)   # the LM head dominates
        (work / 'Qwen3-0.6B' / 'config.json').write_text(json.dumps(small))
    torch.manual_seed(0)
    with torch.device(device):
        blocks = {k: v for k, v in cfg.items() if k not in ('model', 'detach_ctc_decoder')}
        m = FunASRNanoCTC(input_size=input_size(cfg), **blocks,
                          ctc_train=plan['ctc_train'], peft_lora=plan['peft_lora'],
                          detach_ctc_decoder=plan['detach_ctc_decoder'])
    return apply_freeze_plan(m, job['stage'])


def _index_batches(job: dict, bt: int, lengths: str) -> tuple[dict, list]:
    "Utterance shapes and the index batches to run at token batch `bt` (warm-up ones first)."
    import numpy as np
    need = job['warmup'] + job['steps']
    if lengths == 'fixed' or lengths.startswith('fixed'):
        s = job['utt_seconds'] if lengths == 'fixed' else float(lengths[5:-1])
        one = utterance_shapes(np.array([s]), job['chars_per_s'], jitter=0.0)
        if one['source_len'][0] > bt:
            raise ValueError(f"an utterance of {s} s is {one['source_len'][0]} tokens > batch_tokens {bt}: "
                             'funasr drops it')
        B = min(bt // int(one['source_len'][0]), job['sample_max'] - 1)
        shapes = utterance_shapes(np.full(B, s), job['chars_per_s'], jitter=0.0)
        return shapes, [list(range(B))] * need
    n = max(20000, int(3 * need * bt / 250))        # enough utterances for a few sort buffers of the largest batch
    shapes = utterance_shapes(draw_seconds(lengths, n, 0), job['chars_per_s'], 0)
    from fun_asr_8k.plan import token_batching
    ss = token_batching(bt)['sort_size'] if job['sort_size'] == 'scaled' else int(job['sort_size'])
    epoch = funasr_batches(shapes, bt, ss, job['sample_max'], 0)
    padded = [len(b) * int(shapes['source_len'][b].max()) for b in epoch]
    order = sorted(range(len(epoch)), key=lambda i: int(shapes['source_len'][epoch[i]].sum()))
    k = job['steps']
    timed = [order[min(len(order) - 1, int((j + 0.5) * len(order) / k))] for j in range(k)]
    np.random.default_rng(0).shuffle(timed)
    warm = [int(np.argmax(padded))] + [order[len(order) // 2]] * max(0, job['warmup'] - 1)
    return shapes, [epoch[i] for i in warm + timed]


def _make_batch(shapes: dict, idx: list, device: str, seed: int, vocab: int = QWEN_ORDINARY) -> tuple[dict, dict]:
    "The tensors funasr's FunASR dataset + collator give the utterances `idx` (random content), on `device`."
    import torch
    g = torch.Generator(device=device).manual_seed(seed)
    lfr, fake, text, llm = (shapes[k][idx] for k in ('lfr', 'fake', 'text', 'llm'))
    B, T, L = len(idx), int(lfr.max()), int(llm.max())
    ids = torch.randint(0, vocab, (B, L), generator=g, device=device)
    pos = torch.arange(L, device=device)[None, :]
    n_llm = torch.as_tensor(llm, device=device)[:, None]
    n_prompt = torch.as_tensor(PROMPT_BEFORE + fake + PROMPT_AFTER, device=device)[:, None]
    pad = pos >= n_llm
    labels = ids.clone(); labels[pos < n_prompt] = -100; labels[pad] = -1
    ids[pad] = -1
    speech = torch.randn(B, T, 560, generator=g, device=device)
    speech[torch.arange(T, device=device)[None, :] >= torch.as_tensor(lfr, device=device)[:, None]] = 0.0
    chars = [''.join(chr(0x4E00 + (seed * 7919 + i * 31 + j) % 3000) for j in range(int(t)))
             for i, t in enumerate(text)]
    b = dict(speech=speech, speech_lengths=torch.as_tensor(lfr, device=device), input_ids=ids,
             attention_mask=torch.where(pad, -1, 1).to(torch.int32), labels_ids=labels,
             fbank_beg=torch.full((B, 1), PROMPT_BEFORE, dtype=torch.int32, device=device),
             fake_token_len=torch.as_tensor(fake, dtype=torch.int32, device=device)[:, None],
             item=[dict(key=f'synth{i}', system=['You are a helpful assistant.'], user=['语音转写：<speech>'],
                        assistant=[c], source_len=int(shapes['source_len'][j]))
                   for i, (j, c) in enumerate(zip(idx, chars))])
    src = shapes['source_len'][idx]
    meta = dict(tokens=int(src.sum()), padded_tokens=B * int(src.max()), utts=B,
                audio_s=float(shapes['seconds'][idx].sum()), lfr_padded=B * T, lfr_real=int(lfr.sum()))
    return b, meta


def _batch_shape(shapes: dict, idxs: list) -> dict:
    "A summary of the utterances in the timed batches."
    import numpy as np
    allidx = [i for b in idxs for i in b]
    sec = shapes['seconds'][allidx]
    return dict(utt_seconds_mean=round(float(sec.mean()), 2), utt_seconds_min=float(sec.min()),
                utt_seconds_max=float(sec.max()), fbank_frames_mean=round(float(shapes['frames'][allidx].mean()), 1),
                lfr_frames_mean=round(float(shapes['lfr'][allidx].mean()), 1),
                speech_tokens_mean=round(float(shapes['fake'][allidx].mean()), 1),
                transcript_tokens_mean=round(float(shapes['text'][allidx].mean()), 1),
                llm_seq_len_max=int(max(int(np.max(shapes['llm'][b])) for b in idxs)))


class _Timeout(Exception):
    "The compile time bound ran out."


class _Budget(Exception):
    "The stage's deadline passed before a timed step finished."


def _encoder_layers(encoder) -> list:
    "Every SANM layer of a SenseVoiceEncoderSmall (encoders0, encoders, tp_encoders)."
    return [l for name in ('encoders0', 'encoders', 'tp_encoders') for l in getattr(encoder, name, [])]


def compile_encoder_layers(encoder):
    ("torch.compile each encoder layer (regional: one graph serves all the layers of a width), dynamic shapes, the "
     "FSMN memory (a depthwise Conv1d) left eager: inductor's convolution-backward lowering fixes the length.")
    import torch
    for layer in _encoder_layers(encoder):
        layer.self_attn.forward_fsmn = torch.compiler.disable(type(layer.self_attn).forward_fsmn.__get__(
            layer.self_attn))
        layer.compile(dynamic=True)


def uncompile_encoder_layers(encoder):
    "Undo compile_encoder_layers."
    for layer in _encoder_layers(encoder):
        layer._compiled_call_impl = None
        layer.self_attn.__dict__.pop('forward_fsmn', None)


def _settings_of(base: dict, variant: str) -> dict:
    "The step settings of a variant ('+' joins several)."
    s = dict(base)
    for v in variant.split('+'):
        if v == 'bf16_llm': s['precision'] = 'bf16_llm'
        elif v == 'bf16_all': s['precision'] = 'bf16'
        elif v == 'nondet': s['deterministic'] = False
        elif v == 'fused_adamw': s['fused'] = True
        elif v == 'compile_encoder': s['compile'] = True
        elif v == 'fixed10s': s['lengths'] = 'fixed10s'
        elif v != 'base': raise ValueError(f'unknown variant {v!r}; expected some of {VARIANTS}')
    return s


def _child(job: dict):
    "Build one stage's model; run the sweep's points and the variants; print each result as it is made."
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
    deadline = job.get('deadline') or float('inf')
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix='train_step_full_'))
    try:
        if job['scale'] == 'tiny': am, model = _tiny_model(job, device)
        else: am, model = None, _full_model(job, device, work)
    finally: shutil.rmtree(work, ignore_errors=True)
    build_s = time.perf_counter() - t0
    # after the build: funasr's AutoModel sets torch's threads to its ncpu (4 by default) whatever the machine has
    if job.get('threads'): torch.set_num_threads(job['threads'])
    elif not cuda: torch.set_num_threads(len(os.sched_getaffinity(0)))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_total, n_train = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in params)
    from fun_asr_8k.model import block_table
    blocks = block_table(model)
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    if cuda: sync(); static = torch.cuda.memory_allocated() / MB
    else: static = _rss_mb() - rss0
    gpu = torch.cuda.get_device_name() if cuda else None
    matmul = _matmul_tflops(torch, device) if cuda else None
    peak = job.get('peak_tflops') or peak_tflops_of(gpu)
    encoder = model.audio_encoder
    _emit('build', stage=job['stage'], import_s=import_s, build_s=build_s, static_mb=static, params=n_total,
          trainable=n_train, blocks=blocks, gpu=gpu, matmul_tflops=matmul, peak_tflops=peak,
          ctc_train=bool(getattr(model, 'ctc_train', False)), lora=hasattr(model.llm, 'peft_config'),
          llm_dtype=getattr(model, 'llm_dtype', None), torch_threads=torch.get_num_threads(),
          rss_before_build_mb=None if cuda else rss0)

    def batches_at(bt: int, lengths: str):
        if job['scale'] == 'tiny':
            return _tiny_batches(job, am, device, bt), dict(model_dir=job['model_dir'], data=job['train'])
        shapes, idxs = _index_batches(job, bt, lengths)
        vocab = DRY_VOCAB if job.get('depth') else QWEN_ORDINARY
        return ([(lambda i=i, b=b: _make_batch(shapes, b, device, i, vocab)) for i, b in enumerate(idxs)],
                _batch_shape(shapes, idxs[job['warmup']:]))

    base_flops = {}   # batch tokens -> FLOPs per audio second at the base settings (the same model, same batches)

    def measure(bt: int, s: dict, name: str) -> dict:
        "Warm-up + timed steps at token batch `bt` with settings `s`; FLOPs and phases after."
        torch.backends.cudnn.deterministic = s['deterministic']
        if s['compile']: compile_encoder_layers(encoder)
        opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0, **(dict(fused=True) if s['fused'] else {}))
        outer = s['precision'] == 'bf16' and cuda
        dev_type = 'cuda' if cuda else 'cpu'
        t_make = time.perf_counter()
        makers, shape = batches_at(bt, s['lengths'])
        make_s = time.perf_counter() - t_make
        if cuda: torch.cuda.reset_peak_memory_stats()

        def forward(b):
            with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=bool(outer)):
                return model(**b)

        def step(b, phases=None):
            t = time.perf_counter()
            loss, stats, _ = forward(b)
            if phases is not None: sync(); phases.append(time.perf_counter() - t)
            loss.backward()
            if phases is not None: sync(); phases.append(time.perf_counter() - t)
            gn = torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
            opt.step(); opt.zero_grad(set_to_none=True)
            if phases is not None: sync(); phases.append(time.perf_counter() - t)
            return loss, stats, gn

        times, losses, llm_tokens, metas, warm_times = [], [], [], [], []
        from torch._dynamo.utils import counters
        graphs0 = counters['stats']['unique_graphs']
        for i, maker in enumerate(makers):
            b, meta = maker()
            sync(); t = time.perf_counter()
            loss, stats, gn = step(b)
            sync(); dt = time.perf_counter() - t
            over = time.perf_counter() > deadline
            if i < job['warmup']:
                warm_times.append(dt)
                if over: raise _Budget(f'budget: the deadline passed in warm-up step {i + 1}')
                if i + 1 == job['warmup']: graphs0 = counters['stats']['unique_graphs']
                continue
            times.append(dt); losses.append(float(loss)); metas.append(meta)
            llm_tokens.append(int((b['attention_mask'] > 0).sum()))
            if over and i + 1 < len(makers): break    # cut: fewer timed steps than asked
        total = sum(times)
        peak_mem = (torch.cuda.max_memory_allocated() / MB if cuda
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        audio = sum(m['audio_s'] for m in metas)
        r = dict(stage=job['stage'], name=name, settings=s, batch_tokens=bt, steps=len(times), warmup=job['warmup'],
                 step_s=total / len(times), step_min_s=min(times), step_times=times, warmup_times=warm_times,
                 cut=len(times) < job['steps'], make_s=make_s,
                 tokens_per_step=sum(m['tokens'] for m in metas) / len(times),
                 padded_tokens_per_step=sum(m['padded_tokens'] for m in metas) / len(times),
                 utts_per_step=sum(m['utts'] for m in metas) / len(times),
                 tokens_per_s=sum(m['tokens'] for m in metas) / total, llm_tokens_per_s=sum(llm_tokens) / total,
                 audio_x_real=audio / total, audio_s_per_step=audio / len(times), loss_first=losses[0],
                 loss_last=losses[-1], loss_parts={k: float(stats[k]) for k in ('llm_loss', 'ctc_loss') if k in stats},
                 peak_mb=peak_mem, train_mb=None if cuda else peak_mem - rss0, batch_shape=shape)
        if 'lfr_padded' in metas[0]:
            r['pad_encoder'] = 1 - sum(m['lfr_real'] for m in metas) / sum(m['lfr_padded'] for m in metas)
        if s['compile']:
            r['compile_s'] = max(0.0, sum(warm_times) - len(warm_times) * r['step_s'])
            r['graphs_compiled_in_timed_steps'] = counters['stats']['unique_graphs'] - graphs0   # new lengths
        first = job['warmup']
        count = (job.get('flops', True) and not s['compile']
                 and (s['lengths'] != base['lengths'] or bt not in base_flops))
        if count and time.perf_counter() < deadline:
            from torch.utils.flop_counter import FlopCounterMode
            b, meta = makers[first]()
            # forward and backward counted apart: the module tracker attributes the forward's FLOPs to blocks
            # reliably, the backward's less so (a block's backward also counts in the block whose backward ran before)
            with FlopCounterMode(display=False) as fc:
                loss, _, _ = forward(b)
            with FlopCounterMode(display=False) as fb:
                loss.backward()
            opt.zero_grad(set_to_none=True)
            counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
            flops = fc.get_total_flops() + fb.get_total_flops()
            top = type(model).__name__
            r.update(flops_step=flops, flops_forward=fc.get_total_flops(),
                     flops_per_audio_s=flops / max(meta['audio_s'], 1e-9),
                     flops_forward_blocks={blk: counts.get(f'{top}.{blk}', 0) for blk in
                                           ('audio_encoder', 'audio_adaptor', 'ctc_decoder', 'ctc', 'llm')})
            # the LLM's vocabulary head runs over every position, prompt and speech included
            r['flops_forward_blocks']['llm.lm_head'] = sum(v for k, v in counts.items() if k.endswith('.lm_head'))
            if s['lengths'] == base['lengths']: base_flops[bt] = r['flops_per_audio_s']
        elif bt in base_flops and s['lengths'] == base['lengths']:
            r.update(flops_per_audio_s=base_flops[bt], flops_step=base_flops[bt] * r['audio_s_per_step'])
        if 'flops_per_audio_s' in r:
            achieved = r['flops_per_audio_s'] * r['audio_x_real'] / 1e12
            r['tflops_per_s'] = achieved
            if peak: r['mfu'] = achieved / peak
            if matmul: r['mfu_matmul'] = achieved / matmul
        if time.perf_counter() < deadline:
            b, _ = makers[first](); ph = []
            step(b, ph)
            r['phases_s'] = dict(forward=ph[0], backward=ph[1] - ph[0], optimizer=ph[2] - ph[1])
        opt = None   # noqa: F841  (frees the AdamW state before the next point)
        if s['compile']: uncompile_encoder_layers(encoder)
        return r

    base = dict(precision=job['precision'], deterministic=True, fused=False, compile=False, lengths=job['lengths'])
    done = {}           # batch tokens -> result at the base settings
    oom = False
    for bt in job['batch_tokens']:
        if oom:
            _emit('skip', stage=job['stage'], batch_tokens=bt, why='a smaller batch ran out of memory'); continue
        if time.perf_counter() > deadline:
            _emit('skip', stage=job['stage'], batch_tokens=bt, why='budget: the deadline had passed'); continue
        try:
            r = measure(bt, base, 'base')
        except _Budget as e:
            for q in params: q.grad = None
            _emit('skip', stage=job['stage'], batch_tokens=bt, why=str(e)); continue
        except torch.OutOfMemoryError as e:
            oom = True
            for q in params: q.grad = None
            _emit('oom', stage=job['stage'], batch_tokens=bt, error=str(e).splitlines()[0][:200])
            if cuda: torch.cuda.empty_cache()
            continue
        except ValueError as e:   # an utterance longer than the batch
            _emit('skip', stage=job['stage'], batch_tokens=bt, why=str(e)); continue
        except RuntimeError as e:  # cuBLAS / cuDNN allocation failures are out of memory too; anything else ends
            oom = True          # the sweep (larger batches are not tried) but not the variants, if the device works
            for q in params: q.grad = None
            msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            mem = any(w in msg for w in ('out of memory', 'ALLOC_FAILED', 'NOT_ENOUGH_MEMORY', 'NOT_SUPPORTED'))
            _emit('oom' if mem else 'skip', stage=job['stage'], batch_tokens=bt, error=msg,
                  why=f'{type(e).__name__}: {msg}')
            if cuda:
                try: torch.cuda.empty_cache(); (torch.zeros(1, device=device) + 1).item()
                except RuntimeError: return
            continue
        done[bt] = r
        _emit('point', **r)
    if not job['variants'] or not done: return
    vt = job.get('variant_tokens') or max(done, key=lambda k: done[k]['audio_x_real'])
    if vt not in done:
        try: done[vt] = measure(vt, base, 'base'); _emit('point', **done[vt])
        except (_Budget, RuntimeError) as e:   # out of memory included
            _emit('skip', stage=job['stage'], batch_tokens=vt, why=f'the variants\' batch: {str(e)[:200]}'); return
    ref, helped = done[vt], []
    for v in job['variants']:
        if v == 'best':
            if not helped:
                _emit('skip', stage=job['stage'], batch_tokens=vt, variant=v, why='no variant helped'); continue
            v = 'best=' + '+'.join(helped)
        s = _settings_of(base, v.removeprefix('best='))
        left = deadline - time.perf_counter()
        if left < 2 * ref['step_s'] + 1:
            _emit('skip', stage=job['stage'], batch_tokens=vt, variant=v, why='budget: the deadline had passed')
            continue
        bound = max(1, int(min(job['compile_timeout_s'], left - 3)))
        alarm = s['compile'] and hasattr(signal, 'SIGALRM')
        if alarm:
            def _raise(*_): raise _Timeout()
            signal.signal(signal.SIGALRM, _raise)
            signal.alarm(bound)
        try:
            r = measure(vt, s, v)
        except _Timeout:
            for q in params: q.grad = None
            _emit('skip', stage=job['stage'], batch_tokens=vt, variant=v,
                  why=f"compile + steps did not finish in {bound} s (--compile_timeout_s or the budget)")
            uncompile_encoder_layers(encoder)
            break
        except _Budget as e:
            for q in params: q.grad = None
            _emit('skip', stage=job['stage'], batch_tokens=vt, variant=v, why=str(e))
            uncompile_encoder_layers(encoder)
            continue
        except torch.OutOfMemoryError as e:
            for q in params: q.grad = None
            _emit('oom', stage=job['stage'], batch_tokens=vt, variant=v, error=str(e).splitlines()[0][:200])
            uncompile_encoder_layers(encoder)
            if cuda: torch.cuda.empty_cache()
            continue
        except Exception as e:   # a variant that does not apply here (compile without a compiler, fused on CPU)
            import traceback
            _emit('skip', stage=job['stage'], batch_tokens=vt, variant=v,
                  why=f'{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ""}',
                  trace=traceback.format_exc().splitlines()[-40:])
            uncompile_encoder_layers(encoder)
            continue
        finally:
            if alarm: signal.alarm(0)
        r['audio_speedup'] = r['audio_x_real'] / ref['audio_x_real']
        if '+' not in v and not v.startswith('best') and v != 'fixed10s' and r['audio_speedup'] >= 1.03:
            helped.append(v)
        _emit('variant', **r)


def _matmul_tflops(torch, device: str, n: int = 8192, reps: int = 20) -> float:
    "What a plain bf16 n^3 matmul reaches on this device (TFLOP/s)."
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(reps): a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


# ---------------------------------------------------------------- parent side
def run_child(job: dict, timeout: float | None) -> list[dict]:
    "Run one stage in a fresh process; every record it printed, plus an error record if it failed."
    try:
        r = subprocess.run([sys.executable, __file__, '--_child', json.dumps(job)], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONUNBUFFERED='1'), timeout=timeout)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or '')
        err = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or '')) + '\n(killed: past its deadline)'
        rc = 'timeout'
    recs = [json.loads(line[len(MARK):]) for line in out.splitlines() if line.startswith(MARK)]
    if rc != 0:
        tail = (out + err).strip().splitlines()[-25:]
        oom = any('OutOfMemoryError' in t or 'out of memory' in t.lower() for t in tail)
        recs.append(dict(kind='error', stage=job['stage'], error=('out of memory: ' if oom else '') + f'exit {rc}',
                         tail=tail))
    return recs


def prepare_tiny(work: Path, utts: int) -> dict:
    "A small espeak-ng corpus, its training jsonl (as Stage 0 formats the clean set) and a tiny model dir, in `work`."
    from fun_asr_8k.data import prep_clean
    from fun_asr_8k.corpus import CorpusSpec, make_corpus
    from fun_asr_8k.model import make_tiny_model
    import logging; logging.disable(logging.WARNING)
    t = time.perf_counter()
    info = make_corpus(work / 'corpus',
                       CorpusSpec(general_train=utts, general_dev=2, general_test=0, tel_train=0, tel_dev=0,
                                  tel_test=0, faults=False),
                       progress=False)
    rep = prep_clean(work / 'corpus' / 'general' / 'train_M.jsonl', work / 'train_formatted.jsonl')
    make_tiny_model(work / 'tiny_model', work / 'corpus')
    return dict(model_dir=str(work / 'tiny_model'), train=str(work / 'train_formatted.jsonl'), utterances=rep['n_kept'],
                audio_s=round(rep['hours_kept'] * 3600, 1), prep_s=round(time.perf_counter() - t, 1),
                corpus_hours=info['hours'])


def fmt_params(n: int) -> str:
    return f'{n / 1e9:.2f}B' if n >= 1e9 else f'{n / 1e6:.1f}M' if n >= 1e5 else f'{n / 1e3:.1f}k'


def _pct(x) -> str:
    return f'{100 * x:5.1f}' if x is not None else '    -'


def report(a, device: str, stages: list, plan_tokens: dict, recs: list) -> dict:
    "Print the tables; the ratios."
    cuda = device.startswith('cuda')
    builds = {r['stage']: r for r in recs if r['kind'] == 'build'}
    points = [r for r in recs if r['kind'] == 'point']
    variants = [r for r in recs if r['kind'] == 'variant']
    b0 = next(iter(builds.values()), {})
    print(f"\nscale {a.scale}, device {device}" + (f" ({b0.get('gpu')})" if cuda and b0 else f", {os.cpu_count()} CPUs")
          + f", {a.warmup} warm-up + {a.steps} timed steps a point, precision {a.precision}, lengths {a.lengths}"
          + (f" (sample_max {a.sample_max}, sort_size {a.sort_size})" if a.lengths not in ('fixed',) else '')
          + (f"; DRY RUN: {a.depth} encoder and LLM blocks, not the real model" if a.depth else '')
          + f"; torch threads {b0.get('torch_threads', '?')}")
    if cuda and b0:
        print(f"bf16 peak for MFU: {b0.get('peak_tflops') or '?'} TFLOP/s (datasheet dense bf16, --peak_tflops "
              f"overrides); a plain bf16 8192^3 matmul reaches {b0.get('matmul_tflops') or 0:.0f} TFLOP/s here "
              "(GPU_NOTES: ~790 on the H200)")
    mem = 'peak GB' if cuda else 'peak RSS GB'
    hdr = (f"{'stage':9} {'batch tok':>9} {'utts':>6} {'step s':>7} {'min s':>7} {'tok/s':>8} {'LLM tok/s':>9} "
           f"{'audio x':>8} {mem:>11} {'TFLOP/st':>8} {'TFLOP/s':>7} {'MFU %':>5}"
           + (f" {'MFU mm%':>7}" if cuda else ''))
    print(hdr); print('-' * len(hdr))
    for s in stages:
        for r in recs:
            if r.get('stage') != s or r['kind'] not in ('point', 'oom', 'skip', 'error') or r.get('variant'): continue
            if r['kind'] == 'point':
                print(f"{s:9} {r['batch_tokens']:9d} {r['utts_per_step']:6.1f} {r['step_s']:7.3f} "
                      f"{r['step_min_s']:7.3f} {r['tokens_per_s']:8.0f} {r['llm_tokens_per_s']:9.0f} "
                      f"{r['audio_x_real']:8.1f} "
                      f"{r['peak_mb'] / 1024:11.2f} {r.get('flops_step', 0) / 1e12:8.2f} "
                      f"{r.get('tflops_per_s', 0):7.1f} {_pct(r.get('mfu'))}"
                      + (f" {_pct(r.get('mfu_matmul')):>7}" if cuda else ''))
            elif r['kind'] == 'oom': print(f"{s:9} {r['batch_tokens']:9d} OUT OF MEMORY: the limit")
            elif r['kind'] == 'skip': print(f"{s:9} {r['batch_tokens']:9d} not run: {r['why']}")
            else: print(f"{s:9} FAILED: {r['error']}\n  " + '\n  '.join(r['tail']))
    ratios = {}
    by_stage = {s: {r['batch_tokens']: r for r in points if r['stage'] == s} for s in stages}
    # the reference of each stage: its plan batch when it ran, else its smallest batch
    ref_tokens = {s: plan_tokens[s] if plan_tokens[s] in by_stage[s] else min(by_stage[s], default=None)
                  for s in stages}
    if any(len(v) > 1 for v in by_stage.values()):
        print("\nratio to the stage's plan batch (or its smallest, if the plan's did not run), same process: "
              'tokens/s, audio x, peak memory')
        for s in stages:
            ref = by_stage[s].get(ref_tokens[s])
            if not ref: continue
            for bt, r in sorted(by_stage[s].items()):
                ratios.setdefault(s, {})[bt] = dict(tokens_per_s=r['tokens_per_s'] / ref['tokens_per_s'],
                                                   audio_x_real=r['audio_x_real'] / ref['audio_x_real'],
                                                   peak_mb=r['peak_mb'] / ref['peak_mb'])
                q = ratios[s][bt]
                print(f"  {s:9} {bt:8d}/{ref_tokens[s]:<6d} {q['tokens_per_s']:6.2f} {q['audio_x_real']:6.2f} "
                      f"{q['peak_mb']:6.2f}")
    elif 'stage1' in by_stage and by_stage['stage1']:
        ref = next(iter(by_stage['stage1'].values()))
        key = 'static_mb' if cuda else 'train_mb'
        print(f"\nratio to stage1 (same run)  {'step s':>8} {'tok/s':>8} {'peak mem':>9} "
              f"{'model+train' if not cuda else 'static':>11} {'trainable':>10}")
        for s in stages:
            if not by_stage[s]: continue
            r, b = next(iter(by_stage[s].values())), builds[s]
            rb = builds['stage1']
            own = b['static_mb'] if cuda else r['train_mb']
            refm = rb['static_mb'] if cuda else ref['train_mb']
            ratios[s] = dict(step_s=r['step_s'] / ref['step_s'], tokens_per_s=r['tokens_per_s'] / ref['tokens_per_s'],
                             peak_mb=r['peak_mb'] / ref['peak_mb'], **{key: own / refm if refm else None},
                             trainable=b['trainable'] / rb['trainable'] if rb['trainable'] else None)
            q = ratios[s]
            print(f"{s:27} {q['step_s']:8.2f} {q['tokens_per_s']:8.2f} {q['peak_mb']:9.2f} "
                  f"{(q[key] if q[key] is not None else float('nan')):11.2f} {(q['trainable'] or float('nan')):10.3f}")
    for s in stages:
        b = builds.get(s)
        if not b: continue
        r = next(iter(by_stage[s].values()), None)
        print(f"{s}: build {b['build_s']:.1f} s, {fmt_params(b['trainable'])} of {fmt_params(b['params'])} train "
              f"(ctc_train={b['ctc_train']} lora={b['lora']} llm_dtype={b['llm_dtype']}; "
              + ', '.join(f"{x['block']} {fmt_params(x['trainable'])}" for x in b['blocks'] if x['trainable']) + ')'
              + (f"; loss {r['loss_first']:.3f} -> {r['loss_last']:.3f} {r['loss_parts'] or ''}" if r else ''))
        if r and r.get('flops_forward_blocks'):
            tot = max(r['flops_forward'], 1)
            big = max(by_stage[s].values(), key=lambda x: x['batch_tokens'])
            print(f"  forward FLOPs by block at {r['batch_tokens']}: "
                  + ', '.join(f"{k} {100 * v / tot:.0f}%" for k, v in r['flops_forward_blocks'].items() if v)
                  + f"; backward / forward {(r['flops_step'] - r['flops_forward']) / tot:.2f}; "
                  f"{r['flops_per_audio_s'] / 1e9:.3g} GFLOP per audio second"
                  + (f" ({big['flops_per_audio_s'] / 1e9:.3g} at {big['batch_tokens']})"
                     if big is not r and 'flops_per_audio_s' in big else ''))
        for x in sorted(by_stage[s].values(), key=lambda x: x['batch_tokens']):
            if 'phases_s' in x:
                ph = x['phases_s']; tot = sum(ph.values())
                print(f"  phases at {x['batch_tokens']}: forward {100 * ph['forward'] / tot:.0f}%, backward "
                      f"{100 * ph['backward'] / tot:.0f}%, clip+AdamW {100 * ph['optimizer'] / tot:.0f}% of "
                      f"{tot:.3f} s" + (f"; batch {x['batch_shape']}" if 'utt_seconds_mean' in x['batch_shape'] else '')
                      + (f"; encoder padding {100 * x['pad_encoder']:.1f}%" if 'pad_encoder' in x else ''))
                break
    vrecs = [r for r in recs if r.get('variant') or r['kind'] == 'variant']
    if vrecs:
        print(f"\nvariants, each against the base ({a.precision}, deterministic cuDNN, AdamW foreach) at the same "
              "batch in the same process")
        print(f"{'stage':9} {'variant':32} {'batch':>7} {'step s':>7} {'audio x':>8} {'speed-up':>8} {'peak GB':>8} "
              "note")
        for r in vrecs:
            if r['kind'] != 'variant':
                why = r.get('why') or r.get('error') or ''
                print(f"{r['stage']:9} {r['variant']:32} {r['batch_tokens']:7d} not run: {why[:150]}"); continue
            note = f"compile {r['compile_s']:.0f} s" if 'compile_s' in r else ''
            print(f"{r['stage']:9} {r['name']:32} {r['batch_tokens']:7d} {r['step_s']:7.3f} {r['audio_x_real']:8.1f} "
                  f"{r['audio_speedup']:8.2f} {r['peak_mb'] / 1024:8.2f} {note}")
    summary = {}
    print('\nbest point per stage (audio x real time) against the plan batch (or the smallest that ran):')
    for s in stages:
        cands = list(by_stage[s].values()) + [r for r in variants if r['stage'] == s]
        ref = by_stage[s].get(ref_tokens[s])
        if not cands or not ref: continue
        best = max([r for r in cands if r['settings']['lengths'] == a.lengths], key=lambda r: r['audio_x_real'])
        summary[s] = dict(plan_tokens=ref_tokens[s], plan_audio_x=ref['audio_x_real'],
                          plan_tokens_per_s=ref['tokens_per_s'],
                          best_tokens=best['batch_tokens'], best_name=best['name'], best_audio_x=best['audio_x_real'],
                          best_tokens_per_s=best['tokens_per_s'], best_mfu=best.get('mfu'),
                          speedup=best['tokens_per_s'] / ref['tokens_per_s'])
        q = summary[s]
        print(f"  {s:9} plan {q['plan_tokens']:6d}: {q['plan_audio_x']:8.1f}x   best {q['best_name']} at "
              f"{q['best_tokens']}: {q['best_audio_x']:8.1f}x real time, {q['best_tokens_per_s']:9.0f} tok/s = "
              f"{q['speedup']:.1f}x the plan batch's tokens/s, MFU {_pct(q['best_mfu']).strip()} %")
    if 'stage1' in summary and a.scale == 'full' and cuda:
        q = summary['stage1']
        print(f"  issue 18 targets, stage 1: >= 10x the plan batch's tokens/s: {q['speedup']:.1f}x "
              f"({'met' if q['speedup'] >= 10 else 'not met'}); >= 1,600x real time: {q['best_audio_x']:.0f}x "
              f"({'met' if q['best_audio_x'] >= 1600 else 'not met'})")
    return dict(ratios=ratios, summary=summary)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--scale', choices=('tiny', 'full'), default='tiny')
    p.add_argument('--steps', type=int, default=20, help='timed optimizer steps per point')
    p.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    p.add_argument('--batch_tokens', default=None,
                   help='token batch(es) of every stage, a comma list sweeps (default: the stage defaults, see above)')
    p.add_argument('--sweep', action='store_true', help="sweep each stage's default batch and 8192..262144 (full)")
    p.add_argument('--device', default=None, help='cpu | cuda (default: cpu for tiny, cuda for full)')
    p.add_argument('--bf16', action='store_true', help='= --precision bf16 (train.py bf16=True)')
    p.add_argument('--precision', choices=PRECISIONS, default=None, help='full scale (default fp32; see above)')
    p.add_argument('--stages', default=','.join(STAGES))
    p.add_argument('--utts', type=int, default=40, help='tiny: utterances in the synthesised corpus')
    p.add_argument('--utt_seconds', type=float, default=10.0, help='full, --lengths fixed: utterance length')
    p.add_argument('--lengths', choices=('fixed',) + tuple(MIXES), default='fixed', help='full: the utterance lengths')
    p.add_argument('--sample_max', type=int, default=SAMPLE_MAX,
                   help="funasr's batch_size_sample_max (at most this - 1 utterances a batch; funasr's default 200)")
    p.add_argument('--sort_size', default='1024', help="funasr's sort buffer for mixed lengths: N or 'scaled' "
                   '(plan.token_batching: 1024 x batch / 8192, at least 1024)')
    p.add_argument('--chars_per_s', type=float, default=4.0, help='full: transcript characters per second of audio')
    p.add_argument('--variants', default='', help=f'comma list of {VARIANTS} ("+" joins), see above')
    p.add_argument('--variant_stages', default='stage1', help='stages that run the variants')
    p.add_argument('--variant_tokens', type=int, default=None, help="variants' batch (default: the sweep's fastest)")
    p.add_argument('--compile_timeout_s', type=float, default=90.0)
    p.add_argument('--peak_tflops', type=float, default=None, help='bf16 peak for MFU (default: by device name)')
    p.add_argument('--no_flops', action='store_true', help='skip the FLOP count (and MFU)')
    p.add_argument('--budget_s', type=float, default=None, help='wall-clock bound of the whole run (see above)')
    p.add_argument('--depth', type=int, default=0,
                   help='full, dry runs only: encoder and LLM blocks (full widths; 0: the real 50 + 20 and 28)')
    p.add_argument('--threads', type=int, default=0,
                   help='torch threads, set after the model is built (0: the CPUs this process may use on CPU; '
                        'on GPU as left by the build)')
    p.add_argument('--json', default=None)
    a = p.parse_args()
    t_all = time.perf_counter()
    device = a.device or ('cpu' if a.scale == 'tiny' else 'cuda')
    a.precision = 'bf16' if a.bf16 else (a.precision or 'fp32')
    stages = [s.strip() for s in a.stages.split(',') if s.strip()]
    if bad := [s for s in stages if s not in STAGES]: p.error(f'unknown stage(s) {bad}; expected {STAGES}')
    if a.steps < 1 or a.warmup < 0: p.error('--steps >= 1 and --warmup >= 0')
    variants = [v.strip() for v in a.variants.split(',') if v.strip()]
    for v in variants:
        if bad := [x for x in v.split('+') if x not in VARIANTS]:
            p.error(f'--variants: unknown {bad}; expected {VARIANTS}')
    if variants and a.scale == 'tiny' and any(x in v for v in variants for x in ('fixed10s',)):
        p.error('--variants fixed10s: full scale only')
    if a.sort_size != 'scaled' and not a.sort_size.isdigit(): p.error("--sort_size: a number or 'scaled'")
    if a.sample_max < 2: p.error('--sample_max >= 2')
    if device.startswith('cuda'):
        import torch
        if not torch.cuda.is_available(): p.error(f'--device {device}: no CUDA here (torch {torch.__version__})')
    try: given = [int(x) for x in a.batch_tokens.split(',') if x.strip()] if a.batch_tokens else []
    except ValueError: p.error(f'--batch_tokens {a.batch_tokens!r}: expected integers like 8192,32768')
    plan_tokens = {s: DEFAULT_TOKENS[a.scale][s] for s in stages}
    tokens = {}
    for s in stages:
        bts = set(given or [plan_tokens[s]])
        if a.sweep: bts |= set(SWEEP[a.scale]) | {plan_tokens[s]}
        tokens[s] = sorted(bts)
    if given and not a.sweep and len(given) == 1: plan_tokens = {s: given[0] for s in stages}
    var_stages = [s.strip() for s in a.variant_stages.split(',') if s.strip()] if variants else []
    work = Path(tempfile.mkdtemp(prefix='train_step_'))
    recs = []
    try:
        base = dict(scale=a.scale, device=device, steps=a.steps, warmup=a.warmup, precision=a.precision,
                    threads=a.threads, utt_seconds=a.utt_seconds, chars_per_s=a.chars_per_s, lengths=a.lengths,
                    sample_max=a.sample_max, sort_size=a.sort_size, flops=not a.no_flops,
                    peak_tflops=a.peak_tflops, compile_timeout_s=a.compile_timeout_s,
                    variant_tokens=a.variant_tokens, depth=a.depth)
        data = prepare_tiny(work, a.utts) if a.scale == 'tiny' else {}
        if data:
            print(f"tiny model + {data['utterances']} utterances ({data['audio_s']} s of audio) "
                  f"made in {data['prep_s']} s under {work}")
        for i, s in enumerate(stages):
            deadline = timeout = None
            if a.budget_s:
                left = a.budget_s - (time.perf_counter() - t_all)
                shares = [3 if x in var_stages else 1 for x in stages[i:]]
                deadline = time.time() + left * shares[0] / sum(shares)
                if left < 20: recs.append(dict(kind='skip', stage=s, batch_tokens=0, why='budget spent')); continue
            job = dict(base, **data, stage=s, batch_tokens=tokens[s], variants=variants if s in var_stages else [],
                       deadline=None)
            if deadline:   # the child's clock: time.perf_counter() differs between processes; pass a wall deadline
                job['deadline_wall'] = deadline
                timeout = deadline - time.time() + 20
            got = run_child(job, timeout)
            recs += got
            pts = [r for r in got if r['kind'] == 'point']
            err = [r for r in got if r['kind'] == 'error']
            print(f"{s}: {len(pts)} point(s) {[r['batch_tokens'] for r in pts]}"
                  + (f", {len([r for r in got if r['kind'] == 'variant'])} variant(s)" if job['variants'] else '')
                  + (f"; FAILED ({err[0]['error']})" if err else '') + f"; {time.perf_counter() - t_all:.0f} s",
                  flush=True)
    finally: shutil.rmtree(work, ignore_errors=True)
    out = report(a, device, stages, plan_tokens, recs)
    print(f'total {time.perf_counter() - t_all:.0f} s')
    if a.json:
        Path(a.json).write_text(json.dumps(dict(args=vars(a), device=device, batch_tokens=tokens, data=data,
                                                records=recs, results=[r for r in recs if r['kind'] == 'point'],
                                                **out, platform=platform.platform(),
                                                python=platform.python_version()),
                                           indent=1, ensure_ascii=False))
    failed = [s for s in stages if not any(r['kind'] == 'point' and r['stage'] == s for r in recs)
              and not any(r['kind'] == 'skip' and r['stage'] == s for r in recs)]
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--_child':
        job = json.loads(sys.argv[2])
        if job.get('deadline_wall'):
            job['deadline'] = time.perf_counter() + (job['deadline_wall'] - time.time())
        _child(job)
    else: main()
