"""The model package upstream SGLang's MindSpore glue imports for `--model-impl mindspore`.

Upstream's `sglang/srt/models/mindspore.py` (kept by our patch series) collects `EntryClass`
from every module of the package named by `SGLANG_MINDSPORE_MODEL_PACKAGE` (default: this
package; sgl-mindspore users set it to `sgl_mindspore.models`). One class per architecture in
the registry, each the SGLang-facing wrapper of runtime/sglang_model.py.
"""
