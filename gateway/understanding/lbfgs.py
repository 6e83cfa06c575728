"""L-BFGS with a backtracking (Armijo) line search, numpy only: the minimiser of ``Head.fit``.

Deterministic (no randomness, the same arithmetic in the same order), monotone (a step is taken only if it lowers
the objective enough), and stopped by a rule on the gradient: its Euclidean norm at most ``tolerance`` times its
norm at the start, or ``max_iterations`` iterations, or a line search that finds no lower point (rounding).
docs/understanding.md, "Tenth round, second part", says why the fixed-rate descent it replaces did not converge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
Objective = Callable[[Vector], tuple[float, Vector]]  # θ → (value, gradient)

MEMORY = 10  # correction pairs kept
ARMIJO = 1e-4  # sufficient decrease: f(θ + t·d) ≤ f(θ) + ARMIJO · t · ∇f·d
HALVINGS = 50  # line-search trials before giving up (the objective cannot be lowered at rounding's scale)


@dataclass(frozen=True)
class Minimum:
    theta: Vector
    value: float
    gradient_norm: float
    iterations: int
    converged: bool  # the gradient rule stopped it (not the iteration cap nor a failed line search)
    values: tuple[float, ...]  # the objective at the start and after every iteration (never increasing)


def minimise(objective: Objective, theta: Vector, *, tolerance: float, max_iterations: int) -> Minimum:
    value, gradient = objective(theta)
    values = [value]
    goal = tolerance * float(np.linalg.norm(gradient))
    pairs: list[tuple[Vector, Vector, float]] = []  # (s, y, 1 / y·s), oldest first
    iterations = 0
    while float(np.linalg.norm(gradient)) > goal and iterations < max_iterations:
        direction = -_inverse_hessian_times(gradient, pairs)
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction (rounding): start the memory again
            pairs.clear()
            direction, slope = -gradient, -float(gradient @ gradient)
        step = 1.0 if pairs else min(1.0, 1.0 / float(np.linalg.norm(gradient)))
        for _ in range(HALVINGS):
            candidate = theta + step * direction
            new_value, new_gradient = objective(candidate)
            if new_value <= value + ARMIJO * step * slope:
                break
            step /= 2
        else:
            break  # no lower point along the direction: the optimum at this precision
        s, y = candidate - theta, new_gradient - gradient
        ys = float(y @ s)
        if ys > 1e-12 * float(y @ y):  # keep only pairs of positive curvature (the update stays positive definite)
            pairs = [*pairs[-(MEMORY - 1) :], (s, y, 1.0 / ys)]
        theta, value, gradient = candidate, new_value, new_gradient
        values.append(value)
        iterations += 1
    norm = float(np.linalg.norm(gradient))
    return Minimum(theta, value, norm, iterations, norm <= goal, tuple(values))


def _inverse_hessian_times(gradient: Vector, pairs: list[tuple[Vector, Vector, float]]) -> Vector:
    """The two-loop recursion: L-BFGS's estimate of the inverse Hessian times ``gradient``."""
    q = gradient.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append(alpha)
    if pairs:
        s, y, _ = pairs[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        q += (alpha - rho * float(y @ q)) * s
    return q
