"""The test suite.

One BLAS thread (numpy's OpenBLAS), set here, before anything imports numpy (``tests/conftest.py`` imports the
app, which imports it): the classifier's fits multiply small matrices, which OpenBLAS spreads over every core, and
on a busy machine its threads wait for each other; the training tests took 4 to 8 times longer so (the
multiple-instance fit's: 137 s against 32 s, load average 5 to 7 on 2 cores). Nothing a test checks depends on
it; the project's training and benchmarks run so too (``OMP_NUM_THREADS=1``, docs/understanding.md).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
