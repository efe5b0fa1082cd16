"""The layers hold: the core (accounting, laws, plan, analysis) imports with torch and matplotlib made
unimportable, and loads none of the heavy libraries (pandas, scipy, scikit-learn) until a fit needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

PROBE = r"""
import importlib, pkgutil, sys, time

class Block:
    # a meta-path finder refusing torch and matplotlib, as on a laptop without the GPU stack
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "matplotlib"):
            raise ModuleNotFoundError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
t = time.perf_counter()
names = []
for pkg in ("accounting", "laws", "plan", "analysis"):
    mod = importlib.import_module(f"scalinglab.{pkg}")
    names.append(mod.__name__)
    for info in pkgutil.iter_modules(mod.__path__):
        names.append(importlib.import_module(f"scalinglab.{pkg}.{info.name}").__name__)
dt = time.perf_counter() - t
heavy = sorted(m for m in ("torch", "matplotlib", "pandas", "scipy", "sklearn") if m in sys.modules)
print(len(names), ",".join(heavy) or "-", f"{dt:.3f}")
"""


def test_core_imports_without_torch_or_matplotlib():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    n, heavy, _seconds = p.stdout.split()
    assert int(n) >= 20  # every module of the four core packages
    # nothing heavy at import time: what keeps `import scalinglab.analysis` well under a second
    assert heavy == "-", f"core imports pulled in {heavy}"
