"""The decomposition compiled: `decompose(fn, features)` traced once per input signature into a plain
graph of torch ops, compiled with torch.compile, cached, and checked against eager before use.

Why: in eager mode every LMD rule runs its M + 2 planes through separate elementwise kernels
(activation secants, norm statistics, residual adds), so the decomposition is bound by memory
traffic, not arithmetic. make_fx runs the rules once and records only the tensor ops they issue
(the LMDTensor subclass and its Python dispatch disappear from the graph); inductor then fuses
those ops. make_fx refuses data-dependent Python control flow (`.item()`, `if tensor:`), so a traced
graph holds for every input of its signature, not only the one it was traced with.

Any failure (tracing, compiling, or a result that differs from eager by more than `tolerance`)
leaves that signature on the eager path, with the reason logged once: compiling is an optimisation,
never a change of results.

With inductor, each checked graph is also kept on disk as an ahead-of-time package (lmd/artifacts.py):
a later process with the same key loads it, runs it on the same seeded check inputs and compares
the result with the eager result recorded when it was built, by the same criteria, instead of
tracing and compiling again (with inductor's cache warm that still took 8-9 s a graph on 2 cores).
A missing, stale or corrupt package is logged and rebuilt; one that cannot be built leaves the
signature on torch.compile, as before."""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ros2_lmd.lmd.artifacts import (
    ArtifactError,
    ArtifactKey,
    ArtifactMissing,
    PackageRunner,
    artifact_dir,
    artifact_key,
    build_package,
    concurrent_runners,
    load_artifact,
    packages_supported,
    prune_artifacts,
    remove_artifact,
    save_artifact,
)
from ros2_lmd.lmd.decompose import Decomposition, decompose
from ros2_lmd.lmd.variants import RuleVariants

LOG = logging.getLogger("ros2_lmd.lmd.compiled")

# How a compiled graph is checked against eager, relative to max|eager total|. The real output
# must agree everywhere within COMPILE_TOLERANCE: measured on the shipped compact_crl, 1e-6 to 3e-5
# (inductor reorders float sums; make_fx decomposes composite ops such as instance_norm). The
# components may differ more in a few cells: where a pre-activation is within rounding of zero, the
# activation rule's secant flips (eager at another batch size or thread count does the same), so
# up to COMPONENT_MISMATCH of the component values may be off by more than the tolerance (measured:
# 0 at batch 1, 0.34 % at batch 3 on random inputs). A wrong graph is off everywhere.
COMPILE_TOLERANCE = 1e-4
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
# "0": torch.compile at every start; anything else (the default): ahead-of-time packages (lmd/artifacts.py)
AHEAD_OF_TIME_ENV = "ROS2_LMD_AHEAD_OF_TIME"


def use_persistent_compile_cache() -> Path:
    """Where inductor keeps what it compiled: $TORCHINDUCTOR_CACHE_DIR when set, else
    $XDG_CACHE_HOME/ros2_lmd/torchinductor (~/.cache/...). Inductor's own default is under /tmp,
    which a reboot empties: every start of a vehicle's computer then compiled again (about 100 s on
    2 cores for the shipped models' graphs). Set for this process, before the first compile.
    Importing inductor writes its default into the variable: that value counts as not chosen."""
    chosen = os.environ.get(COMPILE_CACHE_ENV)
    # inductor's default is <tmp>/torchinductor_<user>: only a name like that is compared with it
    # (the comparison imports inductor: 1.2 s of a start-up that may not need it otherwise)
    if not chosen or (
        os.path.basename(chosen.rstrip(os.sep)).startswith("torchinductor_")
        and os.path.abspath(chosen) == _inductor_default_cache_dir()
    ):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        chosen = os.path.join(base, "ros2_lmd", "torchinductor")
        os.environ[COMPILE_CACHE_ENV] = chosen
    return Path(chosen)


