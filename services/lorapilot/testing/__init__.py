"""Stand-ins for real models, so tests and the demo run on a fresh machine with no downloads.

`tiny_models.build_tiny_model` writes seeded, randomly initialised diffusers pipelines of every
family that load and run through the same code paths as the multi-gigabyte originals.
"""
