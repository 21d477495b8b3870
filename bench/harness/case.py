"""What one benchmark case is: a published method's step, its PyTorch eager baseline, and our op.

A family of cases (pooling, merging, attention pruning, diversity) lives in its own module that builds a
list of Case and is added to CASE_FAMILIES in run.py. The driver needs nothing else from it.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import torch


@dataclass(frozen=True)
class Case:
    name: str
    # The published method and the step of it the baseline reproduces, for the reader of the table.
    method: str
    # Shapes of the method's own input tensor: full for timing, quick for the CI correctness check.
    full_shape: Tuple[int, ...]
    quick_shape: Tuple[int, ...]
    # make_inputs(shape, dtype, device, strided) -> tuple of fresh non-zero input tensors. With strided,
    # every dimension but the contiguous last one must have a stride that a packed tensor would not.
    make_inputs: Callable
    # baseline(*inputs) -> tensor: the method's computation in eager PyTorch, in the method's layout.
    baseline: Callable
    # prepare_ours(library, *inputs) -> (output, run): our output buffer and a zero-argument call that
    # fills it. output holds the same elements as the baseline's result, in row-major order.
    prepare_ours: Callable
    # Whether the op is limited by memory traffic, so that its time is judged against the copy bandwidth.
    memory_bound: bool
    # Device types ("cpu", "cuda") whose runs time the full shape; elsewhere the case runs only in
    # --quick (a GPU-sized case would take many GB and minutes on a CPU).
    full_on: Tuple[str, ...] = ("cpu", "cuda")
    # Caps on the warm-up and timed runs of the full shape, for a case whose baseline takes seconds a
    # call (DivPrune at 10,816 tokens: about 12 s on a CPU); None: --warmup and --repeats as given.
    max_warmup: Optional[int] = None
    max_repeats: Optional[int] = None
    # Further calls timed alongside baseline and ours, for reference (the GEMM inside a method):
    # {name: prepare(*inputs) -> a zero-argument call}.
    references: Dict[str, Callable] = field(default_factory=dict)


def random_tokens(shape, dtype, device, strided):
    """Standard normal values (never zeros): when strided, a channel slice of a wider buffer, as the
    image span of an LLM's hidden states would be."""
    if not strided:
        return torch.randn(shape, device=device).to(dtype)
    channels = shape[-1]
    padded = torch.randn(tuple(shape[:-1]) + (channels + 3,), device=device).to(dtype)
    return padded[..., :channels]
