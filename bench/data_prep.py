"""Stage 0 data prep (`fun_asr_8k.data`): utterances per second, peak memory at two corpus sizes, and the 1000 h \
estimate.

What it measures: the two halves of Stage 0, each run on its own, because they differ in cost and size:
  simulated  `prep_simulated` on a general-set manifest (16 kHz): transcript filter, the telephone channel (preset
             `plan`, through `simulate_manifest`) written as 16 kHz wavs, then formatting. This is the half that must
             get through WenetSpeech's 1000 h; the estimate is made from it.
  real       `prep_real` on a telephone manifest (8 kHz): transcript filter, read, soxr 8k->16k, write, format.
  clean      `prep_clean` on the general-set manifest: the general set as it is (clean_16k), formatting only (wav
             headers, no audio processing), serial in the main process; no floor, one worker.
`prep()` calls exactly these functions, one after another, once per split, with the same arguments; calling them
directly keeps their numbers apart.

Corpus: `make_corpus` synthesises a small base corpus once (espeak-ng, --base utterances per half, about 3-4 s each,
cached in WORK/corpus). The two corpus sizes are made WITHOUT more synthesis: a manifest of N lines repeats the base
audio under distinct keys (`<key>__r0003`), so each line is its own utterance to Stage 0 (its own output wav, journal
line, channel seed and babble draw) while the inputs are the same ~100 files, read from the page cache (read once
before timing). Reading is therefore cheaper than from a real corpus on disk; the floor gets the same advantage.
N >= 200 so that the babble pool (200 utterances) is full at both sizes.

Each (half, size, workers, job) runs in a fresh Python process (this file with a hidden --_child flag), as `fa8k-prep`
would, --repeats times from an empty output folder (Stage 0 resumes from its journal) after `sync`; the fastest wall
time and the largest memory peak count. The child times only the call ("proc s" adds interpreter start and imports)
and reports getrusage: RUSAGE_SELF.ru_maxrss is the main process's peak ("main MB"), RUSAGE_CHILDREN.ru_maxrss the
largest peak of one worker it reaped ("worker MB"; Linux takes the max, not the sum). The parent also samples the summed
RSS of the whole process tree every 50 ms from /proc ("tree MB": what the node holds at once).

Outputs go to --out (default: a folder in /dev/shm, so that the numbers are CPU cost per core, not this machine's disk;
the printed write bandwidth says what the node's disk must sustain instead). Pass --out on a real disk to see it.

The floor, measured in the same run over the same manifests: a plain loop that reads each wav (soundfile), does the
resampling the half cannot avoid with soxr HQ (simulated: 16k->8k->16k; real: 8k->16k) and writes a 16 kHz PCM_16 wav
(one write, same two-level folder layout); with workers > 1 the same spawn Pool and chunksize as Stage 0.
"x floor" = Stage 0 time / floor time: what the channel, journaling, atomic writes and formatting add on top of the
unavoidable I/O and resampling.

Rates: "utt/s" and "x real" (seconds of audio per second) of each run include the fixed costs of a call (spawning
workers, loading the babble pool). The "marginal" rates divide the extra lines (and audio) of the large size by its
extra time: fixed costs cancel, which is what matters for 1000 h, and the fixed cost of a call is reported apart.
Scaling = marginal rate with W workers / (W x marginal rate with 1). "main ms/line": CPU the main process spends per
line while workers run (receiving results, writing the journal, formatting): it bounds how many workers one main
process can feed, printed as its load at 16 workers.

Memory: flat means the peak does not grow with the corpus. What remains O(lines) is bookkeeping in the main process:
item tuples, the journal dict of every result by line (`run_journaled`), input lines and formatted lines. It is measured
two ways: the RSS slope between the two sizes, and tracemalloc of those structures rebuilt from the large run's
manifest, journal and output; both are extrapolated to 1M lines. The babble pool (200 utterances at 8 kHz float32) is
the main fixed cost: built in the main process and pickled to every worker, so held 1 + workers times.

The 1000 h estimate: the marginal per-core "x real time" of the simulated half with one worker (--rate cpu: seconds
of audio per CPU second, which other processes on a shared machine barely change; --rate wall: per wall second),
assumed to scale linearly over 16 worker processes on a 16-core node, with reads and writes as fast as here; and no
faster than the main process can take the lines (its marginal CPU per line with workers x the number of lines), for
the plan's line count and for lines as long as this corpus's. The plan's numbers give the implied utterance length
(1000 h / 65,170 lines of train_M). Targets (the plan's 4-6 h budget; the aim of under 10 minutes) are printed as
ratios, never asserted: the exit status is non-zero only if a measurement crashed.

Run: python bench/data_prep.py [--sizes 400,1600] [--workers 1,2] [--repeats 2] [--rate cpu] [--base 100] [--work DIR]
                               [--out DIR] [--keep] [--json out.json]
Default run: 1.5-2.5 minutes on a 2-core machine, depending on what else runs there (plus ~5 s of synthesis).
"""
import os
for _v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ[_v] = '1'
import argparse, atexit, io, json, platform, resource, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

