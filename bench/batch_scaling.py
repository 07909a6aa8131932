"""Does a larger token batch keep quality? Stage 1 at smoke scale: the plan's batch against k x the batch.

What it runs: stage 1 (`fun_asr_8k.stage.run_stage`, the one trainer, funasr's own loop) on the smoke data of an
`exp_output` (Stage 0's `data/`, made by `fa8k-run 0 0 --exp_output DIR`), once with the plan's smoke numbers
(`SETTINGS[('stage1', 'smoke')]`: lr, token batch, warm-up, epochs) and once per lr rule with --factor x the token
batch, the peak lr `plan.scaled_lr(lr, k x batch, batch, rule)` and the warm-up `plan.scaled_warmup` (the same audio
as the plan's warm-up, so the schedule as a function of audio seen is the plan's times the lr factor). Every run has
the same epochs, hence sees the same audio hours. Each run trains in its own folder under --work (its `data/` a
symlink to the given exp_output's), so a rerun reuses finished runs (run_stage skips a stage whose pointer exists) and
trains only what is missing; --force retrains.

What it prints: per run, the token batch, utterances per optimizer step (training lines / steps of the first epoch),
peak lr, warm-up steps, optimizer steps, the dev CER (%) at the start (the released model) and after each epoch
(train.log's epoch lines: the stage's dev set, all its utterances when it has no more than --dev_utts), the CER of the
last epoch on the test set of the same data set (held-out speakers), the last training loss and the wall time; then
each large-batch run's difference to the plan's batch of the same seed at the same audio hours. Writes
`batch_scaling.png` (dev CER against audio hours seen, every run on one plot) and `batch_scaling.json` to --out.

Run: python bench/batch_scaling.py --exp_output /work/scratch18/exp_output --work /work/scratch18/batch_scaling
     [--factor 4] [--rules linear,sqrt] [--seeds 0] [--epochs N] [--out reports/batch_scaling] [--no_test] [--force]
Time: about 2 minutes per run on one core of a 2-core machine (--seeds 0,1 --rules linear,sqrt: 6 runs).
"""
import argparse, json, os, sys, time
from pathlib import Path


def audio_hours(jsonl: Path) -> tuple[int, float]:
    "Lines and hours of audio (speech_length in 10 ms fbank frames) of a formatted jsonl."
    n, frames = 0, 0
    for line in open(jsonl, encoding='utf-8'):
        if line.strip(): n += 1; frames += json.loads(line)['speech_length']
    return n, frames / 100 / 3600


def run_folder(work: Path, exp_output: Path, name: str) -> Path:
    "An exp_output of its own for one run, its data/ a symlink to the shared one."
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    if not (d / 'data').exists(): (d / 'data').symlink_to(exp_output.absolute() / 'data')
    return d


def test_cer(stage_out: Path, epoch: int, test: Path, n: int) -> float:
    "CER (%) of the checkpoint of `epoch` on the first `n` utterances of `test` (all of them when it has fewer)."
    from fun_asr_8k.model import load_checkpoint
    from fun_asr_8k.train import dev_sample, dev_scores
    am = load_checkpoint(stage_out / f'model.pt.ep{epoch}')
    items = dev_sample(test, n, 0)
    return dev_scores(am.model, items, am.kwargs['tokenizer'], am.kwargs['frontend'])['cer']


def one_run(name: str, folder: Path, args, **numbers) -> dict:
    "Train stage 1 with `numbers` (lr, batch_tokens, warmup, epochs, seed) in `folder`; its curve and costs."
    from fun_asr_8k.plan import data_file, stage_dir
    from fun_asr_8k.stage import run_stage
    from fun_asr_8k.stage_config import StageParams
    from fun_asr_8k.train import read_log
    p = StageParams(stage='stage1', scale='smoke', exp_output=str(folder), dev_utts=args.dev_utts, force=args.force,
                    **numbers)
    t = time.perf_counter()
    rep = run_stage(p)
    out = stage_dir(folder, 'stage1')
    log = read_log(out / 'train.log')
    epochs = list({l['epoch']: l for l in log if l.get('event') == 'epoch'}.values())
    steps = [l for l in log if l.get('event') == 'step']
    n_train, hours = audio_hours(data_file(folder, 'simulated_8k_telephone', 'train'))
    steps_ep1 = max((l['step'] for l in steps if l['epoch'] == 1), default=0)
    r = dict(name=name, **numbers, train_lines=n_train, hours_per_epoch=round(hours, 4),
             steps=max((l['step'] for l in steps), default=0), steps_epoch1=steps_ep1,
             utts_per_step=round(n_train / steps_ep1, 1) if steps_ep1 else None,
             start_cer=rep['choice']['start']['cer'],
             curve=[dict(epoch=l['epoch'], hours=round(l['epoch'] * hours, 4), dev_cer=l['dev_cer'],
                         dev_loss=l['dev_loss'], train_loss=l['train_loss']) for l in epochs],
             chosen=rep['choice']['chosen'], chosen_cer=rep['choice']['chosen_scores']['cer'],
             last_loss=rep['last_loss'], wall_s=rep['wall_s'], dev_utts=rep['choice']['dev_utts'])
    if not args.no_test:
        test = data_file(folder, 'simulated_8k_telephone', 'test')
        r['test_cer_last'] = test_cer(out, epochs[-1]['epoch'], test, args.test_utts)
        r['test_utts'] = min(args.test_utts, audio_hours(test)[0])
    print(f"{name}: done in {time.perf_counter() - t:.0f} s (training wall {rep['wall_s']} s)", flush=True)
    return r


