"""TrainSpec and the readers that turn kohya, ai-toolkit, diffusion-pipe and profile configs into it."""

from lorapilot.spec.issues import Notice, SpecError, SpecIssue
from lorapilot.spec.loader import LoadedSpec, load_spec, read_config
from lorapilot.spec.model import TrainSpec
from lorapilot.spec.readers import DIALECTS

__all__ = [
    "DIALECTS",
    "LoadedSpec",
    "Notice",
    "SpecError",
    "SpecIssue",
    "TrainSpec",
    "load_spec",
    "read_config",
]
