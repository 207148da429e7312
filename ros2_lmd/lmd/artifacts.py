"""Compiled decompositions kept on disk ahead of time: one AOTInductor package per input signature,
with the eager result it was checked against, so that a later start loads a shared library instead
of tracing and compiling again.

Why: with inductor's cache warm, building one compiled graph still cost 8-9 s on 2 cores (an eager
reference pass, make_fx, dynamo re-tracing the 800-node graph, the cache look-up, the check), and
the monitor builds two (the decomposition and its self-check variant): most of a warm start-up.
Loading a package and checking it takes well under a second.

An entry is a folder `<key>/` under `artifact_dir(cache)`: `decomposition.pt2` (the package),
`reference.safetensors` (the eager planes on the seeded check inputs, recorded when the package was
built and checked) and `manifest.json` (the key's fields, both files' SHA-256, the check's figures).
The key covers everything the compiled code depends on: the function's module (its class and every
sub-module's class, by the SHA-256 of their source files), its parameters and buffers, its
config, the rules, the outputs, the input signature (names, shapes, dtypes), the torch thread
count, torch's version, the CPU's instruction set, and the source of this engine (lmd/). An entry
whose files do not match its manifest, or whose manifest names another key, is refused with the
reason and rebuilt; a loaded package is still run on the check inputs and compared with the
recorded eager result before use (lmd/compiled.py). Nothing here is unpickled: the manifest is
JSON, the reference safetensors, the package a zip of C++ and a shared library that torch's own
loader opens."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ros2_lmd.errors import LMDError
from ros2_lmd.lmd.package_abi import PackageABIError, PackageLibrary
from ros2_lmd.lmd.variants import RuleVariants

LOG = logging.getLogger("ros2_lmd.lmd.artifacts")

ARTIFACT_FORMAT = 1  # bump when the layout or the meaning of a field changes
ARTIFACT_FOLDER = "ros2_lmd_aot"  # under the compile cache: emptying the cache empties this too
PACKAGE_FILE, REFERENCE_FILE, MANIFEST_FILE = "decomposition.pt2", "reference.safetensors", "manifest.json"
ENGINE_SOURCES = Path(__file__).resolve().parent  # lmd/: the rules shape every compiled graph
# Entries kept, the most recently used (`prune_artifacts`): each is a few MB (compact_crl: 6 MB),
# a monitor uses two per input signature (the decomposition and its self-check)
ARTIFACT_KEEP = 32


class ArtifactError(LMDError, ValueError):
    """An artifact on disk that cannot be used: missing, corrupt (a file does not match its
    manifest) or stale (made for another key); the message says which and why."""


class ArtifactMissing(ArtifactError):
    """No entry for the key (the first start with these inputs, or the cache was emptied)."""


@dataclass(frozen=True)
class ArtifactKey:
    """What a compiled decomposition is specific to, field by field (readable in the manifest);
    `digest` names the entry."""

    fields: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.fields).encode()).hexdigest()[:32]

    def as_dict(self) -> dict[str, str]:
        return dict(self.fields)


def owning_module(fn: Callable[..., Any]) -> tuple[nn.Module, str] | None:
    """(module, method name) of a module or a bound method of one; None for any other callable,
    whose code and state cannot be keyed."""
    if isinstance(fn, nn.Module):
        return fn, "forward"
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, nn.Module):
        return owner, getattr(fn, "__name__", "")
    return None


def artifact_key(
    fn: Callable[..., Any],
    outputs: Sequence[str],
    rules: RuleVariants,
    features: Mapping[str, torch.Tensor],
) -> ArtifactKey | None:
    """The key of the compiled decomposition of `fn` on inputs like `features`, or None when it
    cannot be keyed (not a module's method, rules with extra rule functions, not on the CPU)."""
    owner = owning_module(fn)
    if owner is None or rules.extra_rules:
        return None
    if any(x.device.type != "cpu" for x in features.values()):
        return None
    module, method = owner
    variant = [
        (f.name, repr(getattr(rules, f.name))) for f in dataclasses.fields(rules) if f.name != "extra_rules"
    ]
    fields = (
        ("format", str(ARTIFACT_FORMAT)),
        ("torch", torch.__version__),
        ("machine", platform.machine()),
        ("cpu_capability", torch.backends.cpu.get_cpu_capability()),
        ("threads", str(torch.get_num_threads())),
        ("module", f"{type(module).__module__}.{type(module).__qualname__}"),
        ("method", method),
        ("config", repr(getattr(module, "config", None))),
        ("outputs", repr(tuple(outputs))),
        ("rules", repr(variant)),
        ("inputs", repr([(m, tuple(x.shape), str(x.dtype)) for m, x in features.items()])),
        ("weights_sha256", state_digest(module)),
        ("module_sources_sha256", _sources_digest(module_sources(module))),
        ("engine_sources_sha256", _sources_digest(sorted(ENGINE_SOURCES.rglob("*.py")))),
    )
    return ArtifactKey(fields)


def state_digest(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (persistent or not) by name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    parameters = module.named_parameters(remove_duplicate=False)
    for name, tensor in [*parameters, *module.named_buffers(remove_duplicate=False)]:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


PACKAGE_ROOT = ENGINE_SOURCES.parent  # ros2_lmd/


def module_sources(module: nn.Module) -> list[Path]:
    """The source files of the module's class and of every sub-module's class, with their bases;
    for a class of this package, every module beside it too (the helpers a model's `fuse` calls
    live in its package: an edit there must make a new key, since the check against the recorded
    eager result cannot see it)."""
    files: set[Path] = set()
    for sub in module.modules():
        for cls in type(sub).__mro__:
            try:
                source = inspect.getsourcefile(cls)
            except TypeError:  # builtins
                continue
            if source:
                path = Path(source).resolve()
                files.add(path)
                if PACKAGE_ROOT in path.parents:
                    files.update(path.parent.glob("*.py"))
    return sorted(files)


def _sources_digest(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def artifact_dir(cache: Path) -> Path:
    """Where the artifacts live: beside inductor's own cache, so that emptying it empties both."""
    return Path(cache) / ARTIFACT_FOLDER


@dataclass
class LoadedArtifact:
    """A package opened and its recorded eager result: run `call(*tensors)`, compare with
    `reference` (output name -> planes)."""

    call: Callable[..., tuple[torch.Tensor, ...]]
    reference: dict[str, torch.Tensor]
    manifest: dict[str, Any]
    folder: Path


class PackageRunner:
    """A loaded AOTInductor package as a callable of the graph's tensors. Inputs are made
    contiguous: the package was compiled for the strides of contiguous tensors and, unlike a
    torch.compile graph, does not guard on them. `runners`: how many calls may run at once (the
    monitor calls from several worker threads).

    Run through the library's C interface (lmd/package_abi.py), which lets the interpreter lock go
    while it runs; `releases_gil` says so. torch's own loader, which keeps the lock for the whole
    run, is the fallback for a package that interface cannot open (logged once per package)."""

    def __init__(self, package: Path, runners: int, *, c_interface: bool = True) -> None:
        """`c_interface=False`: torch's loader only (to compare the two)."""
        self.library: PackageLibrary | None = None
        if c_interface:
            try:
                self.library = PackageLibrary(package, runners)
            except PackageABIError as error:
                LOG.info("%s: run by torch's loader, which holds the interpreter lock", error)
        self.loader = None
        if self.library is None:
            loader_class = _package_loader()
            if loader_class is None:
                raise ArtifactError(f"torch {torch.__version__} has no AOTInductor package loader")
            # torch._C._aoti directly: torch._inductor.aoti_load_package imports inductor (1.2 s here)
            self.loader = loader_class(str(package), "model", False, max(1, runners), -1)

    @property
    def releases_gil(self) -> bool:
        return self.library is not None

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = [x.contiguous() for x in tensors]
        if self.library is not None:
            return tuple(self.library(inputs))
        assert self.loader is not None
        return tuple(self.loader.run(inputs))


def _package_loader() -> Any:
    return getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)


def packages_supported() -> bool:
    """Whether this torch can open packages (a private class: without it, building one is wasted)."""
    return _package_loader() is not None


def concurrent_runners() -> int:
    """Calls a package may serve at once: one per core this process may use (its worker threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def load_artifact(directory: Path, key: ArtifactKey) -> LoadedArtifact:
    """The entry of `key` under `directory`, its files checked against its manifest. ArtifactError
    (missing, corrupt or stale, with why) when it cannot be used."""
    from safetensors.torch import load_file

    folder = Path(directory) / key.digest
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactMissing(f"no artifact {folder}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"artifact {folder}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("key") != key.as_dict():
        raise ArtifactError(f"artifact {folder}: its manifest was written for another key (stale)")
    for name, field in ((PACKAGE_FILE, "package_sha256"), (REFERENCE_FILE, "reference_sha256")):
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"artifact {folder}: {name} is missing")
        if file_digest(path) != manifest.get(field):
            raise ArtifactError(f"artifact {folder}: {name} does not match its manifest's SHA-256 (corrupt)")
    try:
        reference = load_file(str(folder / REFERENCE_FILE))
        call = PackageRunner(folder / PACKAGE_FILE, concurrent_runners())
    except (OSError, RuntimeError, ValueError) as error:  # safetensors and torch's loader raise these
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ArtifactError(f"artifact {folder}: cannot be loaded ({message})") from None
    try:
        os.utime(manifest_path)  # used now: what `prune_artifacts` keeps
    except OSError:
        pass  # a read-only cache: the entry is used all the same
    return LoadedArtifact(call, reference, manifest, folder)


def save_artifact(
    directory: Path,
    key: ArtifactKey,
    package: Path,
    reference: Mapping[str, torch.Tensor],
    check: Mapping[str, float],
) -> Path:
    """Store a built package (moved in) with its checked eager result as the entry of `key`. Written
    into a private folder and renamed into place whole, so that a reader never sees half an entry;
    when another process got there first its entry is kept. Returns the entry's folder."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / key.digest
    staging = Path(tempfile.mkdtemp(prefix=f".{key.digest}.", dir=directory))
    try:
        shutil.move(str(package), staging / PACKAGE_FILE)
        save_file({k: v.contiguous() for k, v in reference.items()}, str(staging / REFERENCE_FILE))
        manifest = {
            "key": key.as_dict(),
            "package_sha256": file_digest(staging / PACKAGE_FILE),
            "reference_sha256": file_digest(staging / REFERENCE_FILE),
            "check": dict(check),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / MANIFEST_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def prune_artifacts(directory: Path, keep: int = ARTIFACT_KEEP) -> list[Path]:
    """Remove all but the `keep` most recently used entries under `directory` (by their manifest's
    modification time, which a save sets and a load refreshes). Why: a new engine, model, torch or
    input size makes new keys, and the entries of the old ones would otherwise stay forever (67
    entries, 242 MB, after two days of development here). Folders without a manifest (another
    process's entry being written) are left alone. Returns the folders removed."""
    entries: list[tuple[float, Path]] = []
    try:
        folders = list(Path(directory).iterdir())
    except OSError:
        return []
    for folder in folders:
        try:
            entries.append(((folder / MANIFEST_FILE).stat().st_mtime, folder))
        except OSError:
            continue  # a staging folder, or not an entry
    entries.sort(reverse=True)
    removed = [folder for _, folder in entries[max(0, keep) :]]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def remove_artifact(directory: Path, key: ArtifactKey) -> None:
    """Remove the entry of `key` (a corrupt or stale one, before it is rebuilt)."""
    shutil.rmtree(Path(directory) / key.digest, ignore_errors=True)


def build_package(traced: torch.fx.GraphModule, example: Sequence[torch.Tensor], out: Path) -> Path:
    """Export the traced graph and compile it into an AOTInductor package at `out`."""
    from torch._inductor import aoti_compile_and_package

    exported = torch.export.export(traced, tuple(example), strict=False)
    return Path(aoti_compile_and_package(exported, package_path=str(out)))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "ARTIFACT_FORMAT",
    "ArtifactError",
    "ArtifactKey",
    "ArtifactMissing",
    "LoadedArtifact",
    "PackageRunner",
    "artifact_dir",
    "artifact_key",
    "build_package",
    "concurrent_runners",
    "file_digest",
    "load_artifact",
    "owning_module",
    "packages_supported",
    "remove_artifact",
    "save_artifact",
    "state_digest",
]
