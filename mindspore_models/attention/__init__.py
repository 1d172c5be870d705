"""Attention backends and the Ascend op layer they share.

`ascend_ops` wraps MindSpore's built-in Ascend attention primitives; `reference` is an
executable spec of the same calls (torch on the host). Both expose one "ops provider"
interface, so a backend can be built with either. Submodules are imported on demand.
"""
