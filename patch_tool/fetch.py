"""Download the pinned wheel with pip, verify its sha256, keep it in a cache, unpack it.

Every cache entry is written under a temporary name and renamed into place only once it is
complete and verified, so an interrupted or failed fetch never leaves a corrupt entry.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from patch_tool import PatchToolError
from patch_tool.cache import touch
from patch_tool.pin import Pin, WheelPin


def default_cache_dir() -> Path:
    env = os.environ.get("PATCH_TOOL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sglang-mindspore-patch-tool"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_source_args() -> list[str]:
    """Extra pip arguments naming where releases come from (tests point this at a local dir)."""
    find_links = os.environ.get("PATCH_TOOL_FIND_LINKS")
    return ["--no-index", "--find-links", find_links] if find_links else []


def fetch(pin: Pin, arch: str | None, cache: Path, log=print) -> Path:
    """Return the path of the verified pinned wheel, downloading it if the cache lacks it."""
    wheel = pin.wheel(arch)
    target = cache / "wheels" / wheel.file
    if target.exists():
        verify_file(target, wheel)
        log(f"cached: {target}")
        touch(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        log(f"downloading {pin.package}=={pin.version} ({wheel.file}) with pip ...")
        _pip_download(pin, wheel, Path(tmp))
        got = Path(tmp) / wheel.file
        if not got.exists():
            names = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise PatchToolError(f"pip downloaded {names}, not the pinned file {wheel.file}")
        verify_file(got, wheel)
        os.replace(got, target)
    log(f"verified sha256 {wheel.sha256[:16]}..., cached at {target}")
    return target


def _pip_download(pin: Pin, wheel: WheelPin, dest: Path) -> None:
    platform = [] if wheel.platform_tag == "any" else [
        "--platform", wheel.platform_tag, "--python-version", pin.python[2:], "--implementation", pin.python[:2]]
    cmd = [*_pip(), "download", "--no-deps", "--only-binary=:all:", *platform, "--dest", str(dest),
           *pip_source_args(), f"{pin.package}=={pin.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=pip_env())
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise PatchToolError(f"pip could not download {pin.package}=={pin.version}:\n{tail}")


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip"]


def pip_env() -> dict[str, str]:
    """Environment for running pip. Inside pip's isolated build environment (setup.py under a
    plain `pip wheel .`) PYTHONPATH hides the interpreter's own site-packages, pip included;
    the download must see the interpreter as it is."""
    env = dict(os.environ)
    if importlib.util.find_spec("pip") is None:
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONNOUSERSITE", None)
    return env


def verify_file(path: Path, wheel: WheelPin) -> None:
    actual = sha256_of(path)
    if actual != wheel.sha256:
        path.unlink(missing_ok=True)
        raise PatchToolError(
            f"sha256 mismatch for {wheel.file}: pinned {wheel.sha256}, got {actual}; "
            "the file was deleted and not cached"
        )


def pristine_tree(wheel_path: Path, sha256: str, cache: Path) -> Path:
    """Unpack the verified wheel once into the cache; the result is read-only by convention."""
    target = cache / "pristine" / sha256
    if target.is_dir():
        touch(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            zf.extractall(tmp)
        os.replace(tmp, target)
    except zipfile.BadZipFile as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PatchToolError(f"{wheel_path.name} is not a valid wheel: {e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def fetch_other_platform(pin: Pin, version: str, arch: str, host_file: str, cache: Path, log=print) -> tuple[str, str]:
    """(file, sha256) of `version`'s wheel for another pinned architecture, named like the host's."""
    from patch_tool.pin import host_arch

    host = host_arch()
    if not host_file.endswith(f"_{host}.whl"):
        raise PatchToolError(f"cannot derive the {arch} wheel name from {host_file}")
    file = host_file[: -len(f"{host}.whl")] + f"{arch}.whl"
    wheel = WheelPin(arch, file, "")
    folder = cache / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        log(f"downloading {file} with pip ...")
        _pip_download(Pin(pin.package, version, file.split("-")[2], pin.wheels), wheel, Path(tmp))
        got = Path(tmp) / file
        if not got.exists():
            raise PatchToolError(f"no {arch} wheel named {file} for {pin.package} {version}")
        digest = sha256_of(got)
        os.replace(got, folder / file)
    return file, digest
