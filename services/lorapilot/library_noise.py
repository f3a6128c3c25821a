"""Third-party log lines a LoRA Pilot user can do nothing about, dropped at the logger that emits them.

Each entry names one library logger and a fragment of one message, so everything else those
libraries say still shows. `lorapilot/__init__.py` installs the filters, so every process that
imports LoRA Pilot (the commands, the daemon's fork server and its jobs, the web services, the
scripts) starts with them; a filter on a logger that does not exist yet waits for it.
"""

from __future__ import annotations

import logging

# (logger, message fragment): why the line does not concern the user
NOISE: dict[tuple[str, str], str] = {
    (
        "bitsandbytes.backends.cpu.ops",
        "Failed to load CPU gemm_4bit_forward from kernels-community",
    ): "bitsandbytes looks for an optional Hub kernel for 4-bit matmuls on CPU when imported; "
    "LoRA Pilot quantizes only on GPUs, and offline the kernel cannot come",
    (
        "kernels._internals.hf_hub",
        "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'",
    ): "the same optional kernel, looked up offline",
    (
        "transformers.utils.import_utils",
        "requires torchvision (not installed); falling back to",
    ): "the PIL image processors are the ones LoRA Pilot uses; torchvision is left out on purpose "
    "(its wheel would replace the CPU or CUDA torch the install pins)",
}


class DropMessages(logging.Filter):
    """Drops records whose message contains one of `fragments`."""

    def __init__(self, fragments: list[str]) -> None:
        super().__init__()
        self.fragments = tuple(fragments)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is the library's bug; let it show
            return True
        return not any(fragment in message for fragment in self.fragments)


def quiet_library_noise() -> None:
    """Attach one `DropMessages` per logger in NOISE; calling it again changes nothing."""
    by_logger: dict[str, list[str]] = {}
    for name, fragment in NOISE:
        by_logger.setdefault(name, []).append(fragment)
    for name, fragments in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(existing, DropMessages) for existing in logger.filters):
            logger.addFilter(DropMessages(fragments))
