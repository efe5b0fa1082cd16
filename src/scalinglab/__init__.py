"""scalinglab: plan, run and fit compute-optimal scaling-law studies for transformer LMs.

The public Python API is importable from here (`scalinglab.load_law`, `scalinglab.ModelShape`, ...). Each name is
imported on first use, so `import scalinglab` stays light: no torch, numpy or matplotlib until a name needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily by __getattr__)
_EXPORTS: dict[str, str] = {
    # accounting and records
    "ModelShape": "scalinglab.accounting.shape",
    "RunSpec": "scalinglab.records",
    "RunRecord": "scalinglab.records",
    "ScheduleConfig": "scalinglab.records",
    "RuntimeConfig": "scalinglab.records",
    "LoggingConfig": "scalinglab.records",
    # folders: each kind owns its file names and their parsing
    "RunDir": "scalinglab.folders",
    "StudyDir": "scalinglab.folders",
    "DataDir": "scalinglab.folders",
    "UserError": "scalinglab.errors",
    # laws: fitted from runs, published, or read back from a file
    "Approach1": "scalinglab.laws.approach1",
    "Approach2": "scalinglab.laws.approach2",
    "Approach3": "scalinglab.laws.approach3",
    "load_law": "scalinglab.laws.registry",
    "get_law": "scalinglab.laws.published",
    "load_estimates": "scalinglab.laws.estimates",
    "fit_estimates": "scalinglab.laws.estimates",
    # analysis: one runs table, one fit path
    "Runs": "scalinglab.analysis",
    "Columns": "scalinglab.analysis",
    "FitOptions": "scalinglab.analysis",
    "StudyFit": "scalinglab.analysis",
    "fit_study": "scalinglab.analysis",
    "backtest": "scalinglab.analysis",
    "predict": "scalinglab.laws.predict",
    # planning
    "plan_isoflop": "scalinglab.plan.isoflop",
    "plan_optimal": "scalinglab.plan.optimal",
    # studies, data, training (these import torch when used)
    "load_runs_frame": "scalinglab.sweep.store",
    "load_runs": "scalinglab.sweep.store",
    "prepare": "scalinglab.data.prep",
    "run_training": "scalinglab.train",
    "Trainer": "scalinglab.train.loop",
}

__all__ = [  # the names of _EXPORTS (tests/test_cli_interface.py holds the two lists equal)
    "Approach1",
    "Approach2",
    "Approach3",
    "Columns",
    "FitOptions",
    "DataDir",
    "LoggingConfig",
    "ModelShape",
    "RunDir",
    "RunRecord",
    "RunSpec",
    "Runs",
    "StudyFit",
    "RuntimeConfig",
    "ScheduleConfig",
    "StudyDir",
    "Trainer",
    "UserError",
    "__version__",
    "backtest",
    "fit_estimates",
    "fit_study",
    "get_law",
    "load_estimates",
    "load_law",
    "load_runs",
    "load_runs_frame",
    "plan_isoflop",
    "plan_optimal",
    "predict",
    "prepare",
    "run_training",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scalinglab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from scalinglab.accounting.shape import ModelShape
    from scalinglab.analysis import Columns, FitOptions, Runs, StudyFit, backtest, fit_study
    from scalinglab.data.prep import prepare
    from scalinglab.errors import UserError
    from scalinglab.folders import DataDir, RunDir, StudyDir
    from scalinglab.laws.approach1 import Approach1
    from scalinglab.laws.approach2 import Approach2
    from scalinglab.laws.approach3 import Approach3
    from scalinglab.laws.estimates import fit_estimates, load_estimates
    from scalinglab.laws.predict import predict
    from scalinglab.laws.published import get_law
    from scalinglab.laws.registry import load_law
    from scalinglab.plan.isoflop import plan_isoflop
    from scalinglab.plan.optimal import plan_optimal
    from scalinglab.records import LoggingConfig, RunRecord, RunSpec, RuntimeConfig, ScheduleConfig
    from scalinglab.sweep.store import load_runs, load_runs_frame
    from scalinglab.train import run_training
    from scalinglab.train.loop import Trainer
