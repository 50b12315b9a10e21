"""Training code for the bundled surrogate models and the evaluators that measure them.

Not imported by the library at run time. Everything here needs only torch, numpy,
pillow and safetensors (no kornia), so it runs on a bare GPU machine.
"""
