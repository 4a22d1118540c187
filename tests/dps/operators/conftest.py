"""Fixtures of the operator tests: one intra-op thread, and deepinv for the cross-checks."""

import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run a test on one intra-op thread, then restore the setting. On a busy 2-core machine
    torch's threaded FFT of a tiny 16x16 grid can take 30 ms (thread hand-offs) instead of
    0.1 ms; the tests use tiny images, so one thread is both faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def deepinv():
    """deepinv 0.5.0, an independent implementation (a test-only dependency; skipped without it),
    with its warnings about deprecated defaults silenced. Where its definitions coincide with ours
    the outputs must agree to float64 rounding; where its conventions differ the comparable part
    is tested and the difference is said next to the assertion."""
    module = pytest.importorskip("deepinv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield module
