"""Numeric pieces every kernel of the CPU rasteriser shares: float32 constants, a vectorising
``exp_neg`` and a prefetch hint."""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LN255 = math.log(255.0)


# float32 constants: a Python float would promote the per-pixel arithmetic to float64.
F0 = np.float32(0.0)
F1 = np.float32(1.0)
F2, F3, F4 = np.float32(2.0), np.float32(3.0), np.float32(4.0)
HALF = np.float32(0.5)
ALPHA_MAX = np.float32(0.99)
ALPHA_MIN = np.float32(1.0 / 255.0)
T_MIN = np.float32(1e-4)
# exp(-s) = 2^-k exp(r), k = round(s / ln 2), r = k ln 2 - s in [-ln2/2, ln2/2] (Cody-Waite split of ln 2).
EXP_ARG_MAX = np.float32(16.0)
"""exp_neg clamps its argument here: exp(-16) = 1.1e-7 is far below any alpha that counts (1/255)."""
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # 8 significant bits: k * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)
# exp(r) ~ 1 + r + E2 r^2 + ... + E5 r^5 on |r| <= ln2/2: minimax for relative error (Lawson's iteration
# from Chebyshev nodes; 1.05e-7 in exact arithmetic, 1.93e-7 measured in float32). Each lane op costs about 3% of compositing,
# and Taylor needs degree 7 for the same error.
_E2, _E3, _E4, _E5 = (np.float32(c) for c in (0.49999232, 0.16667114, 0.04189011, 0.00831253))


PREFETCH = 8
"""Pairs ahead whose record compositing asks the CPU to fetch (about one Gaussian's work covers a miss)."""


@intrinsic
def prefetch_row(typingctx, arr, row):
    """Hint the CPU to fetch ``arr[row, 0]`` into cache (LLVM's prefetch: read, high locality)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(row, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        row_i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [row_i, zero], wraparound=False)
        i32 = ir.IntType(32)
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())  # one declaration serves every dtype
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, row), codegen


@njit(inline="always", fastmath=True)
def exp_neg(s):
    """exp(-s) for float32 s >= 0, branch-free so loops over it vectorise (numba here has no SVML).

    Relative error <= 2.5e-7 (about two float32 ulps) on [0, 16]; beyond 16 it returns exp(-16).
    ``tests/core/test_render_agreement.py`` holds it to that bound.
    """
    s = min(s, EXP_ARG_MAX)
    k = np.int32(s * _LOG2E + HALF)  # s >= 0: truncation rounds to nearest
    kf = np.float32(k)
    r = (kf * _LN2_HI - s) + kf * _LN2_LO
    p = _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + F1
    p = p * r + F1
    return p * _pow2_neg(k)


@intrinsic
def _pow2_neg(typingctx, k):
    """2^-k as float32 for int32 0 <= k <= 126, from its bits ((127 - k) << 23), in 32-bit lanes: numba's
    own integer arithmetic widens to 64 bits (four 512-bit ops per 8 pixels; compositing took 13-30%
    longer in alternating A/B runs)."""
    if k != types.int32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.sub(ir.Constant(i32, 127), args[0]), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(k), codegen


@njit(cache=True)
def exp_neg_array(s):
    """``exp_neg`` over an array (for tests)."""
    out = np.empty_like(s)
    for i in range(s.shape[0]):
        out[i] = exp_neg(s[i])
    return out