def config_of(r: dict) -> str:
    "A run's configuration without its seed: plan, or the lr rule of the larger batch."
    return r['name'].rsplit('_s', 1)[0]


def plot(runs: list, path: Path, title: str):
    "Dev CER against audio hours seen: each configuration's mean over seeds (thick), each seed (thin)."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    configs = list(dict.fromkeys(config_of(r) for r in runs))
    top = 0.0
    for k, c in enumerate(configs):
        rs = [r for r in runs if config_of(r) == c]
        xs = [0.0] + [x['hours'] for x in rs[0]['curve']]
        for r in rs:
            ax.plot(xs, [r['start_cer']] + [x['dev_cer'] for x in r['curve']], color=f'C{k}', alpha=0.3, lw=1)
        mean = [sum(r['curve'][i]['dev_cer'] for r in rs) / len(rs) for i in range(len(xs) - 1)]
        top = max(top, max(x['dev_cer'] for r in rs for x in r['curve']))
        label = rs[0]['label'].rsplit(' (seed', 1)[0] + f' (mean of {len(rs)} seeds)'
        ax.plot(xs, [rs[0]['start_cer']] + mean, 'o-' if c.startswith('plan') else 's--', color=f'C{k}', lw=2,
                label=label)
    ax.set(xlabel=f"audio hours seen (the released model at 0 h: {runs[0]['start_cer']:.1f} %, off the axis)",
           ylabel='dev CER, %', title=title)
    ax.set_ylim(0, top * 1.15); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=110)


