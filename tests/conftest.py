import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Appended, not prepended: an installed wheel's mindspore_models/sglang win over the source
# tree, so CI tests what it ships. patch_tool is only in the source tree.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory):
    from mindspore_models.tools.make_tiny_checkpoint import make_qwen3

    return make_qwen3(tmp_path_factory.mktemp("ckpt") / "tiny-qwen3", tied=False, seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_tied(tmp_path_factory):
    from mindspore_models.tools.make_tiny_checkpoint import make_qwen3

    return make_qwen3(tmp_path_factory.mktemp("ckpt") / "tiny-qwen3-tied", tied=True, seed=1)


def kernels_required() -> bool:
    return os.environ.get("SGLMS_REQUIRE_KERNELS") == "1"


@pytest.fixture(params=["custom-kernels", "fallbacks"])
def kernel_mode(request, monkeypatch):
    """Run with every custom CPU kernel, or with every pure-MindSpore fallback."""
    from mindspore_models import kernels

    if request.param == "custom-kernels":
        missing = {k: v for k, v in kernels.status().items() if not v.startswith("custom")}
        if missing:
            if kernels_required():
                pytest.fail(f"SGLMS_REQUIRE_KERNELS=1 but {missing}")
            pytest.skip(f"custom kernels not built: {missing}")
    else:
        monkeypatch.setattr(kernels, "status", lambda: {k: "fallback: forced by test" for k in kernels.KERNELS})
    return request.param


def pytest_configure(config):
    if os.environ.get("SGLMS_TEST_INSTALLED") == "1":
        import mindspore_models
        import sglang

        for mod in (mindspore_models, sglang):
            if "site-packages" not in mod.__file__:
                raise pytest.UsageError(f"testing {mod.__name__} from {mod.__file__}, not from the installed wheel")
