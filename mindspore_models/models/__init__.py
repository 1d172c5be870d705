"""One file per architecture; register each in mindspore_models/registry.py."""
