"""Glue between SGLang's serving state and the MindSpore models."""
