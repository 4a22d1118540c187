"""The operator cases shared by the operator tests (no tests here), and their helpers.

Images are 24x24 (divisible by every super-resolution factor) unless a case says otherwise.
The blur cases cover both convolution paths (direct up to 5x5, FFT above), every boundary,
even kernel sizes, and a 61x61 kernel larger than the image. Imported by bare name (pytest puts
this folder on sys.path), hence a name no other test folder uses.
"""

import torch
from hypothesis import settings

import comfyui_dps.dps.operators as ops

SIZE = (24, 24)

#: Hypothesis settings of the property tests: enough random cases to matter, in seconds.
FAST = settings(max_examples=25, deadline=None)


def _kernel(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(h, w, generator=g, dtype=torch.float64)


def _mask(seed, shape=SIZE):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


LINEAR = {
    "inpainting-soft": lambda: ops.Inpainting(_mask(1)),
    "inpainting-binary": lambda: ops.Inpainting((_mask(2) > 0.5).float()),
    "random-inpainting": lambda: ops.RandomInpainting(0.7, seed=3),
    **{f"sr-x{s}-{k}": (lambda s=s, k=k: ops.SuperResolution(s, k))
       for s in (2, 3, 4, 8) for k in ("bicubic", "average")},
    **{f"gauss-5-{b}": (lambda b=b: ops.GaussianBlur(5, 1.2, boundary=b))
       for b in ("reflect", "circular", "zeros")},
    **{f"gauss-9-{b}": (lambda b=b: ops.GaussianBlur(9, 2.0, boundary=b))
       for b in ("reflect", "circular", "zeros")},
    **{f"conv-{h}x{w}-{b}": (lambda h=h, w=w, b=b: ops.Convolution(_kernel(h, w, h * w), b))
       for (h, w) in ((4, 6), (8, 6), (1, 7)) for b in ("reflect", "circular", "zeros")},
    "motion-61-reflect": lambda: ops.MotionBlur.camera_shake(61, 0.5, seed=0),
    "motion-61-circular": lambda: ops.MotionBlur.camera_shake(61, 0.5, seed=1, boundary="circular"),
    "colorization": lambda: ops.Colorization(),
    "fourier": lambda: ops.FourierUndersampling(4, 0.08, seed=0),
    "fourier-8x": lambda: ops.FourierUndersampling(8, 0.04, seed=5),
    "blur-then-sr": lambda: ops.Composition(ops.GaussianBlur(9, 2.0), ops.SuperResolution(4)),
    "inpaint-then-fourier": lambda: ops.Composition(ops.RandomInpainting(0.3, 1),
                                                    ops.FourierUndersampling(4, 0.1, 2)),
}

NONLINEAR = {
    "phase-retrieval-2": lambda: ops.PhaseRetrieval(2.0),
    "phase-retrieval-1.5": lambda: ops.PhaseRetrieval(1.5),
    "blur-then-phase": lambda: ops.Composition(ops.GaussianBlur(5, 1.0), ops.PhaseRetrieval(2.0)),
}

ALL = {**LINEAR, **NONLINEAR}


def image(batch=2, channels=3, size=SIZE, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, *size, generator=g, dtype=dtype)


def rand(shape, seed):
    """float64 uniform [0, 1) of any shape, reproducible by seed."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def like(t, seed=1):
    """Random tensor shaped and typed like t (complex: random real and imaginary parts)."""
    g = torch.Generator().manual_seed(seed)
    if t.is_complex():
        parts = torch.randn(*t.shape, 2, generator=g, dtype=t.real.dtype)
        return torch.view_as_complex(parts)
    return torch.randn(t.shape, generator=g, dtype=t.dtype)


def inner(a, b):
    """Real inner product; for complex tensors the real part of the Hermitian product."""
    if a.is_complex() or b.is_complex():
        return (a.conj() * b).real.sum()
    return (a * b).sum()


def adjoint_gap(op, x, seed):
    """|<A x, y> - <x, A* y>| / |<A x, y>| for a random y: 0 up to rounding for an exact adjoint."""
    ax = op(x)
    y = like(ax, seed=seed)
    lhs, rhs = inner(ax, y), inner(x, op.adjoint(y))
    return abs(float(lhs - rhs)) / max(abs(float(lhs)), 1e-30)
