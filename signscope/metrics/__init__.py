"""The metrics of SPEC section 3, one module each; all torch-free and streaming."""