def _inductor_default_cache_dir() -> str:
    try:  # a private module: if it moves, a value already in the variable is kept
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return ""
    return os.path.abspath(default_cache_dir())


COMPONENT_MISMATCH = 0.01

Signature = tuple


@dataclass
class CompiledGraph:
    """What was built for one input signature: the compiled callable (None: eager), why not, and
    what the check against eager found."""

    call: Callable[..., tuple[torch.Tensor, ...]] | None
    reason: str = ""
    max_difference: float = float("nan")  # of the real output
    component_mismatch: float = float("nan")  # share of component values beyond the tolerance
    build_s: float = 0.0
    # how the graph came to be: "artifact" (a package on disk, checked against its recorded eager
    # result), "package" (built into a package now), "torch.compile", or "" (none: eager)
    source: str = ""
    stages_s: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per build stage


class CompiledDecomposition:
    """`decompose(fn, features, rules)[output]` for each name in `outputs`, compiled per signature
    (modality names, shapes, dtypes, device, torch threads): call it like `decompose` and get
    {output: Decomposition}. Only the named outputs are computed (the others are dead code the
    compiler removes). `build_on_demand`: compile a signature when first called with it; otherwise
    signatures not prepared with `prepare` run eager. Safe to call from several threads."""

    def __init__(
        self,
        fn: Callable[[dict[str, torch.Tensor]], Any],
        outputs: Sequence[str],
        rules: RuleVariants | None = None,
        *,
        build_on_demand: bool = True,
        tolerance: float = COMPILE_TOLERANCE,
        backend: str = "inductor",
        ahead_of_time: bool | None = None,
    ) -> None:
        """`ahead_of_time`: with the inductor backend, keep each checked graph on disk as a package
        and load it in later processes (lmd/artifacts.py); otherwise torch.compile every start.
        None: unless $ROS2_LMD_AHEAD_OF_TIME is 0 (a package starts in 0.3-0.4 s a graph instead of
        seconds, and run through its C interface, which lets the interpreter lock go, `analyze` ran
        14.0-14.9 frames/s with packages against 12.3-12.7 with torch.compile: docs/performance.md)."""
        if not outputs:
            raise ValueError("CompiledDecomposition: name at least one output")
        self.fn, self.outputs = fn, tuple(outputs)
        self.rules = rules or RuleVariants()
        self.build_on_demand, self.tolerance, self.backend = build_on_demand, tolerance, backend
        if ahead_of_time is None:
            ahead_of_time = os.environ.get(AHEAD_OF_TIME_ENV, "1").strip() != "0"
        self.ahead_of_time = ahead_of_time and backend == "inductor" and packages_supported()
        self.graphs: dict[Signature, CompiledGraph] = {}
        self.eager_calls = 0  # calls that ran eager (no graph, or a failed one)
        self._lock = threading.Lock()

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, Decomposition]:
        graph = self.graphs.get(signature(features))
        if graph is None and self.build_on_demand:
            graph = self.prepare(features)
        if graph is None or graph.call is None:
            self.eager_calls += 1
            return self.eager(features)
        with torch.inference_mode():
            planes = graph.call(*features.values())
        return {name: _decomposition(p, tuple(features)) for name, p in zip(self.outputs, planes)}

    def eager(self, features: Mapping[str, torch.Tensor]) -> dict[str, Decomposition]:
        result = decompose(self.fn, features, rules=self.rules)
        return {name: result[name] for name in self.outputs}

    def prepare(self, features: Mapping[str, torch.Tensor]) -> CompiledGraph:
        """Build (trace, compile, check) the graph for the signature of `features`, once; the
        values of `features` do not matter. Returns what was built."""
        key = signature(features)
        with self._lock:  # one build per signature, even when several workers ask at once
            if key not in self.graphs:
                self.graphs[key] = self._build(features)
            return self.graphs[key]

    def _build(self, features: Mapping[str, torch.Tensor]) -> CompiledGraph:
        start = time.perf_counter()
        stages: dict[str, float] = {}
        names = tuple(features)
        # Inputs of the signature with values of their own: the graph must not depend on the
        # caller's values, and random planes exercise both sides of every activation.
        # Made in inference mode, as the monitor's features are: torch.compile guards on it, and a
        # graph compiled for ordinary tensors would be compiled again at the first real frame.
        generator = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            probe, check = (
                {
                    m: torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
                    for m, x in features.items()
                }
                for _ in range(2)
            )
        key = artifact_key(self.fn, self.outputs, self.rules, features) if self.ahead_of_time else None
        folder = artifact_dir(use_persistent_compile_cache()) if key is not None else None
        stages["key"] = time.perf_counter() - start
        if key is not None and folder is not None:
            loaded = self._load(folder, key, features, check, start, stages)
            if loaded is not None:
                return loaded

        def planes(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
            result = decompose(self.fn, dict(zip(names, tensors)), rules=self.rules)
            return tuple(result[name].stack_with_total() for name in self.outputs)

        package_dir = None
        try:
            with torch.inference_mode():
                # An eager pass first: rules cache their constants (an activation's value and slope
                # at zero, by autograd) on first use, which must not happen inside the trace.
                mark = time.perf_counter()
                expected = self.eager(check)
                stages["eager_reference"] = time.perf_counter() - mark
                from torch.fx.experimental.proxy_tensor import make_fx

                mark = time.perf_counter()
                traced = make_fx(planes)(*probe.values())
                stages["trace"] = time.perf_counter() - mark
                use_persistent_compile_cache()
                mark = time.perf_counter()
                call: Callable[..., tuple[torch.Tensor, ...]] | None = None
                source = "torch.compile"
                if key is not None and folder is not None:
                    call, package_dir = self._build_package(folder, traced, probe, features)
                    source = "package" if call is not None else source
                if call is None:
                    call = torch.compile(traced, backend=self.backend, dynamic=False, fullgraph=True)
                got = call(*check.values())
                stages["compile"] = time.perf_counter() - mark
            reference = {name: expected[name].stack_with_total() for name in self.outputs}
            difference, mismatch = self._compare(got, [reference[name] for name in self.outputs])
        except Exception as error:  # noqa: BLE001 - any failure to compile means: run eager
            if package_dir is not None:
                package_dir.cleanup()
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            LOG.warning(
                "decomposition runs eager for inputs %s: compiling failed (%s)", _describe(features), reason
            )
            return CompiledGraph(None, reason, build_s=time.perf_counter() - start, stages_s=stages)
        took = time.perf_counter() - start
        reason = self._refusal(difference, mismatch)
        if not reason:
            LOG.info(
                "decomposition compiled (%s) for inputs %s in %.1f s (output within %.1e of eager, "
                "%.2f%% of component values beyond %.0e)",
                source,
                _describe(features),
                took,
                difference,
                mismatch * 100,
                self.tolerance,
            )
            if package_dir is not None and key is not None and folder is not None:
                self._save(folder, key, Path(package_dir.name), reference, difference, mismatch)
        if package_dir is not None:
            package_dir.cleanup()
        if not reason:
            return CompiledGraph(call, "", difference, mismatch, took, source, stages)
        LOG.warning("decomposition runs eager for inputs %s: %s", _describe(features), reason)
        return CompiledGraph(None, reason, difference, mismatch, took, "", stages)

    def _compare(self, got: Sequence[torch.Tensor], expected: Sequence[torch.Tensor]) -> tuple[float, float]:
        """(max difference of the real output, share of component values beyond the tolerance),
        each relative to max|expected total|, over every output's planes (total, components, bias)."""
        if len(got) != len(expected):
            raise ValueError(f"{len(got)} outputs where {len(expected)} were expected")
        pairs = list(zip(got, expected))
        for g, e in pairs:
            if g.shape != e.shape:
                raise ValueError(f"planes of shape {tuple(g.shape)} where {tuple(e.shape)} were expected")
        difference = max(_relative_difference(g[0], e[0], e[0]) for g, e in pairs)
        mismatch = max(_mismatch(g[1:], e[1:], e[0], self.tolerance) for g, e in pairs)
        return difference, mismatch

    def _refusal(self, difference: float, mismatch: float) -> str:
        """Why a graph with these check figures must not be used ("" when it may)."""
        if not difference <= self.tolerance:
            return f"compiled output differs from eager by {difference:.2e} (tolerance {self.tolerance:.0e})"
        if not mismatch <= COMPONENT_MISMATCH:
            return (
                f"{mismatch:.1%} of the compiled components differ from eager by more than "
                f"{self.tolerance:.0e} (at most {COMPONENT_MISMATCH:.0%} may)"
            )
        return ""

    def _load(
        self,
        folder: Path,
        key: ArtifactKey,
        features: Mapping[str, torch.Tensor],
        check: Mapping[str, torch.Tensor],
        start: float,
        stages: dict[str, float],
    ) -> CompiledGraph | None:
        """The graph of `key` from its package on disk, checked against its recorded eager result;
        None (logged, and a bad entry removed) when there is none or it cannot be used."""
        mark = time.perf_counter()
        try:
            loaded = load_artifact(folder, key)
        except ArtifactMissing:
            LOG.info("no ahead-of-time decomposition for inputs %s: building one", _describe(features))
            return None
        except ArtifactError as error:
            LOG.warning("%s: removing it and building it again", error)
            remove_artifact(folder, key)
            return None
        stages["load"] = time.perf_counter() - mark
        mark = time.perf_counter()
        try:
            with torch.inference_mode():
                got = loaded.call(*check.values())
            difference, mismatch = self._compare(got, [loaded.reference[name] for name in self.outputs])
            reason = self._refusal(difference, mismatch)
        except Exception as error:  # noqa: BLE001 - a package that cannot run is rebuilt
            reason = f"running it failed ({type(error).__name__}: {_first_line(error)})"
            difference = mismatch = float("nan")
        stages["check"] = time.perf_counter() - mark
        if reason:
            LOG.warning(
                "ahead-of-time decomposition %s refused against its recorded eager result: %s; "
                "removing it and building it again",
                loaded.folder,
                reason,
            )
            remove_artifact(folder, key)
            return None
        took = time.perf_counter() - start
        LOG.info(
            "decomposition for inputs %s loaded from %s in %.2f s (output within %.1e of the recorded "
            "eager result, %.2f%% of component values beyond %.0e)",
            _describe(features),
            loaded.folder,
            took,
            difference,
            mismatch * 100,
            self.tolerance,
        )
        return CompiledGraph(loaded.call, "", difference, mismatch, took, "artifact", stages)

    def _build_package(
        self,
        folder: Path,
        traced: torch.fx.GraphModule,
        probe: Mapping[str, torch.Tensor],
        features: Mapping[str, torch.Tensor],
    ) -> tuple[PackageRunner | None, tempfile.TemporaryDirectory | None]:
        """Export and compile `traced` into a package in a temporary folder and open it; (None,
        None), logged, when that fails (torch.compile then builds the graph in this process)."""
        package_dir = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            package_dir = tempfile.TemporaryDirectory(prefix=".build-", dir=folder)
            package = build_package(traced, list(probe.values()), Path(package_dir.name) / "build.pt2")
            return PackageRunner(package, concurrent_runners()), package_dir
        except Exception as error:  # noqa: BLE001 - fall back to compiling in this process
            if package_dir is not None:
                package_dir.cleanup()
            message = str(error).splitlines()[0] if str(error) else ""
            LOG.warning(
                "no ahead-of-time package for inputs %s (%s: %s): compiling in this process instead",
                _describe(features),
                type(error).__name__,
                message,
            )
            return None, None

    def _save(
        self,
        folder: Path,
        key: ArtifactKey,
        build_dir: Path,
        reference: Mapping[str, torch.Tensor],
        difference: float,
        mismatch: float,
    ) -> None:
        check = {"max_difference": difference, "component_mismatch": mismatch, "tolerance": self.tolerance}
        try:
            saved = save_artifact(folder, key, build_dir / "build.pt2", reference, check)
        except (OSError, ValueError) as error:  # a read-only or full disk: this process still has it
            LOG.warning("ahead-of-time decomposition not saved in %s: %s", folder, error)
            return
        LOG.info("ahead-of-time decomposition saved in %s", saved)
        removed = prune_artifacts(folder)
        if removed:
            LOG.info(
                "removed %d ahead-of-time decompositions unused the longest from %s", len(removed), folder
            )


# module -> {(method, outputs, rules): CompiledDecomposition}; entries go with their module.
_SHARED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, CompiledDecomposition]] = (
    weakref.WeakKeyDictionary()
)
_SHARED_LOCK = threading.Lock()