PLAN_HOURS, PLAN_TRAIN_LINES, PLAN_BUDGET_H, AIM_MIN, CORES = 1000, 65_170, (4, 6), 10, 16
REAL_HOURS = 50            # the plan's real telephone-sales set
POOL_SIZE = 200            # simulate_manifest's default babble pool
OUT_BYTES_PER_S = 32_000   # 16 kHz PCM_16 output
MB = 1 << 20

# ---------------------------------------------------------------- child side (a fresh process per measurement)
def _floor_item(item):
    ("Read one wav, resample as the half must (soxr HQ), write 16 kHz PCM_16 in one write: the unavoidable work of one "
     "utterance.")
    import soundfile as sf, soxr
    source, out, rates = item
    x, sr = sf.read(source, dtype='float32')
    for r in rates: x, sr = soxr.resample(x, sr, r, quality='HQ'), r
    buf = io.BytesIO(); sf.write(buf, x, sr, format='WAV', subtype='PCM_16')
    Path(out).parent.mkdir(parents=True, exist_ok=True); Path(out).write_bytes(buf.getvalue())
    return len(x)

def _child(job: dict) -> dict:
    "Run one measured job in this process: wall time of the call alone, CPU of the main process and its workers, peaks."
    t_import = time.perf_counter()
    import multiprocessing as mp
    from fun_asr_8k.manifest import output_wav_path
    from fun_asr_8k.data import prep_clean, prep_real, prep_simulated
    t0, c0, k0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out, res = Path(job['out']), {}
    if job['half'] == 'clean':
        rep = prep_clean(job['manifest'], out / 'formatted.jsonl')
        res.update(n_kept=rep['n_kept'], audio_s=rep['hours_kept'] * 3600)
    elif job['kind'] == 'prep':
        fn = prep_simulated if job['half'] == 'simulated' else prep_real
        rep = fn(job['manifest'], out / 'split', out / 'formatted.jsonl', workers=job['workers'], progress=False)
        res.update(n_kept=rep['n_kept'], audio_s=rep['hours_kept'] * 3600)
    else:
        rates = (8000, 16000) if job['half'] == 'simulated' else (16000,)
        with open(job['manifest'], encoding='utf-8') as f:
            items = [(d['source'], str(output_wav_path(out / 'split', d['key'])), rates) for d in map(json.loads, f)]
        if job['workers'] > 1:
            with mp.get_context('spawn').Pool(job['workers']) as p: n = list(p.imap(_floor_item, items, chunksize=4))
        else: n = list(map(_floor_item, items))
        res.update(n_kept=len(n), audio_s=sum(n) / 16000)
    wall = time.perf_counter() - t0
    k1, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return dict(res, wall_s=wall, import_s=t0 - t_import, cpu_main_s=time.process_time() - c0,
                cpu_workers_s=(k1.ru_utime - k0.ru_utime) + (k1.ru_stime - k0.ru_stime),
                rss_main_mb=me.ru_maxrss / 1024, rss_worker_mb=k1.ru_maxrss / 1024 if job['workers'] > 1 else None)

