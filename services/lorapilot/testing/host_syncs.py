"""Counting the operations that make the host wait for the device, on any device.

On CUDA a host read of a device value (`.item()`, `float(t)`, `bool(t)`, a data-dependent shape
such as `nonzero`) stalls the host until the GPU has caught up, and the queue of kernels runs dry.
`torch.cuda.set_sync_debug_mode` sees those on a GPU only; these are the same reads seen at the
dispatcher, so a CPU test can count them per step.
"""

from __future__ import annotations

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode

# ATen ops whose result the host must wait for: a scalar read (`.item()`, `float()`, `bool()` all
# arrive as `_local_scalar_dense`) or an output size known only after the kernel ran.
HOST_READS = frozenset(
    {
        "aten._local_scalar_dense",
        "aten.equal",
        "aten.nonzero",
        "aten.masked_select",
        "aten._unique2",
        "aten.unique_dim",
        "aten.unique_consecutive",
        "aten.repeat_interleave",
        "aten.bincount",
    }
)


class HostReadCounter(TorchDispatchMode):
    """`with HostReadCounter() as reads:` … `reads.total`, `reads.ops` (op name → count)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket._qualified_op_name.replace("::", ".")
        if name in HOST_READS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def take(self) -> Counter[str]:
        """The reads since the last call."""
        taken, self.ops = self.ops, Counter()
        return taken