def shared_compiled(
    module: nn.Module, method: str, outputs: Sequence[str], rules: RuleVariants | None = None
) -> CompiledDecomposition:
    """The CompiledDecomposition of `getattr(module, method)` for these outputs and rules, one per
    process: several pipelines over one loaded model (consecutive analyses, fleet workers, test
    cases) build each graph once. Signatures are prepared, as always, per caller. Rules with extra
    rules (functions: not comparable) get a CompiledDecomposition of their own."""
    rules = rules or RuleVariants()
    fn = getattr(module, method)
    if rules.extra_rules:
        return CompiledDecomposition(fn, outputs, rules, build_on_demand=False)
    variant = tuple(getattr(rules, f.name) for f in dataclasses.fields(rules) if f.name != "extra_rules")
    key = (method, tuple(outputs), variant)
    with _SHARED_LOCK:
        per_module = _SHARED.setdefault(module, {})
        if key not in per_module:
            per_module[key] = CompiledDecomposition(fn, outputs, rules, build_on_demand=False)
        return per_module[key]


def signature(features: Mapping[str, torch.Tensor]) -> Signature:
    """What a compiled graph is specific to: modality names and order, shapes, dtypes, device, and
    the torch thread count (inductor's CPU kernels are generated for it)."""
    return (
        tuple((m, tuple(x.shape), x.dtype, x.device) for m, x in features.items()),
        torch.get_num_threads(),
    )


