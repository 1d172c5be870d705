"""MindSpore model zoo for SGLang: models, shared layers, and the glue that runs them in SGLang.

Where things live:
  device.py    the one device switch (cpu | npu)
  bridge.py    the one torch <-> MindSpore conversion point (DLPack, zero-copy)
  config.py    HF config -> frozen ModelConfig (all HF quirks resolved here)
  registry.py  architecture name -> model class, imported lazily
  weights.py   strict loading of HF safetensors names into packed parameters
  kernels.py   custom CPU kernels (kernels/cpu, built by CMake) with pure-MindSpore fallbacks
  layers/      linear, norm, rope, attention, activation, embedding
  models/      one short file per architecture
  runtime/     SGLang ForwardBatch -> model inputs, the per-step context, the SGLang model shell
"""