def _bookkeeping(job: dict) -> dict:
    ("Bytes per line of what the main process keeps for every line (tracemalloc, rebuilt as Stage 0 builds it); the "
     "babble pool.")
    import tracemalloc
    from fun_asr_8k.channel import load_babble_pool
    from fun_asr_8k.manifest import output_wav_path, unique_items
    from fun_asr_8k.store import read_journals
    def traced(build):
        tracemalloc.start(); obj = build(); size = tracemalloc.get_traced_memory()[0]; tracemalloc.stop()
        return obj, size
    m, split, formatted = Path(job['manifest']), Path(job['out']) / 'split', Path(job['out']) / 'formatted.jsonl'
    sim = job['half'] == 'simulated'
    if sim:   # simulate_manifest's items
        items, b_items = traced(lambda: [(it.lineno, it.key, str(it.source),
                                          str(output_wav_path(split / 'channel', it.key)))
                                         for it in unique_items(m)])
    else:     # prep_real's items
        items, b_items = traced(lambda: [(it.lineno, it.key, str(it.source), it.target,
                                          str(output_wav_path(split, it.key)))
                                         for it in unique_items(m)])
    done, b_journal = traced(lambda: read_journals(split / 'channel' / '.journal' if sim else split / '.journal'))
    n, text_b = len(items), formatted.stat().st_size
    out = dict(lines=n, journal_lines=len(done), items_b=b_items / n, journal_b=b_journal / n,
               formatted_text_b=text_b / n)
    # prep_simulated also keeps its input lines, then builds a key -> line dict and the kept dicts
    if sim:
        lines, b_lines = traced(lambda: [json.dumps(dict(key=it.key, source=str(it.source), target=it.target,
                                                         line=it.lineno), ensure_ascii=False) + '\n'
                                         for it in unique_items(m)])
        _, b_orig = traced(lambda: {json.loads(l)['key']: json.loads(l)['line'] for l in lines})
        _, b_kept = traced(lambda: [json.loads(l) for l in open(formatted, encoding='utf-8')])
        out.update(input_lines_b=b_lines / n, key_to_line_b=b_orig / n, kept_b=b_kept / n,
                   phases={'during the channel': (b_lines + b_items + b_journal) / n,
                           'formatting': (b_lines + b_orig + b_kept + text_b) / n})
        pool = load_babble_pool(items, 0, POOL_SIZE)
        out.update(pool_utts=len(pool), pool_mb=sum(a.nbytes for a in pool.audio.values()) / MB,
                   pool_mean_s=sum(len(a) for a in pool.audio.values()) / 8000 / len(pool))
    else:     # prep_real's kept list points into the journal dict
        out.update(phases={'resampling + formatting': (b_items + b_journal + text_b) / n})
    out['per_line_b'] = max(out['phases'].values())
    return out

# ---------------------------------------------------------------- parent side
def _tree_rss_mb(pid: int) -> float:
    "Summed RSS of `pid` and all its descendants, from /proc (Linux: task/*/children lists each thread's children)."
    todo, rss, page = [pid], 0, os.sysconf('SC_PAGE_SIZE')
    while todo:
        p = todo.pop()
        try:
            with open(f'/proc/{p}/statm') as f: rss += int(f.read().split()[1]) * page
            for t in os.listdir(f'/proc/{p}/task'):
                with open(f'/proc/{p}/task/{t}/children') as f: todo += [int(c) for c in f.read().split()]
        except (OSError, IndexError, ValueError): pass
    return rss / MB

def _busy_s() -> float:
    "CPU seconds the whole machine has been busy (all cores, /proc/stat: everything but idle and iowait)."
    with open('/proc/stat') as f: v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf('SC_CLK_TCK')

