"""scalinglab: plan, run and fit compute-optimal scaling-law studies for transformer LMs."""

__version__ = "0.1.0"