def _decomposition(planes: torch.Tensor, modalities: tuple[str, ...]) -> Decomposition:
    """Back from `Decomposition.stack_with_total` planes: (total, *components, bias)."""
    return Decomposition(
        total=planes[0],
        components={m: planes[1 + i] for i, m in enumerate(modalities)},
        bias=planes[-1],
    )


def _relative_difference(got: torch.Tensor, expected: torch.Tensor, total: torch.Tensor) -> float:
    scale = total.abs().max().double().clamp_min(torch.finfo(torch.float64).tiny)
    return float(((got.double() - expected.double()).abs().max() / scale).item())


def _mismatch(got: torch.Tensor, expected: torch.Tensor, total: torch.Tensor, tolerance: float) -> float:
    """Share of the values of `got` further than `tolerance` x max|total| from `expected`."""
    scale = total.abs().max().double().clamp_min(torch.finfo(torch.float64).tiny)
    return float(((got.double() - expected.double()).abs() > tolerance * scale).double().mean().item())


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else ""


def _describe(features: Mapping[str, torch.Tensor]) -> str:
    return ", ".join(f"{m} {tuple(x.shape)}" for m, x in features.items())


__all__ = [
    "AHEAD_OF_TIME_ENV",
    "COMPONENT_MISMATCH",
    "CompiledDecomposition",
    "CompiledGraph",
    "COMPILE_TOLERANCE",
    "shared_compiled",
    "signature",
    "use_persistent_compile_cache",
]