def config_means(runs: list, base: str) -> list[dict]:
    "Per configuration: dev CER per epoch, chosen and last-epoch test CER, each the mean over seeds, and the spread."
    out = []
    for c in dict.fromkeys(config_of(r) for r in runs):
        rs = [r for r in runs if config_of(r) == c]
        mean = lambda f: sum(f(r) for r in rs) / len(rs)   # noqa: E731
        last = [r['curve'][-1]['dev_cer'] for r in rs]
        out.append(dict(config=c, seeds=[r['seed'] for r in rs], batch_tokens=rs[0]['batch_tokens'], lr=rs[0]['lr'],
                        warmup=rs[0]['warmup'], dev_cer=[mean(lambda r: r['curve'][i]['dev_cer'])
                                                        for i in range(len(rs[0]['curve']))],
                        dev_cer_last_range=[min(last), max(last)], chosen_cer=mean(lambda r: r['chosen_cer']),
                        test_cer=mean(lambda r: r['test_cer_last']) if 'test_cer_last' in rs[0] else None,
                        wall_s=mean(lambda r: r['wall_s'])))
    ref = next(m for m in out if m['config'] == base)
    for m in out:
        m['dev_cer_diff'] = [x - y for x, y in zip(m['dev_cer'], ref['dev_cer'])]
        m['test_cer_diff'] = None if m['test_cer'] is None else m['test_cer'] - ref['test_cer']
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--exp_output', required=True, help="an exp_output whose data/ Stage 0 made (fa8k-run 0 0)")
    p.add_argument('--work', required=True, help='one exp_output per run goes here (outside the repository)')
    p.add_argument('--factor', type=float, default=4.0, help='the larger batch is factor x the plan smoke batch')
    p.add_argument('--rules', default='linear,sqrt', help='lr rules for the larger batch (plan.LR_RULES)')
    p.add_argument('--seeds', default='0', help='seeds (dropout, dither); the plan batch runs for each too')
    p.add_argument('--epochs', type=int, default=None, help="epochs of every run (default: the plan's smoke epochs)")
    p.add_argument('--dev_utts', type=int, default=100)
    p.add_argument('--test_utts', type=int, default=120)
    p.add_argument('--no_test', action='store_true', help='skip the test-set CER of the last epoch')
    p.add_argument('--out', default='reports/batch_scaling', help='batch_scaling.png and .json go here')
    p.add_argument('--force', action='store_true', help='retrain runs that finished before')
    a = p.parse_args()
    from fun_asr_8k.plan import LR_RULES, SETTINGS, data_file, scaled_lr, scaled_warmup
    exp_output, work = Path(a.exp_output), Path(a.work)
    train = data_file(exp_output, 'simulated_8k_telephone', 'train')
    if not train.is_file():
        print(f'error: {train} does not exist; make the smoke data with: fa8k-run 0 0 --exp_output {exp_output}',
              file=sys.stderr); sys.exit(2)
    rules = [r.strip() for r in a.rules.split(',') if r.strip()]
    if bad := [r for r in rules if r not in LR_RULES]: p.error(f'--rules {bad}: expected some of {LR_RULES}')
    if a.factor <= 0: p.error('--factor must be > 0')
    try: seeds = [int(s) for s in a.seeds.split(',')]
    except ValueError: p.error(f'--seeds {a.seeds!r}: expected integers like 0,1')
    plan = SETTINGS[('stage1', 'smoke')]
    epochs = a.epochs or plan['epochs']
    base_bt = plan['batch_tokens']
    big_bt = int(round(a.factor * base_bt))
    jobs = []
    for seed in seeds:
        jobs.append((f'plan_b{base_bt}_s{seed}', f'plan batch {base_bt}, lr {plan["lr"]:g}, warm-up {plan["warmup"]}'
                     f' (seed {seed})', dict(lr=plan['lr'], batch_tokens=base_bt, warmup=plan['warmup'], seed=seed)))
        for rule in rules:
            lr = scaled_lr(plan['lr'], big_bt, base_bt, rule)
            wu = scaled_warmup(plan['warmup'], big_bt, base_bt)
            jobs.append((f'{rule}_b{big_bt}_s{seed}', f'{a.factor:g}x batch {big_bt}, {rule} lr {lr:g}, warm-up {wu}'
                         f' (seed {seed})', dict(lr=lr, batch_tokens=big_bt, warmup=wu, seed=seed)))
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    t0, runs = time.perf_counter(), []
    for name, label, nums in jobs:
        r = one_run(name, run_folder(work, exp_output, name), a, epochs=epochs, **nums)
        runs.append(dict(r, label=label))
    dev = data_file(exp_output, 'simulated_8k_telephone', 'dev')
    n_dev, h_dev = audio_hours(dev)
    n_train, h_train = audio_hours(train)
    print(f"\nstage 1 at smoke scale, {epochs} epochs each: train {train} ({n_train} lines, {h_train:.3f} h a epoch); "
          f"dev CER on {runs[0]['dev_utts']} of {n_dev} lines of {dev} ({h_dev:.3f} h)"
          + ('' if a.no_test else f"; test CER of the last epoch on {runs[0]['test_utts']} lines of "
             f"{data_file(exp_output, 'simulated_8k_telephone', 'test')}"))
    head = (f"{'run':22} {'batch':>6} {'utts/step':>9} {'lr':>8} {'warm-up':>7} {'steps':>5} {'start':>6} "
            + ' '.join(f"{'ep' + str(c['epoch']) + ' ' + format(c['hours'], '.1f') + 'h':>9}" for c in runs[0]['curve'])
            + f" {'chosen':>7} {'test':>6} {'loss':>6} {'wall s':>6}")
    print(head); print('-' * len(head))
    for r in runs:
        print(f"{r['name']:22} {r['batch_tokens']:6d} {r['utts_per_step'] or 0:9.1f} {r['lr']:8.2g} {r['warmup']:7d} "
              f"{r['steps']:5d} {r['start_cer']:6.2f} " + ' '.join(f"{c['dev_cer']:9.2f}" for c in r['curve'])
              + f" {r['chosen_cer']:7.2f} {r.get('test_cer_last', float('nan')):6.2f} {r['last_loss']:6.3f} "
              f"{r['wall_s']:6.0f}")
    means = config_means(runs, f'plan_b{base_bt}')
    print(f"\nmean over seeds {seeds}; differences to the plan batch's mean in percentage points (+: worse)")
    print(f"{'configuration':18} " + ' '.join(f"{'dev ep' + str(c['epoch']):>8}" for c in runs[0]['curve'])
          + f" {'last range':>12} {'chosen':>7} {'test':>6}   differences: dev per epoch; test")
    for m in means:
        print(f"{m['config']:18} " + ' '.join(f"{x:8.2f}" for x in m['dev_cer'])
              + f" {m['dev_cer_last_range'][0]:5.1f}-{m['dev_cer_last_range'][1]:<5.1f} {m['chosen_cer']:7.2f} "
              + (f"{m['test_cer']:6.2f}" if m['test_cer'] is not None else '     -') + '   '
              + ' '.join(f"{x:+.2f}" for x in m['dev_cer_diff'])
              + (f"; {m['test_cer_diff']:+.2f}" if m['test_cer_diff'] is not None else ''))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    plot(runs, out / 'batch_scaling.png', f'stage 1 (smoke): plan batch {base_bt} vs {a.factor:g}x ({big_bt}), '
         f'{epochs} epochs')
    (out / 'batch_scaling.json').write_text(json.dumps(dict(
        command=' '.join(sys.argv), epochs=epochs, factor=a.factor, train=str(train), train_lines=n_train,
        train_hours=h_train, dev=str(dev), dev_lines=n_dev, runs=runs, means=means,
        wall_s=round(time.perf_counter() - t0, 1)),
        indent=1, ensure_ascii=False))
    print(f"wrote {out / 'batch_scaling.png'}, {out / 'batch_scaling.json'}; total {time.perf_counter() - t0:.0f} s")


if __name__ == '__main__':
    main()
