"""EntryClass for upstream's glue: one class per registered architecture, named after it."""
from mindspore_models.registry import supported
from mindspore_models.runtime.sglang_model import SGLangModel

EntryClass = [type(arch, (SGLangModel,), {"__doc__": f"{arch} served through upstream's glue"}) for arch in supported()]
