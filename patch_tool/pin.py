"""The pin: which upstream release (and which wheel per CPU architecture) the series applies on."""
from __future__ import annotations

import platform
import tomllib
from dataclasses import dataclass
from pathlib import Path

from patch_tool import PatchToolError

ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


@dataclass(frozen=True)
class WheelPin:
    arch: str
    file: str
    sha256: str

    @property
    def platform_tag(self) -> str:
        # sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl -> manylinux_2_34_x86_64
        return self.file[: -len(".whl")].split("-")[-1]


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    python: str
    wheels: dict[str, WheelPin]

    def wheel(self, arch: str | None = None) -> WheelPin:
        arch = host_arch() if arch is None else ARCH_ALIASES.get(arch, arch)
        if arch not in self.wheels:
            raise PatchToolError(
                f"the pin has no wheel for architecture {arch!r} (pinned: {', '.join(sorted(self.wheels))})"
            )
        return self.wheels[arch]


def host_arch() -> str:
    machine = platform.machine().lower()
    return ARCH_ALIASES.get(machine, machine)


def load_pin(path: Path) -> Pin:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PatchToolError(f"pin file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise PatchToolError(f"pin file {path} is not valid TOML: {e}") from None
    if len(data) != 1:
        raise PatchToolError(f"pin file {path} must hold exactly one [package] table")
    package, table = next(iter(data.items()))
    try:
        wheels = {
            arch: WheelPin(arch, w["file"], w["sha256"].lower())
            for arch, w in table["wheels"].items()
        }
        return Pin(package, table["version"], table["python"], wheels)
    except KeyError as e:
        raise PatchToolError(f"pin file {path} lacks the key {e.args[0]!r}") from None
