"""Semantic masks through the camera warp: 2c8801a (coverage warped, then thresholded) against
the working tree (mask thresholded, warped as 0/1, kept at camera.WARPED_LABEL_THRESHOLD), on
300 default scenes at 256 px, seed 0. From the repository root:
PYTHONPATH=. python docs/measurements/warped_masks_v3.py [picture.png]"""

import subprocess
import sys
import time
import types

import cv2
import numpy as np
from omegaconf import OmegaConf

from synth import camera, crack
from synth import scene as new_scene
from synth.scene import plain_config


def old_module(name, path):
    mod = types.ModuleType(name)
    exec(subprocess.check_output(["git", "show", f"2c8801a:{path}"], text=True), mod.__dict__)
    return mod


old_camera = old_module("old_camera", "synth/camera.py")
old_scene = old_module("old_scene", "synth/scene.py")
old_scene.camera = old_camera
cfg = plain_config(OmegaConf.load("conf/synth/default.yaml"))
cfg["size"] = 256
N, S = 300, 256
renders = {"old": old_scene.render_crack_scene, "new": new_scene.render_crack_scene}

# 1) timing, un-instrumented, alternating which goes first
times = {"old": [], "new": []}
for i in range(N):
    for k in ("old", "new") if i % 2 == 0 else ("new", "old"):
        t = time.perf_counter()
        renders[k](cfg, 0, i)
        times[k].append(time.perf_counter() - t)

# 2) masks, with the pre-warp layer, homography and crack shading recorded
rec = {}


def recording(warp):
    def w(h, image, labels, instance):
        rec["h"] = h
        return warp(h, image, labels, instance)

    return w


old_camera.warp, camera.warp = recording(old_camera.warp), recording(camera.warp)
orig_render, orig_shade = crack.render_cracks, crack.shade


def render_cracks(k, size):
    rec["layer"] = orig_render(k, size)
    return rec["layer"]


def shade(k, rgb, layer):
    out = orig_shade(k, rgb, layer)
    rec["dark"] = 1 - np.broadcast_to(out[1], rgb.shape[:2]).astype(np.float32)
    return out


crack.render_cracks, crack.shade = render_cracks, shade


def pieces(m):
    return cv2.connectedComponents(m.view(np.uint8), connectivity=8)[0] - 1


def per_instance(m, inst):
    return [pieces(m & (inst == k)) for k in np.unique(inst[m])]


tot = {"pre": 0, "old": 0, "new": 0}
inst_p = {"pre": [], "old": [], "new": []}
same_images = changed = warped = 0
px = {"old": 0, "new": 0}
rim = 0
dark = {"new-only": [], "kept": [], "old-only": [], "old's 1 px outer ring": []}
masks267 = None
for i in range(N):
    out = {}
    for k in ("old", "new"):
        rec.clear()
        s = renders[k](cfg, 0, i)
        out[k] = (s, dict(rec))
    (so, ro), (sn, rn) = out["old"], out["new"]
    same_images += np.array_equal(so.image, sn.image)
    if not so.meta["has_crack"]:
        continue
    layer = ro["layer"]
    lab = layer.coverage >= crack.LABEL_THRESHOLD
    pre_inst = np.ones((S, S), np.uint16) if layer.instance is None else layer.instance
    mo, mn = so.semantic == 1, sn.semantic == 1
    tot["pre"] += pieces(lab)
    tot["old"] += pieces(mo)
    tot["new"] += pieces(mn)
    inst_p["pre"] += per_instance(lab, pre_inst)
    inst_p["old"] += per_instance(mo, so.instance)
    inst_p["new"] += per_instance(mn, sn.instance)
    if i == 267:
        masks267 = (mo, mn)
    if ro["h"] is None:
        assert np.array_equal(mo, mn)
        continue
    warped += 1
    changed += not np.array_equal(mo, mn)
    px["old"] += int(mo.sum())
    px["new"] += int(mn.sum())
    contours, _ = cv2.findContours(mo.view(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    rim += sum(cv2.arcLength(c, True) for c in contours)
    wd = cv2.warpPerspective(
        ro["dark"], ro["h"], (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    dark["new-only"].append(wd[mn & ~mo])
    dark["kept"].append(wd[mn & mo])
    dark["old-only"].append(wd[mo & ~mn])
    ring = cv2.dilate(mo.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~mo
    dark["old's 1 px outer ring"].append(wd[ring])
print(f"images byte-identical: {same_images} of {N}")
print(
    f"mask pieces, all scenes: before the warp {tot['pre']}, after: old {tot['old']}, new {tot['new']}"
)
print(
    f"pieces an instance ({len(inst_p['pre'])}/{len(inst_p['old'])}/{len(inst_p['new'])} instances): before the warp {np.mean(inst_p['pre']):.2f}, after: old {np.mean(inst_p['old']):.2f}, new {np.mean(inst_p['new']):.2f}"
)
print(
    f"instances in more than one piece: before {sum(p > 1 for p in inst_p['pre'])}, old {sum(p > 1 for p in inst_p['old'])}, new {sum(p > 1 for p in inst_p['new'])}"
)
print(f"warped scenes with cracks {warped}, masks changed {changed}")
print(
    f"crack px in warped scenes: old {px['old']}, new {px['new']} ({100 * (px['new'] / px['old'] - 1):+.2f} %), {(px['new'] - px['old']) / rim:+.3f} px a side (old masks' outline {rim:.0f} px)"
)
print(
    "crack darkness (1 - shading) under: "
    + ", ".join(
        f"{k} {np.concatenate(v).mean():.3f} ({np.concatenate(v).size} px)" for k, v in dark.items()
    )
)
print(
    f"render median: old {1000 * np.median(times['old']):.2f} ms, new {1000 * np.median(times['new']):.2f} ms"
)
if masks267 is not None and len(sys.argv) > 1:
    mo, mn = masks267
    gap = np.zeros((S, 6), bool)
    pic = np.concatenate([mo, gap, mn], axis=1).view(np.uint8) * 255
    cv2.imwrite(
        sys.argv[1], 255 - pic, [cv2.IMWRITE_PNG_BILEVEL, 1, cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    print(f"scene 267: pieces old {pieces(mo)}, new {pieces(mn)}; wrote {sys.argv[1]}")
