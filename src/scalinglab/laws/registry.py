"""Every law kind by name, so any law.json loads in a fresh process whatever was imported before, and the
reading of law files: one law, or one approach chosen from a file holding several (`{"laws": {...}}`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalinglab.errors import ConfigError, FolderError
from scalinglab.fileio import read_json
from scalinglab.laws.approach1 import Approach1
from scalinglab.laws.approach2 import Approach2
from scalinglab.laws.approach3 import Approach3
from scalinglab.laws.base import KaplanLaw, Law, ParametricLaw, PowerLawAllocation
from scalinglab.laws.datacon import DataConstrainedLaw
from scalinglab.laws.hparams import HparamsLaw
from scalinglab.laws.lc import LossComputeLaw

# A new law class is one line here: its `kind` (the "kind" key of its JSON) -> the class (with from_dict).
KINDS: dict[str, Any] = {
    c.kind: c
    for c in (
        PowerLawAllocation,
        ParametricLaw,
        KaplanLaw,
        Approach1,
        Approach2,
        Approach3,
        HparamsLaw,
        LossComputeLaw,
        DataConstrainedLaw,
    )
}


class LawChoiceError(ConfigError):
    """A law file holds several laws and none (or an unknown one) was chosen; `choices` names them."""

    def __init__(self, problem: str, choices: list[str]):
        super().__init__(problem, hint="choose one of them", keys=("approach",))
        self.choices = choices


def law_from_dict(d: dict[str, Any]) -> Law | HparamsLaw:
    """The law object of one law's JSON dict (its "kind" picks the class)."""
    kind = d.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"unknown law kind {kind!r}", hint=f"expected one of {', '.join(sorted(KINDS))}")
    return KINDS[kind].from_dict(d)


def approach_key(approach: str) -> str:
    """'3', 'approach3' and 'approach-3' all name the entry 'approach3' of a multi-law file."""
    a = str(approach).strip().lower().replace("-", "").replace("_", "")
    return a if a.startswith("approach") else f"approach{a}"


def read_law_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The laws of a law file as {key: law dict}: a single law's JSON gives one entry keyed by its kind."""
    p = Path(path)
    hint = "write it with `scalinglab fit`"
    if p.is_dir():
        raise FolderError(f"{p} is a folder, not a law file", hint="give the law file that `scalinglab fit` writes")
    try:
        d = read_json(p)
    except FileNotFoundError:
        raise FolderError(f"no law file at {p}", hint="write one by fitting a study (`scalinglab fit`)") from None
    except json.JSONDecodeError as e:
        raise FolderError(f"{p} is not valid JSON ({e.msg}, line {e.lineno})", hint=hint) from None
    except (RecursionError, UnicodeDecodeError) as e:  # a 100k-deep array, a binary file
        raise FolderError(f"{p} is not a law file ({type(e).__name__})", hint=hint) from None
    if not isinstance(d, dict):
        raise FolderError(f"{p} holds a JSON {type(d).__name__}, not a law file", hint=hint)
    if "kind" in d:
        return {str(d["kind"]): d}
    laws = d.get("laws")
    if not isinstance(laws, dict) or not laws or not all(isinstance(v, dict) for v in laws.values()):
        raise FolderError(f"{p} holds no law (no 'kind' and no 'laws' object of laws)", hint=hint)
    return laws


def load_law_choice(path: str | Path, approach: str | None = None) -> tuple[str, Law]:
    """(key, law) of the law file at `path`. With several laws in the file an approach must be chosen;
    a file of one law gives that law (and `approach`, when given, must name it)."""
    laws = read_law_file(path)
    keys = list(laws)
    if approach is None:
        if len(keys) > 1:
            raise LawChoiceError(f"{path} holds {len(keys)} laws ({', '.join(keys)})", keys)
        key = keys[0]
    else:
        key = next((k for k in laws if approach_key(k) == approach_key(approach)), approach_key(approach))
        if key not in laws:
            if len(keys) == 1 and laws[keys[0]].get("kind") == key:
                key = keys[0]
            else:
                raise LawChoiceError(f"{path} has no law for approach {approach!r} (it holds {', '.join(keys)})", keys)
    try:
        return key, law_from_dict(laws[key])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise FolderError(
            f"{path} is not a valid law ({type(e).__name__}: {e})", hint="write it again with `scalinglab fit`"
        ) from None


def load_law(path: str | Path, approach: str | None = None) -> Law:
    """Read a law file written by `scalinglab fit --out` (or a single law's to_json())."""
    return load_law_choice(path, approach)[1]
