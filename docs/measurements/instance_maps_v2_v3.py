"""Instance maps before (version 2's rasterize, f5a589a) vs after (the working tree), 300 default
scenes at 256 px, seed 0. From the repository root: PYTHONPATH=. python docs/measurements/instance_maps_v2_v3.py"""

import subprocess
import sys
import time
import types

import cv2
import numpy as np
from omegaconf import OmegaConf

from synth import crack
from synth.scene import plain_config, render_crack_scene

old = types.ModuleType("crack_old")  # version 2's rasterize, from the commit before the fix
sys.modules["crack_old"] = old
exec(subprocess.check_output(["git", "show", "f5a589a:synth/crack.py"], text=True), old.__dict__)
new_raster = crack.rasterize
N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
cfg = plain_config(OmegaConf.load("conf/synth/default.yaml"))
captured = {}


def use(fn):
    def wrapped(paths, size, rough):
        captured["args"] = (paths, size, rough.copy())
        layer = fn(paths, size, rough)
        captured["layer"] = layer
        return layer

    crack.rasterize = wrapped


def pieces(inst):
    out = []
    for k in np.unique(inst[inst > 0]):
        out.append(cv2.connectedComponents((inst == k).view(np.uint8), connectivity=8)[0] - 1)
    return out


t = {"old": [], "new": []}
pc = {"old": [], "new": []}
lay = {"old": [], "new": []}
wrong = {"old": 0, "new": 0}
owned = 0
mt = {"old": [], "new": []}
per = []
pairs = 0
zero = {"old": 0, "new": 0}
floor = []
multi = 0
same = True
for i in range(N):
    res = {}
    for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
        use(old.rasterize if name == "old" else new_raster)
        t0 = time.perf_counter()
        s = render_crack_scene(cfg, 0, i)
        t[name].append(time.perf_counter() - t0)
        res[name] = (s, captured.pop("layer", None), captured.pop("args", None))
    (so, lo, args), (sn, ln, _) = res["old"], res["new"]
    same &= np.array_equal(so.image, sn.image) and np.array_equal(so.semantic, sn.semantic)
    if lo is None or lo.instance is None:
        continue
    same &= np.array_equal(lo.coverage, ln.coverage)
    multi += 1
    mt["old"].append(t["old"][-1])
    mt["new"].append(t["new"][-1])
    w0 = wrong["old"]
    pc["old"] += pieces(so.instance)
    pc["new"] += pieces(sn.instance)
    # layer level, no warp: pieces, and pixels labelled with a crack whose own mask misses them
    paths, size, rough = args
    mask = lo.coverage >= 0.5
    li = {"old": lo.instance * mask, "new": ln.instance * mask}
    lay["old"] += pieces(li["old"])
    lay["new"] += pieces(li["new"])
    ids = sorted({p.instance for p in paths})
    solo = {
        k: new_raster([p for p in paths if p.instance == k], size, rough.copy()).coverage >= 0.5
        for k in ids
    }
    floor.extend(pieces(np.uint16(solo[k]) * k)[0] for k in ids if solo[k].any())
    pairs += sum(bool((solo[a] & solo[b]).any()) for a in ids for b in ids if a < b)
    for name in ("old", "new"):
        zero[name] += int((mask & (li[name] == 0)).sum())
    anyown = np.logical_or.reduce(list(solo.values())) & mask
    owned += int(anyown.sum())
    for name in ("old", "new"):
        for k in ids:
            wrong[name] += int(((li[name] == k) & anyown & ~solo[k]).sum())
    per.append((wrong["old"] - w0, i))
crack.rasterize = new_raster
print(f"scenes {N}, with several cracks {multi}; images/semantic/coverage identical: {same}")
for name in ("old", "new"):
    p = np.array(pc[name])
    q = np.array(lay[name])
    print(
        f"{name}: scene instances {len(p)}, pieces mean {p.mean():.3f}, in >1 piece {(p > 1).sum()}, "
        f"total pieces {p.sum()} | layer (no warp): mean {q.mean():.3f}, >1 piece {(q > 1).sum()} | "
        f"pixels labelled with a crack whose own mask misses them {wrong[name]} of {owned} ({100 * wrong[name] / owned:.2f}%) | "
        f"render median {1000 * np.median(t[name]):.1f} ms"
    )
print(f"crossing pairs (solo masks overlap) {pairs}; crack pixels with id 0: {zero}")
print(
    f"each crack drawn alone (layer): mean pieces {np.mean(floor):.3f}, >1 piece {(np.array(floor) > 1).sum()} of {len(floor)}"
)
print(
    "median render ms on the several-crack scenes: old {:.1f} new {:.1f}".format(
        1000 * np.median(mt["old"]), 1000 * np.median(mt["new"])
    )
)
print("scenes with most mislabelled pixels before", sorted(per)[-5:])
all_t = {k: np.array(v) for k, v in t.items()}
