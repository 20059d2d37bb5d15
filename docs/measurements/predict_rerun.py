"""One predict rerun over a finished run's out_dir, timing its parts (seconds, JSON on stdout).

PYTHONPATH=. python docs/measurements/predict_rerun.py PHOTOS OUT: the first call into an empty OUT is the finished run; every
later call is a rerun that reuses all photos. Time the code on PYTHONPATH."""

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import torch

import gan.evaluate
import gan.staging
from gan.task import CrackSegmenter
from synth.io import ImageFolder

photos, out = Path(sys.argv[1]), Path(sys.argv[2])
times: dict[str, float] = {}


def timed(owner, name, label):
    inner = getattr(owner, name)

    def wrapper(*args, **kw):
        start = time.perf_counter()
        try:
            return inner(*args, **kw)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


timed(gan.evaluate, "reuse_finished", "reuse_check")
timed(gan.staging, "put_in_place", "put_in_place")
timed(ImageFolder, "validate", "validate")
torch.manual_seed(0)
torch.set_num_threads(1)
model = CrackSegmenter(net={"name": "unet", "base": 4, "depth": 2}).eval()
said = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(said), contextlib.redirect_stderr(io.StringIO()):
    gan.evaluate.predict_folder(model, photos, out, batch_size=8)
times["predict_folder"] = time.perf_counter() - start
times["reusing_line"] = [line for line in said.getvalue().splitlines() if "reusing" in line]
print(json.dumps(times))
