"""What a process pays to import funasr: the lean package (`fun_asr_8k.store.lean_funasr`) against funasr's own.

What it measures: fresh Python processes, each importing what a training process and a notebook kernel import
(`fun_asr_8k.model` and `fun_asr_8k.stage`: funasr's Fun-ASR-Nano modules, torch, transformers) and then building
the released tiny model with funasr's AutoModel, the two ways in turn (A B A B ...):
  lean   the package as it is: `fun_asr_8k.store` gives funasr without its `__init__` (the modules that register
         Fun-ASR-Nano's classes, the rest only on a registry miss)
  full   `import funasr` first, so funasr's own `__init__` imports all of its ~430 modules, as any program that
         imports funasr before the project does
Per way: wall seconds and CPU seconds of the whole process (getrusage CHILDREN around it), its own peak RSS, how many
of funasr's model families it imported, and whether the model it built has the same parameters (a digest of every
tensor); then the lean/full ratios of the medians. Measured in one run, so a machine's speed cancels in the ratio.

Run: python bench/funasr_import.py [--repeats 3] [--json out.json]
Default run: about 70 s on a 2-core machine. No GPU.
"""
import argparse, json, resource, statistics, subprocess, sys, time
from pathlib import Path

CHILD = '''
import sys, hashlib, io, contextlib, resource
{first}
import fun_asr_8k.model, fun_asr_8k.stage
from fun_asr_8k.plan import RELEASED_TINY
from funasr import AutoModel
with contextlib.redirect_stdout(io.StringIO()):
    m = AutoModel(model=str(RELEASED_TINY), device='cpu', disable_update=True).model
h = hashlib.sha256()
for k, v in sorted(m.state_dict().items()): h.update(k.encode()); h.update(v.detach().float().numpy().tobytes())
families = sum(k.startswith('funasr.models.') and k.count('.') == 2 for k in sys.modules)
print(families, h.hexdigest()[:16], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
'''
WAYS = {'lean': '', 'full': 'import funasr'}

def one(way: str) -> dict:
    "One fresh process importing and building the tiny model `way`: wall, CPU, peak RSS, families, digest."
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run([sys.executable, '-c', CHILD.format(first=WAYS[way])], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode: raise SystemExit(f'{way}: the child failed\n{out.stderr[-2000:]}')
    families, digest, peak_mb = out.stdout.split()[-3:]
    return dict(wall_s=wall, cpu_s=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                peak_mb=int(peak_mb), families=int(families), digest=digest)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=3, help='processes of each way, in turn')
    p.add_argument('--json', default=None)
    a = p.parse_args()
    runs = {w: [] for w in WAYS}
    for _ in range(a.repeats):
        for w in WAYS: runs[w].append(one(w))
    med = {w: {k: statistics.median(r[k] for r in rs) for k in ('wall_s', 'cpu_s')} for w, rs in runs.items()}
    print(f"{'way':<6} {'wall s (median)':>16} {'CPU s (median)':>15} {'families':>9}  digest of the built model")
    for w, rs in runs.items():
        print(f"{w:<6} {med[w]['wall_s']:>16.2f} {med[w]['cpu_s']:>15.2f} {rs[0]['families']:>9}  {rs[0]['digest']}")
    print(f"peak RSS MB of a process (median): lean {statistics.median(r['peak_mb'] for r in runs['lean']):.0f}, "
          f"full {statistics.median(r['peak_mb'] for r in runs['full']):.0f}")
    same = len({r['digest'] for rs in runs.values() for r in rs}) == 1
    print(f"lean / full: wall {med['lean']['wall_s'] / med['full']['wall_s']:.2f}, "
          f"CPU {med['lean']['cpu_s'] / med['full']['cpu_s']:.2f} ({a.repeats} processes each); "
          f"the same model both ways: {same}")
    if a.json: Path(a.json).write_text(json.dumps(dict(runs=runs, median=med, same_model=same), indent=1))

if __name__ == '__main__':
    main()
