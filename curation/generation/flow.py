"""A sparse linear or integer programme built row by row: the flow form that both the
exact diagnosis packing (:mod:`.dx_exact`) and the volume bound
(``benchmarks/bound_volume.py``) write their packing problems in.

Variables are created with an upper bound and an objective weight; ``<=`` rows are keyed
by name (the first use fixes the right-hand side) and ``== 0`` rows are given whole.
:meth:`SparseModel.solve` maximises the weighted sum with HiGHS: the linear relaxation
(``scipy.optimize.linprog``) or, with ``integral=True``, the integer programme
(``scipy.optimize.milp``, no time limit, so the result depends on nothing but the model).
:func:`add_candidate` writes one candidate slot pair's columns and rows, the part both
problems share.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from curation.budget import Profile
from curation.errors import ValidationError
from curation.generation.candidates import Candidate
from curation.generation.pools import Pool


class SparseModel:
    """Variables in ``[0, upper]`` and named ``<=`` rows, maximised by :meth:`solve`."""

    def __init__(self) -> None:
        self.upper: list[float] = []
        self.weight: list[float] = []
        self._rows: dict[Hashable, int] = {}
        self._rhs: list[float] = []
        self._ub: list[tuple[int, int, float]] = []
        self._eq: list[tuple[int, int, float]] = []
        self._n_eq = 0
        self._selectors: dict[tuple[Hashable, Hashable], int] = {}

    @property
    def n(self) -> int:
        """Number of variables."""
        return len(self.upper)

    @property
    def n_rows(self) -> int:
        """Number of rows (``<=`` and ``==``)."""
        return len(self._rhs) + self._n_eq

    def var(self, upper: float = 1.0, weight: float = 0.0) -> int:
        """A new variable in ``[0, upper]`` worth ``weight`` in the objective."""
        self.upper.append(upper)
        self.weight.append(weight)
        return len(self.upper) - 1

    def le(self, key: Hashable, col: int, coef: float = 1.0, rhs: float = 1.0) -> None:
        """Add ``coef * x[col]`` to the row ``key`` (created with right-hand side ``rhs``)."""
        if key not in self._rows:
            self._rows[key] = len(self._rhs)
            self._rhs.append(rhs)
        self._ub.append((self._rows[key], col, coef))

    def eq(self, terms: Sequence[tuple[int, float]]) -> None:
        """A row ``sum(coef * x[col]) == 0``."""
        self._eq.extend((self._n_eq, col, coef) for col, coef in terms)
        self._n_eq += 1

    def choice(self, group: Hashable, option: Hashable, col: int) -> None:
        """Let ``x[col]`` be non-zero only where ``group`` takes ``option``, each group taking
        at most one option (a selector variable per group and option; for the diagnosis
        lists: a patient's questions offer one list)."""
        key = (group, option)
        if key not in self._selectors:
            self._selectors[key] = self.var()
            self.le(("one-option", group), self._selectors[key])
        row = ("option", group, option, col)
        self.le(row, col, rhs=0.0)
        self.le(row, self._selectors[key], coef=-1.0, rhs=0.0)

    def _matrix(self, entries: list[tuple[int, int, float]], n_rows: int) -> Any:
        r, c, v = zip(*entries, strict=True) if entries else ((), (), ())
        return coo_matrix((v, (r, c)), shape=(n_rows, self.n)).tocsr()

    def solve(self, integral: bool = False, options: dict[str, Any] | None = None) -> np.ndarray:
        """The maximising ``x`` (integer with ``integral``); raises if none is found."""
        cost = -np.array(self.weight)
        a_ub = self._matrix(self._ub, len(self._rhs))
        a_eq = self._matrix(self._eq, self._n_eq) if self._n_eq else None
        if integral:
            cons = [LinearConstraint(a_ub, -np.inf, np.array(self._rhs))]
            if a_eq is not None:
                cons.append(LinearConstraint(a_eq, 0.0, 0.0))
            res = milp(
                cost,
                constraints=cons,
                bounds=Bounds(np.zeros(self.n), np.array(self.upper)),
                integrality=np.ones(self.n),
                options=options or {},
            )
        else:
            res = linprog(
                cost,
                A_ub=a_ub,
                b_ub=self._rhs,
                A_eq=a_eq,
                b_eq=np.zeros(self._n_eq) if a_eq is not None else None,
                bounds=list(zip([0.0] * self.n, self.upper, strict=True)),
                method="highs",
                options=options,
            )
        if res.x is None:
            raise ValidationError(f"the packing programme did not solve: {res.message}")
        return np.asarray(res.x)


def add_candidate(
    model: SparseModel,
    pool: Pool,
    cand: Candidate,
    prof: Profile,
    per_pair: int,
    max_per_path: int,
    share_weight: Callable[[], float] | None = None,
) -> tuple[int, list[tuple[int, int, int]]]:
    """One candidate slot pair of ``pool`` in flow form: ``z`` sets (at most ``per_pair``,
    worth 4 questions each) and per member path of each value cell a share ``y``, the cell's
    shares summing to ``z``; each share within the path's key couplings, ``max_per_path``
    questions of the type, once per slot pair, and (diagnosis) one list per patient.

    ``share_weight()``: each share's objective weight (tie-breaks; None: 0). Returns the
    ``z`` column and ``(y column, cell, path index)`` per share, in creation order.
    """
    z = model.var(upper=per_pair, weight=4.0)
    model.le(("pair", pool.key, cand.key), z, rhs=per_pair)
    shares: list[tuple[int, int, int]] = []
    for k, cell in enumerate(cand.cells):
        terms = [(z, -1.0)]
        for i in cell:
            a = pool.anns[i]
            y = model.var(weight=share_weight() if share_weight is not None else 0.0)
            shares.append((y, k, i))
            terms.append((y, 1.0))
            for key in sorted(prof.couplings):  # row order fixes the solve
                model.le(("kc", a.path_id, key), y)
            model.le(("cap", pool.qtype, a.path_id), y, rhs=max_per_path)
            model.le(("once", pool.qtype, a.path_id, cand.key), y)
            if prof.dx_options is not None:  # one diagnosis list per patient
                model.choice(a.group, prof.dx_options, y)
        model.eq(terms)
    return z, shares
