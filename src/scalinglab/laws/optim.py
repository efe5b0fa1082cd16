"""Batched L-BFGS: many independent small minimisations (grid starts, bootstrap resamples) advanced in
lockstep as numpy arrays, so thousands of starts cost a few hundred vectorised evaluations."""

from __future__ import annotations

import numpy as np


def lbfgs_batch(
    fg, X0: np.ndarray, *, m: int = 10, maxiter: int = 1000, ftol: float = 1e-13, gtol: float = 1e-10, max_ls: int = 40
):
    """Minimise K independent problems. fg(X, idx) -> (f (k,), G (k, p)) for rows idx of the batch.
    Returns X (K, p), f (K,), n_iter (K,). Backtracking Armijo line search; curvature pairs with
    s.y <= 0 are skipped (their slot gets rho = 0), so each row follows plain L-BFGS."""
    X = np.array(X0, dtype=float)
    K, p = X.shape
    all_idx = np.arange(K)
    f, G = fg(X, all_idx)
    S = np.zeros((K, m, p))
    Y = np.zeros((K, m, p))
    rho = np.zeros((K, m))
    gamma = np.ones(K)
    n_iter = np.zeros(K, dtype=int)
    active = np.isfinite(f) & np.all(np.isfinite(G), axis=1)
    for it in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        g = G[idx]
        # two-loop recursion over the stored pairs, newest first
        q = g.copy()
        k_hist = min(it, m)
        alphas = np.zeros((idx.size, m))
        slots = [(it - 1 - i) % m for i in range(k_hist)]
        for j in slots:
            a = rho[idx, j] * np.einsum("kp,kp->k", S[idx, j], q)
            alphas[:, j] = a
            q -= a[:, None] * Y[idx, j]
        r = gamma[idx, None] * q
        for j in reversed(slots):
            b = rho[idx, j] * np.einsum("kp,kp->k", Y[idx, j], r)
            r += S[idx, j] * (alphas[:, j] - b)[:, None]
        d = -r
        gd = np.einsum("kp,kp->k", g, d)
        bad = ~(gd < 0) | ~np.isfinite(gd)
        if bad.any():  # not a descent direction: fall back to steepest descent
            d[bad] = -g[bad]
            gd[bad] = -np.einsum("kp,kp->k", g[bad], g[bad])
        t = np.ones(idx.size)
        if it == 0:
            t = np.minimum(1.0, 1.0 / np.maximum(np.linalg.norm(g, axis=1), 1e-300))
        Xn = X[idx] + t[:, None] * d
        fn, Gn = fg(Xn, idx)
        todo = ~(fn <= f[idx] + 1e-4 * t * gd)
        for _ in range(max_ls):
            if not todo.any():
                break
            w = np.flatnonzero(todo)
            t[w] *= 0.5
            Xn[w] = X[idx[w]] + t[w, None] * d[w]
            fn[w], Gn[w] = fg(Xn[w], idx[w])
            todo[w] = ~(fn[w] <= f[idx[w]] + 1e-4 * t[w] * gd[w])
        fn = np.where(todo, f[idx], fn)  # line search failed: keep the old point and stop that row
        Xn[todo] = X[idx[todo]]
        Gn[todo] = G[idx[todo]]
        s = Xn - X[idx]
        y = Gn - g
        sy = np.einsum("kp,kp->k", s, y)
        yy = np.einsum("kp,kp->k", y, y)
        good = (sy > 1e-12 * np.maximum(yy, 1e-300)) & (yy > 0)
        j = it % m
        S[idx, j] = s
        Y[idx, j] = y
        rho[idx, j] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        gamma[idx] = np.where(good, sy / np.where(good, yy, 1.0), gamma[idx])
        df = f[idx] - fn
        X[idx], f[idx], G[idx] = Xn, fn, Gn
        n_iter[idx] += 1
        done = todo | (df <= ftol * np.maximum(np.abs(fn), 1e-300)) | (np.abs(Gn).max(axis=1) <= gtol)
        done |= ~np.isfinite(fn)
        active[idx[done]] = False
    return X, f, n_iter
