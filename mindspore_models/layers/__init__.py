"""Shared MindSpore layers; models are built from these and differ only by flags."""
