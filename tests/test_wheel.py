"""The installed wheel: patched sglang, pin + patch level visible, kernels and provenance shipped."""
import importlib.metadata
import os
from pathlib import Path

import pytest

from patch_tool.workspace import Workspace

pytestmark = pytest.mark.skipif(os.environ.get("SGLMS_TEST_INSTALLED") != "1",
                                reason="checks the installed wheel; ci/run_tests.sh sets SGLMS_TEST_INSTALLED=1")


def test_version_names_pin_and_patch_level():
    ws = Workspace.at()
    version = importlib.metadata.version("sglang-mindspore")
    names = ws.series_names()
    assert version == f"{ws.pin().version}+ms.{len(names)}.{ws.series_hash()[:8]}"


def test_provenance_matches_this_checkout():
    from mindspore_models import provenance

    ws = Workspace.at()
    info = provenance.load()
    assert info["upstream"] == f"sglang=={ws.pin().version}"
    assert info["upstream_sha256"] in {w.sha256 for w in ws.pin().wheels.values()}
    assert info["series_sha256"] == ws.series_hash()
    assert [p["file"] for p in info["patches"]] == ws.series_names()
    assert all(p["subject"] and p["upstream_status"] for p in info["patches"])


def test_imported_sglang_is_the_patched_tree():
    import sglang.srt.arg_groups.validation_hook as hook
    import sglang.srt.models.mindspore as glue
    from sglang.srt.environ import envs

    assert envs.SGLANG_MINDSPORE_MODEL_PACKAGE.get() == "mindspore_models.sglang_models"  # patch 0002
    assert 'cfg.device == "cpu"' in Path(hook.__file__).read_text()
    assert "site-packages" in glue.__file__


def test_kernel_library_ships_inside_the_package():
    from mindspore_models import kernels

    path = kernels.library_path()
    assert path is not None and path.parent.parent == Path(kernels.__file__).parent
    assert all(v.startswith("custom") for v in kernels.status().values()), kernels.status()
