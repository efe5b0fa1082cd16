"""Law objects shared by the fitters and the published-laws registry: power-law allocation,
the Chinchilla parametric law L = E + A/N^α + B/D^β, and Kaplan's L(N, D). Pure numpy."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.fmt import power_law

PF_DAY = 1e15 * 86400.0  # FLOPs in one petaflop/s-day (Kaplan's compute unit)


def _arr(x):
    a = np.asarray(x, dtype=float)
    return a if a.ndim else float(a)


class Law:
    """Common interface: allocate(C) -> (N_opt, D_opt), to_dict/to_json/from_json, citation."""

    kind = "law"
    _fields: tuple[str, ...] = ()  # fitted values, stored as attribute `name_`

    def __init__(self, citation: str = "", name: str = "", **values: float | None):
        self.citation = citation
        self.name = name
        for f in self._fields:
            v = values.get(f)
            setattr(self, f + "_", None if v is None else float(v))

    def __getattr__(self, item: str):  # `law.alpha` reads `law.alpha_` (published laws read plainly)
        if not item.startswith("_") and not item.endswith("_"):
            if item + "_" in self.__dict__:
                return self.__dict__[item + "_"]
            if isinstance(getattr(type(self), item + "_", None), property):
                return getattr(self, item + "_")
        raise AttributeError(item)

    def _check_fitted(self) -> None:
        missing = [f for f in self._fields if getattr(self, f + "_") is None]
        if missing:
            raise UserError(f"{self.kind} law has no value for {', '.join(missing)}: fit it or load a fitted law.json")

    def allocate(self, C):
        raise NotImplementedError

    def n_opt(self, C):
        return self.allocate(C)[0]

    def d_opt(self, C):
        return self.allocate(C)[1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.name:
            d["name"] = self.name
        d.update({f: getattr(self, f + "_") for f in self._fields})
        if self.citation:
            d["citation"] = self.citation
        d.update(self._extra_dict())
        return d

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Law:
        vals = {f: d.get(f) for f in cls._fields}
        law = cls(citation=d.get("citation", ""), name=d.get("name", ""), **vals)
        law._load_extra(d)
        return law

    def _load_extra(self, d: dict[str, Any]) -> None:
        pass

    @classmethod
    def from_json(cls, text: str | dict) -> Law:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        return cls.from_dict(d)

    def __repr__(self) -> str:
        vals = ", ".join(f"{f}={getattr(self, f + '_')!r}" for f in self._fields)
        return f"{type(self).__name__}({vals})"


class PowerLawAllocation(Law):
    """N_opt = k_n C^a, D_opt = k_d C^b (Chinchilla approaches 1 and 2)."""

    kind = "power-law-allocation"
    _fields = ("k_n", "a", "k_d", "b")

    def allocate(self, C):
        self._check_fitted()
        C = _arr(C)
        return self.k_n_ * np.power(C, self.a_), self.k_d_ * np.power(C, self.b_)

    def __str__(self) -> str:
        return f"{power_law('N_opt', self.k_n_, self.a_)}\n{power_law('D_opt', self.k_d_, self.b_)}"


class ParametricLaw(Law):
    """L(N, D) = E + A / N^alpha + B / D^beta (Chinchilla approach 3), allocation under C = 6 N D."""

    kind = "parametric"
    _fields = ("E", "A", "B", "alpha", "beta")

    def predict_loss(self, N, D):
        self._check_fitted()
        N, D = _arr(N), _arr(D)
        return self.E_ + self.A_ / np.power(N, self.alpha_) + self.B_ / np.power(D, self.beta_)

    @property
    def a_(self) -> float:
        return self.beta_ / (self.alpha_ + self.beta_)

    @property
    def b_(self) -> float:
        return self.alpha_ / (self.alpha_ + self.beta_)

    def allocate(self, C):
        """Closed form: N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b, G = (αA/(βB))^(1/(α+β))."""
        self._check_fitted()
        if not (self.alpha_ > 0 and self.beta_ > 0 and self.A_ > 0 and self.B_ > 0):
            raise UserError(
                f"law has alpha={self.alpha_:.3g}, beta={self.beta_:.3g}, A={self.A_:.3g}, B={self.B_:.3g}: "
                "no compute-optimal allocation without positive values (check the data or drop outliers)"
            )
        C = _arr(C)
        s = self.alpha_ + self.beta_
        G = (self.alpha_ * self.A_ / (self.beta_ * self.B_)) ** (1.0 / s)
        return G * np.power(C / 6.0, self.beta_ / s), np.power(C / 6.0, self.alpha_ / s) / G

    def loss_at_optimum(self, C):
        N, D = self.allocate(C)
        return self.predict_loss(N, D)

    def _extra_dict(self) -> dict[str, Any]:
        if self.alpha_ is None or self.beta_ is None:
            return {}
        return {"a": self.a_, "b": self.b_}


class KaplanLaw(Law):
    """Kaplan et al. 2020 eq. (1.5): L(N, D) = [(Nc/N)^(αN/αD) + Dc/D]^αD (N without embeddings),
    with the compute-efficient frontier N_opt = k (C / PF-day)^0.73 of their Fig. 14 and D = C/(6N)."""

    kind = "kaplan"
    _fields = ("alpha_n", "alpha_d", "n_c", "d_c", "k_n_pfday", "a")

    def predict_loss(self, N, D):
        self._check_fitted()
        N, D = _arr(N), _arr(D)
        return np.power(np.power(self.n_c_ / N, self.alpha_n_ / self.alpha_d_) + self.d_c_ / D, self.alpha_d_)

    def allocate(self, C):
        self._check_fitted()
        C = _arr(C)
        N = self.k_n_pfday_ * np.power(C / PF_DAY, self.a_)
        return N, C / (6.0 * N)
