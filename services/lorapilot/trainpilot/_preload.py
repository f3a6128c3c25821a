"""Imported once by the multiprocessing fork server the daemon starts its training processes from.

torch, diffusers and transformers take seconds to import; importing them here once means every
job process starts in milliseconds instead. The daemon uses it only on machines without GPUs:
the import initialises CUDA where there is one (bitsandbytes asks for the device's capability),
and a process forked after that cannot use CUDA.
"""

import gc
import logging
import signal

# The fork server must outlive a SIGTERM sent to the whole process group (supervisord's
# stopasgroup): it reports the exit codes of the training processes the daemon is waiting for.
# It still exits with the daemon, when its pipe from the daemon closes.
signal.signal(signal.SIGTERM, signal.SIG_IGN)

try:
    import lorapilot.engine.trainer  # noqa: F401
except Exception:  # a broken install shows up in the job itself, with its message
    logging.getLogger(__name__).exception("preloading the training engine failed")

# Everything imported so far lives as long as the process: keep it out of the children's garbage
# collections, which would otherwise walk (and copy-on-write) all of it, ~0.4 s per collection.
gc.freeze()