def run_child(job: dict, flag: str = '--_child') -> dict:
    ("Run `job` in a fresh interpreter: its result, wall time, sampled tree peak, and the cores other processes kept "
     "busy meanwhile.")
    t0, b0, k0 = time.perf_counter(), _busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen([sys.executable, __file__, flag, json.dumps(job)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    peak, stop = [0.0], threading.Event()
    def sample():
        while not stop.is_set(): peak[0] = max(peak[0], _tree_rss_mb(p.pid)); stop.wait(0.05)
    th = threading.Thread(target=sample, daemon=True); th.start()
    out, err = p.communicate(); stop.set(); th.join()
    wall, k1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = (k1.ru_utime - k0.ru_utime) + (k1.ru_stime - k0.ru_stime)   # the child and its workers, reaped
    others = max(0.0, (_busy_s() - b0 - mine) / wall)                  # includes this script's sampler thread (~1 %)
    if p.returncode != 0:
        raise RuntimeError(f"{flag[3:]} {job['kind']} {job['half']} {job['lines']} lines, {job['workers']} workers: "
                           f"exit {p.returncode}\n{err[-3000:]}")
    res = json.loads(next(l for l in out.splitlines()[::-1] if l.startswith('{')))
    return dict(res, process_wall_s=wall, rss_tree_mb=peak[0] or None, others_cores=others)

def base_corpus(work: Path, n: int) -> dict:
    "n clean utterances per half, from make_corpus's provenance (the planted faults live in its manifests, not here)."
    from fun_asr_8k.corpus import CorpusSpec, make_corpus
    t0 = time.perf_counter()
    # audio_quiet needs >= 4 lines, audio_neutral >= 11, for their faults
    tel_dev, tel_test = max(4, n // 4), max(1, n // 6)
    info = make_corpus(work / 'corpus', CorpusSpec(general_train=n, general_dev=0, general_test=0,
                                                   tel_train=max(11, n - tel_dev - tel_test),
                                                   tel_dev=tel_dev, tel_test=tel_test),
                       threads=os.cpu_count() or 2, progress=False)
    recs = [json.loads(l) for l in open(work / 'corpus' / 'provenance.jsonl', encoding='utf-8')]
    halves = {'simulated': [r for r in recs if r['domain'] == 'general'],
              'real': [r for r in recs if r['domain'] == 'telephone']}
    for rs in halves.values():   # warm the page cache: reading the inputs from disk is not what is timed
        for r in rs: Path(r['source']).read_bytes()
    return dict(halves=halves, espeak=info['espeak'].split(' Data at')[0].strip(), build_s=time.perf_counter() - t0)

def write_manifest(recs: list[dict], n: int, path: Path) -> float:
    "n lines repeating `recs` under distinct keys; seconds of audio."
    lines, secs = [], 0.0
    for i in range(n):
        r = recs[i % len(recs)]; secs += r['seconds']
        lines.append(json.dumps(dict(key=f"{r['key']}__r{i // len(recs):04d}", source=r['source'], target=r['text']),
                                ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return secs

def _fs(path: Path) -> str:
    "Filesystem type and device of `path` (/proc/mounts): its writes are part of what is timed."
    best = ('?', '?', '')
    try:
        for line in open('/proc/mounts'):
            dev, mnt, typ = line.split()[:3]
            if (str(path.resolve()) + '/').startswith(mnt.rstrip('/') + '/') and len(mnt) >= len(best[2]):
                best = (typ, dev, mnt)
    except OSError: pass
    return f'{best[0]} ({best[1]} on {best[2]})'

def fmt(v, spec: str) -> str:
    return format(v, spec) if v is not None else '-'.rjust(int(spec.split('.')[0].rstrip('f,') or 0))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', default='400,1600', help='the two corpus sizes in lines: small,large')
    p.add_argument('--workers', default='1,2', help='worker counts to run (the first is the per-core reference)')
    p.add_argument('--repeats', type=int, default=2,
                   help='runs of each measurement: fastest wall time, largest memory peak')
    p.add_argument('--rate', choices=('cpu', 'wall'), default='cpu',
                   help="per-core rate for the estimate: audio per CPU second (robust to a shared machine) "
                        "or per wall second")
    p.add_argument('--base', type=int, default=100, help='utterances synthesised per half')
    p.add_argument('--work', default=None,
                   help='work folder: base corpus (cached) and manifests (default: a temporary folder)')
    p.add_argument('--out', default=None,
                   help='where Stage 0 and the floor write (default: a temporary folder in /dev/shm)')
    p.add_argument('--keep', action='store_true', help='keep the outputs of the last repeat of each measurement')
    p.add_argument('--json', default=None, help='write every number to this file')
    a = p.parse_args()
    sizes, workers = [int(s) for s in a.sizes.split(',')], [int(w) for w in a.workers.split(',')]
    if len(sizes) != 2 or not POOL_SIZE <= sizes[0] < sizes[1]:
        p.error(f'--sizes: give small,large with {POOL_SIZE} <= small < large '
                f'(the babble pool holds {POOL_SIZE} utterances)')
    if a.repeats < 1 or not workers or min(workers) < 1: p.error('--repeats and --workers must be >= 1')
    from importlib.metadata import version
    vers = {m: version(m) for m in ('numpy', 'soxr', 'scipy', 'soundfile', 'av')}
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix='fa8k_bench_data_'))
    shm = Path('/dev/shm')
    outs = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix='fa8k_bench_out_', dir=shm if shm.is_dir() else work))
    work.mkdir(parents=True, exist_ok=True); outs.mkdir(parents=True, exist_ok=True)
    if not a.keep:   # temporary folders go even if a measurement crashes; folders you named stay
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True)
                                 for d, given in ((outs, a.out), (work, a.work)) if not given])
    print(f"machine: nproc={os.cpu_count()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, "
          + ', '.join(f'{k} {v}' for k, v in vers.items())
          + f'; load average {tuple(round(x, 2) for x in os.getloadavg())}')
    base = base_corpus(work, a.base)
    for half, rs in base['halves'].items():
        print(f"base {half}: {len(rs)} utterances, mean {sum(r['seconds'] for r in rs) / len(rs):.2f} s at "
              f"{'16' if half == 'simulated' else '8'} kHz ({base['espeak']}, ready in {base['build_s']:.1f} s)")
    print(f'sizes {sizes} lines: the base audio repeated under distinct keys, no extra synthesis; workers {workers}; '
          f'fresh process per run, best of {a.repeats}; BLAS/OMP threads 1\n'
          f'work {work}; outputs in {outs}, {_fs(outs)}\n')

    rows, errors, books = [], [], {}
    for half in ('simulated', 'real', 'clean'):
        for n in sizes:
            manifest = work / 'manifests' / f"{'simulated' if half == 'clean' else half}_{n}.jsonl"
            audio_s = write_manifest(base['halves']['real' if half == 'real' else 'simulated'], n, manifest)
            for w in ([1] if half == 'clean' else workers):
                for kind in (('prep',) if half == 'clean' else ('floor', 'prep')):
                    out = outs / f'{half}_{n}_w{w}_{kind}'
                    job, reps = dict(kind=kind, half=half, lines=n, workers=w, manifest=str(manifest), out=str(out)), []
                    for _ in range(a.repeats):
                        # Stage 0 resumes from its journal: every run starts empty
                        shutil.rmtree(out, ignore_errors=True)
                        # ... with no writeback of earlier runs pending
                        os.sync()
                        try: reps.append(run_child(job))
                        except Exception as e: print(f'could not run: {e}'); errors.append(str(e)); break
                    if len(reps) < a.repeats: continue
                    best = min(reps, key=lambda r: r['wall_s'])
                    r = dict(job, **best, walls=[round(x['wall_s'], 3) for x in reps], manifest_audio_s=audio_s,
                             cpu_main_min_s=min(x['cpu_main_s'] for x in reps),   # CPU time: the least disturbed repeat
                             cpu_min_s=min(x['cpu_main_s'] + x['cpu_workers_s'] for x in reps))
                    r.update({k: max((x[k] for x in reps if x[k] is not None), default=None)
                              for k in ('rss_main_mb', 'rss_worker_mb', 'rss_tree_mb')})
                    r.update(utt_per_s=n / r['wall_s'], x_real_time=r['audio_s'] / r['wall_s'],
                             cpu_per_wall=(r['cpu_main_s'] + r['cpu_workers_s']) / r['wall_s'])
                    rows.append(r)
                    if r['n_kept'] != n: print(f'warning: {kind} {half} {n} lines: kept {r["n_kept"]}')
                    if kind == 'prep' and half != 'clean' and n == sizes[1] and w == workers[0]:
                        try: books[half] = run_child(job, '--_bookkeeping')
                        except Exception as e: print(f'could not run: {e}'); errors.append(str(e))
                    if not a.keep: shutil.rmtree(out, ignore_errors=True)
    by = {(r['kind'], r['half'], r['lines'], r['workers']): r for r in rows}

    print(f"{'half':10s} {'lines':>6s} {'wk':>3s} {'job':6s} {'wall s':>7s} {'utt/s':>6s} {'x real':>7s} "
          f"{'x floor':>8s} {'cpu/wall':>8s} {'others':>6s} {'main MB':>8s} {'worker MB':>9s} {'tree MB':>8s} "
          f"{'proc s':>7s}")
    for r in rows:
        floor = by.get(('floor', r['half'], r['lines'], r['workers']))
        r['x_floor'] = r['wall_s'] / floor['wall_s'] if floor and r['kind'] == 'prep' else None
        print(f"{r['half']:10s} {r['lines']:6d} {r['workers']:3d} {r['kind']:6s} {r['wall_s']:7.2f} "
              f"{r['utt_per_s']:6.0f} {r['x_real_time']:7.0f} {fmt(r['x_floor'], '8.2f')} {r['cpu_per_wall']:8.2f} "
              f"{r['others_cores']:6.2f} {r['rss_main_mb']:8.0f} {fmt(r['rss_worker_mb'], '9.0f')} "
              f"{fmt(r['rss_tree_mb'], '8.0f')} {r['process_wall_s']:7.1f}")
    print("wall s: the call alone (best of the repeats); x real: seconds of audio per second of wall time; "
          "x floor: Stage 0 time / floor time;\ncpu/wall: cores used by main + workers; "
          "others: cores other processes kept busy meanwhile; "
          "main MB: peak RSS of the main process;\nworker MB: largest worker peak; "
          "tree MB: sampled peak of everything at once; proc s: "
          f"the whole process (imports: {sum(r['import_s'] for r in rows) / max(len(rows), 1):.1f} s on average)")

    marg = {}
    print(f'\nmarginal rates, the {sizes[1] - sizes[0]} extra lines of the large size over its extra time '
          f'(fixed costs of a call cancel):')
    print(f"{'half':10s} {'wk':>3s} {'job':6s} {'utt/s':>6s} {'x real':>7s} {'x rt/worker':>11s} {'x floor':>8s} "
          f"{'scaling':>8s} {'fixed s':>8s} {'main ms/line':>12s} {'x real/CPU s':>12s} {'others':>6s}")
    for half in ('simulated', 'real', 'clean'):
        for w in ([1] if half == 'clean' else workers):
            for kind in (('prep',) if half == 'clean' else ('floor', 'prep')):
                s, l = by.get((kind, half, sizes[0], w)), by.get((kind, half, sizes[1], w))
                if not (s and l): continue
                dt = l['wall_s'] - s['wall_s']
                if dt <= 0:
                    print(f'{half:10s} {w:3d} {kind:6s} large size not slower than small: no marginal rate'); continue
                dcpu = l['cpu_min_s'] - s['cpu_min_s']
                m = dict(utt_per_s=(sizes[1] - sizes[0]) / dt, x_real_time=(l['audio_s'] - s['audio_s']) / dt,
                         x_real_per_cpu_s=(l['audio_s'] - s['audio_s']) / dcpu if dcpu > 0 else None)
                m.update(x_real_time_per_worker=m['x_real_time'] / w,
                         fixed_s=s['wall_s'] - s['audio_s'] / m['x_real_time'],
                         main_ms_per_line=1e3 * (l['cpu_main_min_s'] - s['cpu_main_min_s']) / (sizes[1] - sizes[0])
                         if w > 1 else None)
                ref, fl = marg.get((kind, half, 1 if half == 'clean' else workers[0])), marg.get(('floor', half, w))
                m['scaling'] = (m['x_real_time'] / (w / workers[0] * ref['x_real_time'])
                                if ref and w != workers[0] else None)
                m['x_floor'] = fl['x_real_time'] / m['x_real_time'] if fl and kind == 'prep' else None
                m['others_cores'] = max(s['others_cores'], l['others_cores'])
                marg[(kind, half, w)] = m
                print(f"{half:10s} {w:3d} {kind:6s} {m['utt_per_s']:6.0f} {m['x_real_time']:7.0f} "
                      f"{m['x_real_time_per_worker']:11.0f} {fmt(m['x_floor'], '8.2f')} {fmt(m['scaling'], '8.2f')} "
                      f"{m['fixed_s']:8.2f} {fmt(m['main_ms_per_line'], '12.3f')} "
                      f"{fmt(m['x_real_per_cpu_s'], '12.0f')} {m['others_cores']:6.2f}")
    print(f"scaling: marginal rate / ({'W' if workers[0] == 1 else f'W/{workers[0]}'} "
          f"x the rate with {workers[0]} worker"
          f"{'s' if workers[0] > 1 else ''}), on {os.cpu_count()} cores shared with the main process; "
          "fixed s: what a call costs besides its lines (spawning workers, babble pool);\n"
          "main ms/line: CPU of the main process "
          "per extra line while workers do the audio (receiving results, journal, formatting);\n"
          "x real/CPU s: seconds of "
          "audio per CPU second (main + workers, least disturbed repeat): what one core does when it is not shared;\n"
          "others: the larger of the two runs' "
          "(other processes busy in one run and not the other skew a marginal rate)")
    busy = [r for r in rows if r['others_cores'] > 0.25]
    if busy: print(f"note: other processes kept {max(r['others_cores'] for r in busy):.2f} cores busy during "
                   f"{len(busy)} of {len(rows)} "
                   f"runs (column 'others'): rates with several workers, and the scaling, are then low")

    mem = {}
    print('\nmemory, large size / small size (flat = 1.00):')
    for half in ('simulated', 'real', 'clean'):
        for w in ([1] if half == 'clean' else workers):
            s, l = by.get(('prep', half, sizes[0], w)), by.get(('prep', half, sizes[1], w))
            if not (s and l): continue
            slope = (l['rss_main_mb'] - s['rss_main_mb']) * MB / (sizes[1] - sizes[0])
            tree = l['rss_tree_mb'] / s['rss_tree_mb'] if s['rss_tree_mb'] and l['rss_tree_mb'] else None
            mem[f'{half}_w{w}'] = dict(rss_main_ratio=l['rss_main_mb'] / s['rss_main_mb'], rss_tree_ratio=tree,
                                       main_slope_b_per_line=slope)
            print(f"  {half:10s} workers={w}: main {l['rss_main_mb']:.0f}/{s['rss_main_mb']:.0f} MB = "
                  f"{l['rss_main_mb'] / s['rss_main_mb']:.3f}, "
                  f"tree {fmt(l['rss_tree_mb'], '.0f')}/{fmt(s['rss_tree_mb'], '.0f')} MB = {fmt(tree, '.3f')} for "
                  f"{sizes[1] / sizes[0]:.0f}x the lines; main RSS slope {slope:,.0f} B/line")
    print('  per-line bookkeeping in the main process (tracemalloc of the structures, rebuilt from the large run):')
    for half, b in books.items():
        parts = (f"input lines {b['input_lines_b']:,.0f} B, key->line {b['key_to_line_b']:,.0f} B, "
                 f"kept dicts {b['kept_b']:,.0f} B, "
                 if half == 'simulated' else '')
        parts += (f"items {b['items_b']:,.0f} B, journal dict {b['journal_b']:,.0f} B, "
                  f"formatted text {b['formatted_text_b']:,.0f} B")
        per = b['per_line_b']
        print(f"  {half:10s} {parts}\n  {'':10s} most alive at once: {per:,.0f} B/line "
              f"({'; '.join(f'{k} {v:,.0f}' for k, v in b['phases'].items())}) -> "
              f"{per * 1e6 / MB / 1024:.2f} GiB at 1M lines, "
              f"{per * PLAN_TRAIN_LINES / MB:,.0f} MB at the plan's {PLAN_TRAIN_LINES:,}")
    implied_s = PLAN_HOURS * 3600 / PLAN_TRAIN_LINES
    sim_b = books.get('simulated')
    if sim_b:
        big_pool = POOL_SIZE * implied_s * 8000 * 4 / MB
        print(f"  babble pool: {sim_b['pool_utts']} utterances x {sim_b['pool_mean_s']:.2f} s at 8 kHz float32 = "
              f"{sim_b['pool_mb']:.1f} MB, "
              f"in the main process and in every worker (pickled to each): "
              f"{sim_b['pool_mb'] * (1 + CORES):.0f} MB with {CORES} "
              f"workers;\n  {'':10s} at the plan's implied {implied_s:.1f} s/utterance: {big_pool:.0f} MB a copy, "
              f"{big_pool * (1 + CORES) / 1024:.1f} GiB with {CORES} workers")

    est = {}
    w0, big = workers[0], sizes[1]
    def core_rate(m: dict) -> tuple[float, str]:
        ("Per-core x real time of a marginal row, and which kind: per CPU second (--rate cpu, when measurable) or per "
         "wall second.")
        return ((m['x_real_per_cpu_s'] / w0, 'CPU') if a.rate == 'cpu' and m['x_real_per_cpu_s']
                else (m['x_real_time_per_worker'], 'wall'))
    ms = marg.get(('prep', 'simulated', w0))
    if ms:
        per_core, how = core_rate(ms)
        minutes = PLAN_HOURS * 60 / (CORES * per_core)
        est = dict(per_core_x_real_time=per_core, per_core_from=how, per_core_wall=ms['x_real_time_per_worker'],
                   per_core_cpu=ms['x_real_per_cpu_s'], minutes_16_cores=minutes,
                   write_mb_per_s=CORES * per_core * OUT_BYTES_PER_S / 1e6)
        print(f"\n1000 h estimate (simulated half with {w0} worker{'s' if w0 > 1 else ''}: "
              f"marginal {ms['x_real_per_cpu_s'] or 0:.0f} x "
              f"real time per CPU second, {ms['x_real_time_per_worker']:.0f} per wall second; "
              f"using the {how} rate, {per_core:.0f};"
              f"\n  assumed linear over {CORES} worker processes, inputs and outputs as fast as here; "
              "never faster than the main process can take the lines):")
        print(f"  {PLAN_HOURS} h / ({CORES} x {per_core:.0f}) = {minutes:.1f} min on a {CORES}-core node: "
              f"{PLAN_BUDGET_H[0] * 60 / minutes:.0f}-{PLAN_BUDGET_H[1] * 60 / minutes:.0f}x inside the plan's "
              f"{PLAN_BUDGET_H[0]}-{PLAN_BUDGET_H[1]} h budget, {minutes / AIM_MIN:.2f} of the {AIM_MIN}-minute aim")
        scaled = [w for w in workers if w > w0 and marg.get(('prep', 'simulated', w), {}).get('scaling')]
        if scaled:
            wm = max(scaled); eff = marg[('prep', 'simulated', wm)]['scaling']
            est.update(scaling_workers=wm, scaling=eff, minutes_16_cores_at_measured_scaling=minutes / eff)
            print(f"  at the scaling measured here with {wm} workers ({eff:.2f}): {minutes / eff:.1f} min")
        mm, utt_s = (marg.get(('prep', 'simulated', max(workers))),
                     by[('prep', 'simulated', big, w0)]['manifest_audio_s'] / big)
        from fun_asr_8k.data import PrepLimits
        print(f"  the plan's train_M: {PLAN_TRAIN_LINES:,} lines for {PLAN_HOURS} h = {implied_s:.1f} s per utterance "
              f"(here: {utt_s:.2f} s); the rate is per second of audio, which longer utterances only make cheaper; but "
              f"{implied_s:.0f} s is over PrepLimits.max_seconds ({PrepLimits().max_seconds:g} s): "
              "such lines are put through the channel and then dropped as too_long")
        if mm and mm['main_ms_per_line'] and mm['main_ms_per_line'] > 0:
            main_ms = mm['main_ms_per_line']
            lps = CORES * per_core / utt_s
            est.update(main_ms_per_line=main_ms, main_process_load_16_workers=lps * main_ms / 1e3)
            print(f"  but the main process does {main_ms:.3f} ms of CPU per line "
                  f"(results, journal, manifests, formatting), serially:"
                  f" {CORES} workers would hand it {lps:,.0f} lines/s of {utt_s:.2f} s utterances = "
                  f"{lps * main_ms / 1e3:.2f} of a core")
            for what, n_lines in ((f"the plan's {PLAN_TRAIN_LINES:,} lines ({implied_s:.1f} s each)", PLAN_TRAIN_LINES),
                                  (f"{PLAN_HOURS * 3600 / utt_s:,.0f} lines of {utt_s:.2f} s (this corpus's length)",
                                   PLAN_HOURS * 3600 / utt_s)):
                serial = n_lines * main_ms / 1e3 / 60
                est.setdefault('minutes_by_lines', {})[str(round(n_lines))] = max(minutes, serial)
                print(f"    {what}: main process {serial:.1f} min -> {max(minutes, serial):.1f} min in all "
                      f"({'the main process is the limit' if serial > minutes else 'the workers are the limit'})")
        else: print("  the main process's CPU per line was not measured (needs a --workers entry above the first)")
        mf = marg.get(('floor', 'simulated', w0))
        if mf:
            est['floor_minutes_16_cores'] = PLAN_HOURS * 60 / (CORES * core_rate(mf)[0])
            print(f"  the floor alone (read + soxr 16k->8k->16k + write): {est['floor_minutes_16_cores']:.1f} min")
        print(f"  disk: {PLAN_HOURS * 3600 * OUT_BYTES_PER_S / 1e9:.0f} GB of 16 kHz wavs written and as much read, "
              f"{est['write_mb_per_s']:.0f} MB/s each way at that speed "
              f"({PLAN_HOURS * 3600 * OUT_BYTES_PER_S / 1e6 / (AIM_MIN * 60):.0f} "
              f"MB/s to finish in {AIM_MIN} min); outputs here went to {_fs(outs)}")
    mr = marg.get(('prep', 'real', w0))
    if mr:
        est['real_50h_minutes_16_cores'] = REAL_HOURS * 60 / (CORES * core_rate(mr)[0])
        print(f"  real half: {REAL_HOURS} h at {core_rate(mr)[0]:.0f} x real time per core ({core_rate(mr)[1]}) "
              f"over {CORES}: "
              f"{est['real_50h_minutes_16_cores']:.1f} min")
    mc = marg.get(('prep', 'clean', 1))
    if mc and ms:
        print(f"  clean_16k (prep_clean: transcript check, wav header, formatting; "
              f"serial in the main process, no workers): "
              f"{mc['utt_per_s']:,.0f} lines/s; Stage 0 in all (prep() runs the three one after another):")
        for n_lines in (PLAN_TRAIN_LINES, PLAN_HOURS * 3600 / utt_s):
            clean = n_lines / mc['utt_per_s'] / 60
            sim_min = est.get('minutes_by_lines', {}).get(str(round(n_lines)), minutes)
            total = sim_min + est.get('real_50h_minutes_16_cores', 0) + clean
            est.setdefault('stage0_minutes_by_lines', {})[str(round(n_lines))] = total
            print(f"    {n_lines:,.0f} lines: simulated {sim_min:.1f} "
                  f"+ real {est.get('real_50h_minutes_16_cores', 0):.1f} + clean {clean:.1f} "
                  f"= {total:.1f} min: {PLAN_BUDGET_H[0] * 60 / total:.0f}-{PLAN_BUDGET_H[1] * 60 / total:.0f}x "
                  f"inside the budget, "
                  f"{total / AIM_MIN:.2f} of the aim")
    print(f'load average at the end: {tuple(round(x, 2) for x in os.getloadavg())}')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(versions=vers, nproc=os.cpu_count(), python=platform.python_version(), sizes=sizes,
                           workers=workers, repeats=a.repeats, outputs_fs=_fs(outs),
                           base={h: dict(n=len(rs), mean_s=sum(r['seconds'] for r in rs) / len(rs))
                                 for h, rs in base['halves'].items()},
                           rows=rows, marginal=[dict(kind=k, half=h, workers=w, **m) for (k, h, w), m in marg.items()],
                           memory=mem, bookkeeping=books, estimate=est, errors=errors),
                      f, ensure_ascii=False, indent=1)
    return 1 if errors else 0

if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] in ('--_child', '--_bookkeeping'):
        print(json.dumps((_child if sys.argv[1] == '--_child' else _bookkeeping)(json.loads(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
