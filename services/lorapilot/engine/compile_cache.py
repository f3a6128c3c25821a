"""`torch.compile`'s caches in the workspace, so the second run of the same shapes starts warm.

Compiling a UNet costs minutes (DESIGN §9: 126–183 s), which a short run cannot repay. Inductor
keeps compiled graphs (FX graph cache, AOTAutograd cache) and Triton keeps kernels on disk; by
default both live under /tmp, which a container restart empties. Pointing them at
`/workspace/cache/torch` keeps them with the workspace.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def use_compile_cache(folder: Path) -> Path:
    """Point Inductor's and Triton's on-disk caches at `folder` (for this process and its children)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    from torch._functorch import config as functorch_config  # noqa: PLC0415 - only when compiling
    from torch._inductor import config as inductor_config  # noqa: PLC0415

    inductor_config.fx_graph_cache = True
    if hasattr(functorch_config, "enable_autograd_cache"):
        functorch_config.enable_autograd_cache = True
    log.info("torch.compile caches in %s", folder)
    return folder
