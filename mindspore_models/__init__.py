"""MindSpore model zoo for SGLang: models, shared layers, and the glue that runs them in SGLang.

Where things live:
  device.py    the one device switch (cpu | npu): device, attention backend, placement, collectives
  bridge.py    the one torch <-> MindSpore conversion point (DLPack, zero-copy)
  config.py    HF config -> frozen ModelConfig (all HF quirks resolved here)
  registry.py  architecture name -> model class, imported lazily
  weights.py   strict loading of HF safetensors names into packed parameters
  parallel.py  tensor-parallel rank/size and collectives
  kernels.py   custom CPU kernels (kernels/cpu, built by CMake) with pure-MindSpore fallbacks
  attention/   step plan, SGLang pool views, CPU and Ascend backends, Ascend op wrappers and their spec
  layers/      linear, norm, rope, attention, mla, moe, activation, embedding, decoder
  models/      one short file per architecture
  runtime/     what upstream SGLang's MindSpore glue drives, one forward step, the standalone runner
  sglang_models/  the EntryClass package upstream's glue imports (SGLANG_MINDSPORE_MODEL_PACKAGE)
  tools/       tiny checkpoints, the NPU smoke script
"""
