"""``Head.fit`` converges: its objective never increases, it stops on a small gradient, and one iteration more or
less changes nothing (the fixed-rate descent it replaced oscillated: docs/understanding.md, "Tenth round")."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from gateway.understanding.classifier import LBFGS, MAX_ITERATIONS, SCALE, TOLERANCE, Head, Matrix, objective
from gateway.understanding.lbfgs import Vector, minimise


def synthetic() -> tuple[Matrix, list[str]]:
    """Unit vectors sharing one direction, as embeddings do (scaled by SCALE, that direction is stiff), in three
    overlapping classes."""
    rng = np.random.default_rng(3)
    classes = ("none", "suicide", "self_harm")
    y = rng.integers(0, 3, 240)
    centres = rng.normal(size=(3, 24)) * 0.15
    x = 1.0 + centres[y] + rng.normal(size=(240, 24)) * 0.25
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [classes[k] for k in y]


def value(head: Head, x: Matrix, labels: list[str], l2: float) -> float:
    parameters = np.vstack([head.weights, head.bias])
    return objective(x, labels, head.classes, l2)(parameters)[0]


def test_the_objective_never_increases_and_the_fit_stops_on_a_small_gradient() -> None:
    x, labels = synthetic()
    values = [value(Head.fit(x, labels, l2=1e-3, steps=k, optimizer=LBFGS), x, labels, 1e-3) for k in range(40)]
    assert all(b <= a for a, b in pairwise(values)), values
    head, found = Head.fitted(x, labels, l2=1e-3)
    assert found.converged and found.iterations < MAX_ITERATIONS
    assert all(b <= a for a, b in pairwise(found.values))
    classes = head.classes
    _, gradient = objective(x, labels, classes, 1e-3)(np.vstack([head.weights, head.bias]))
    _, start = objective(x, labels, classes, 1e-3)(np.zeros((x.shape[1] + 1, len(classes))))
    assert np.linalg.norm(gradient) <= TOLERANCE * np.linalg.norm(start)
    assert np.isclose(found.gradient_norm, np.linalg.norm(gradient))


def test_one_iteration_more_or_less_changes_no_prediction() -> None:
    x, labels = synthetic()
    _, found = Head.fitted(x, labels, l2=1e-3)
    for steps in (found.iterations + 5, 600):
        before, after = (
            Head.fit(x, labels, l2=1e-3, steps=steps - 1, optimizer=LBFGS),
            Head.fit(x, labels, l2=1e-3, steps=steps, optimizer=LBFGS),
        )
        p, q = before.probabilities(x), after.probabilities(x)
        assert np.array_equal(p.argmax(axis=1), q.argmax(axis=1))
        assert np.array_equal(p, q)  # past convergence, the same head to the bit (the old descent: 1.6e-3 apart)


def test_the_fit_is_reproducible_to_the_bit() -> None:
    x, labels = synthetic()
    a, b = Head.fit(x, labels, l2=1e-3, optimizer=LBFGS), Head.fit(x, labels, l2=1e-3, optimizer=LBFGS)
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.bias, b.bias)


def test_the_objective_s_gradient_is_its_derivative() -> None:
    x, labels = synthetic()
    f = objective(x[:30], labels[:30], ("none", "self_harm", "suicide"), 1e-2)
    rng = np.random.default_rng(5)
    parameters = rng.normal(size=(x.shape[1] + 1, 3)) / SCALE
    _, gradient = f(parameters)
    for i in rng.choice(parameters.size, 12, replace=False):
        step = np.zeros(parameters.size)
        step[i] = 1e-6
        numeric = (
            f(parameters + step.reshape(parameters.shape))[0] - f(parameters - step.reshape(parameters.shape))[0]
        ) / 2e-6
        assert abs(numeric - gradient[i]) < 1e-6 * max(1.0, abs(numeric))


def test_lbfgs_finds_a_quadratic_s_minimum() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8))
    hessian = a @ a.T + np.diag(np.logspace(-3, 2, 8))  # badly conditioned
    b = rng.normal(size=8)

    def quadratic(t: Vector) -> tuple[float, Vector]:
        return float(0.5 * t @ hessian @ t - b @ t), hessian @ t - b

    found = minimise(quadratic, np.zeros(8), tolerance=1e-8, max_iterations=500)
    assert found.converged
    assert np.allclose(found.theta, np.linalg.solve(hessian, b), atol=1e-6)
