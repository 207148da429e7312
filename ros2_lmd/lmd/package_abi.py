"""An AOTInductor package run through its shared library's C interface, without the interpreter lock.

Why: torch's package loader (`torch._C._aoti.AOTIModelPackageLoader.run`) keeps the GIL for the
whole run. Measured on compact_crl's decomposition (batch 4, one thread, about 0.2 s a call): a
Python thread beside a run made 0.2 M loop iterations a second against 14-17 M, so while one worker
decomposed, the other worker, the bag reader and the concluding thread all stood still, and
`analyze` ran a third fewer frames a second with packages than with torch.compile (whose kernels
let the lock go). ctypes releases the GIL for every foreign call, and the functions called here are
the ones torch's own loader calls (`torch/csrc/inductor/aoti_runtime/interface.h`); tensors cross as
torch's own handles (`torch._C._aoti`'s handle helpers), so the results are the loader's bit for bit.

Only what this module can read is opened this way: one CPU shared library with its weights inside
it. A package with anything else in its data (weights in a separate file, several libraries, another
device) raises `PackageABIError`, and the caller keeps torch's loader."""

from __future__ import annotations

import ctypes
import json
import tempfile
import weakref
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ros2_lmd.errors import LMDError

_MODEL_FOLDER = "/data/aotinductor/model/"
# What a CPU package with its weights inside the library holds under data/ (besides metadata).
_KNOWN_SUFFIXES = (".wrapper.so", ".cpp", ".json")


class PackageABIError(LMDError, RuntimeError):
    """The package cannot be opened or run through its C interface here (the message says why)."""


def _capsule_api() -> tuple[Any, Any]:
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return get_pointer, new


def _library_member(archive: zipfile.ZipFile, package: Path) -> str:
    """The one shared library of a CPU package whose data holds nothing this module cannot read."""
    data = [name for name in archive.namelist() if "/data/" in name and not name.endswith("/")]
    libraries = [name for name in data if _MODEL_FOLDER in name and name.endswith(".wrapper.so")]
    unknown = [name for name in data if not name.endswith(_KNOWN_SUFFIXES)]
    if len(libraries) != 1 or unknown:
        raise PackageABIError(
            f"{package}: {len(libraries)} model libraries and {len(unknown)} other data files "
            f"({', '.join(unknown[:3]) or 'none'}): only a single library with its weights inside is run here"
        )
    for name in data:
        if name.endswith(".wrapper_metadata.json"):
            device = json.loads(archive.read(name)).get("AOTI_DEVICE_KEY", "")
            if device != "cpu":
                raise PackageABIError(f"{package}: compiled for device {device!r}, not cpu")
    return libraries[0]


class PackageLibrary:
    """A CPU package's library opened and its model container created for `runners` concurrent
    calls. Call it with the graph's input tensors (contiguous, in the graph's order): returns its
    outputs. Thread-safe: the container hands each concurrent call its own model instance."""

    def __init__(self, package: Path, runners: int) -> None:
        self._get_pointer, self._new_capsule = _capsule_api()
        handles = getattr(torch._C, "_aoti", None)
        to_handles = getattr(handles, "unsafe_alloc_void_ptrs_from_tensors", None)
        from_handles = getattr(handles, "alloc_tensors_by_stealing_from_void_ptrs", None)
        if to_handles is None or from_handles is None:
            raise PackageABIError(f"torch {torch.__version__} has no tensor handle helpers")
        self._to_handles, self._from_handles = to_handles, from_handles
        try:
            with (
                zipfile.ZipFile(package) as archive,
                tempfile.TemporaryDirectory(prefix="ros2_lmd_aoti_") as tmp,
            ):
                member = _library_member(archive, Path(package))
                # Mapped once opened: the extracted file can go with the folder.
                self._lib = ctypes.CDLL(archive.extract(member, tmp))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
            raise PackageABIError(f"{package}: cannot open its library ({error})") from None
        lib = self._lib
        try:
            create, run = lib.AOTInductorModelContainerCreateWithDevice, lib.AOTInductorModelContainerRun
            count_inputs = lib.AOTInductorModelContainerGetNumInputs
            count_outputs = lib.AOTInductorModelContainerGetNumOutputs
            delete, last_error = lib.AOTInductorModelContainerDelete, lib.AOTInductorGetLastError
        except AttributeError as error:
            raise PackageABIError(f"{package}: its library lacks {error}") from None
        create.restype = run.restype = count_inputs.restype = count_outputs.restype = ctypes.c_int32
        delete.restype = last_error.restype = ctypes.c_int32
        run.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._run, self._last_error, self._package = run, last_error, Path(package)
        container = ctypes.c_void_p()
        self._check(create(ctypes.byref(container), ctypes.c_size_t(max(1, runners)), b"cpu", None), "create")
        self._container = container
        weakref.finalize(self, delete, container)
        inputs, outputs = ctypes.c_size_t(), ctypes.c_size_t()
        self._check(count_inputs(container, ctypes.byref(inputs)), "count inputs")
        self._check(count_outputs(container, ctypes.byref(outputs)), "count outputs")
        self.inputs, self.outputs = inputs.value, outputs.value

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            message = ctypes.c_char_p()
            self._last_error(ctypes.byref(message))
            text = (message.value or b"").decode(errors="replace").strip().splitlines()
            reason = text[0] if text else f"status {status}"
            raise PackageABIError(f"{self._package}: {what} failed ({reason})")

    def __call__(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(tensors) != self.inputs:
            raise PackageABIError(f"{self._package}: takes {self.inputs} tensors, got {len(tensors)}")
        # New handles of the caller's tensors: the run takes (and frees) them.
        inputs = (ctypes.c_void_p * self.inputs)(
            *(self._get_pointer(capsule, None) for capsule in self._to_handles(list(tensors)))
        )
        outputs = (ctypes.c_void_p * self.outputs)()
        self._check(self._run(self._container, inputs, self.inputs, outputs, self.outputs, None, None), "run")
        return self._from_handles([self._new_capsule(outputs[i], None, None) for i in range(self.outputs)])


__all__ = ["PackageABIError", "PackageLibrary"]
