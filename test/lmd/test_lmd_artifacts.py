"""Ahead-of-time compiled decompositions on disk (lmd/artifacts.py, used by lmd/compiled.py): built
once and checked against eager, loaded by a fresh process and checked against the recorded eager
result, keyed by everything the compiled code depends on, and a corrupt, stale or wrong entry
refused with its reason and rebuilt, never used."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ros2_lmd.lmd import CompiledDecomposition, RuleVariants, decompose
from ros2_lmd.lmd.artifacts import (
    MANIFEST_FILE,
    PACKAGE_FILE,
    REFERENCE_FILE,
    ArtifactError,
    artifact_dir,
    artifact_key,
    file_digest,
    load_artifact,
    prune_artifacts,
)
from ros2_lmd.lmd.compiled import AHEAD_OF_TIME_ENV, COMPILE_CACHE_ENV, COMPILE_TOLERANCE, signature
from ros2_lmd.lmd.reference_nets import SimpleBEVDecoder

pytestmark = pytest.mark.slow  # test/conftest.py: tiers (each package build is a C++ compile)

REPO = Path(__file__).resolve().parents[2]


def _model_and_features(batch: int = 1) -> tuple[SimpleBEVDecoder, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = SimpleBEVDecoder({"camera": 2, "lidar": 2}, latent=4).eval()
    features = {m: torch.randn(batch, 2, 8, 8) for m in ("camera", "lidar")}
    return model, features


def _build(model, features):
    compiled = CompiledDecomposition(model, ["segmentation"], build_on_demand=False, ahead_of_time=True)
    return compiled, compiled.prepare(features)


def _entry(cache: Path, model, features) -> Path:
    key = artifact_key(model, ["segmentation"], RuleVariants(), features)
    assert key is not None
    return artifact_dir(cache) / key.digest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One package built into a compile cache of its own; each test works on a copy of it."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    before = os.environ.get(COMPILE_CACHE_ENV)
    os.environ[COMPILE_CACHE_ENV] = str(cache)
    try:
        model, features = _model_and_features()
        compiled, graph = _build(model, features)
    finally:
        if before is None:
            os.environ.pop(COMPILE_CACHE_ENV, None)
        else:
            os.environ[COMPILE_CACHE_ENV] = before
    assert graph.call is not None and graph.source == "package", graph.reason
    return cache, compiled, graph


@pytest.fixture
def cache(built, tmp_path, monkeypatch):
    """A copy of the built cache, chosen for this test."""
    copy = tmp_path / "cache"
    shutil.copytree(built[0], copy)
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(copy))
    return copy


def test_a_built_package_equals_eager_and_is_saved_with_its_eager_result(built):
    cache, compiled, graph = built
    model, features = _model_and_features()
    with torch.inference_mode():
        got = compiled(features)["segmentation"]
        expected = decompose(model, features)["segmentation"]
    scale = expected.total.abs().max()
    assert (got.total - expected.total).abs().max() <= COMPILE_TOLERANCE * scale
    for m in features:
        assert (got.components[m] - expected.components[m]).abs().max() <= COMPILE_TOLERANCE * scale
    assert compiled.eager_calls == 0
    entry = _entry(cache, model, features)
    assert {p.name for p in entry.iterdir()} == {PACKAGE_FILE, REFERENCE_FILE, MANIFEST_FILE}
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    assert manifest["package_sha256"] == file_digest(entry / PACKAGE_FILE)
    assert manifest["check"]["max_difference"] == graph.max_difference
    assert set(graph.stages_s) >= {"key", "eager_reference", "trace", "compile"}


LOAD_IN_A_FRESH_PROCESS = """
import json, torch
from ros2_lmd.lmd import CompiledDecomposition, decompose
from ros2_lmd.lmd.reference_nets import SimpleBEVDecoder
torch.manual_seed(0)
model = SimpleBEVDecoder({"camera": 2, "lidar": 2}, latent=4).eval()
features = {m: torch.randn(1, 2, 8, 8) for m in ("camera", "lidar")}
compiled = CompiledDecomposition(model, ["segmentation"], build_on_demand=False)
graph = compiled.prepare(features)
with torch.inference_mode():
    got = compiled(features)["segmentation"]
    expected = decompose(model, features)["segmentation"]
scale = float(expected.total.abs().max())
difference = max(
    float((got.total - expected.total).abs().max()),
    *(float((got.components[m] - expected.components[m]).abs().max()) for m in features),
) / scale
print(json.dumps({"source": graph.source, "stages": sorted(graph.stages_s), "difference": difference}))
"""


def test_a_fresh_process_loads_the_package_instead_of_compiling(cache):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env[AHEAD_OF_TIME_ENV] = "1"
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS], env=env, cwd=REPO, capture_output=True, check=True
    )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["source"] == "artifact"
    assert result["stages"] == ["check", "key", "load"]  # no eager reference, trace or compile
    assert result["difference"] <= COMPILE_TOLERANCE


def test_the_key_names_what_the_compiled_code_depends_on():
    model, features = _model_and_features()
    key = artifact_key(model, ["segmentation"], RuleVariants(), features)
    assert key is not None
    fields = key.as_dict()
    assert fields["torch"] == torch.__version__ and fields["threads"] == str(torch.get_num_threads())
    others = [
        artifact_key(model, ["segmentation"], RuleVariants(bias="explicit"), features),
        artifact_key(model, ["segmentation"], RuleVariants(), _model_and_features(batch=2)[1]),
        artifact_key(model.forward, ["segmentation", "other"], RuleVariants(), features),
    ]
    with torch.no_grad():
        changed = _model_and_features()[0]
        next(changed.parameters()).add_(1e-6)
    others.append(artifact_key(changed, ["segmentation"], RuleVariants(), features))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        others.append(artifact_key(model, ["segmentation"], RuleVariants(), features))
    finally:
        torch.set_num_threads(before)
    digests = {key.digest, *(other.digest for other in others if other is not None)}
    assert len(digests) == 1 + len(others)
    # the same again: the same key
    again = artifact_key(_model_and_features()[0], ["segmentation"], RuleVariants(), features)
    assert again is not None and again.digest == key.digest


def test_what_cannot_be_keyed_or_is_not_inductor_gets_no_package(monkeypatch):
    model, features = _model_and_features()
    assert artifact_key(lambda f: model(f), ["segmentation"], RuleVariants(), features) is None
    extra = RuleVariants(extra_rules={"relu": lambda *a: None})
    assert artifact_key(model, ["segmentation"], extra, features) is None
    assert not CompiledDecomposition(model, ["segmentation"], backend="eager").ahead_of_time
    monkeypatch.delenv(AHEAD_OF_TIME_ENV, raising=False)
    assert CompiledDecomposition(model, ["segmentation"]).ahead_of_time  # the default
    monkeypatch.setenv(AHEAD_OF_TIME_ENV, "0")
    assert not CompiledDecomposition(model, ["segmentation"]).ahead_of_time
    monkeypatch.setenv(AHEAD_OF_TIME_ENV, "1")
    assert CompiledDecomposition(model, ["segmentation"]).ahead_of_time
    monkeypatch.delattr(torch._C._aoti, "AOTIModelPackageLoader")  # a torch that cannot open them
    assert not CompiledDecomposition(model, ["segmentation"]).ahead_of_time


def test_a_manifest_of_another_key_is_refused_as_stale(cache):
    model, features = _model_and_features()
    entry = _entry(cache, model, features)
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    manifest["key"]["torch"] = "0.0.0"
    (entry / MANIFEST_FILE).write_text(json.dumps(manifest))
    key = artifact_key(model, ["segmentation"], RuleVariants(), features)
    assert key is not None
    with pytest.raises(ArtifactError, match="written for another key"):
        load_artifact(artifact_dir(cache), key)


def test_a_corrupted_package_is_refused_with_the_reason_and_rebuilt(cache, caplog):
    model, features = _model_and_features()
    entry = _entry(cache, model, features)
    data = bytearray((entry / PACKAGE_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (entry / PACKAGE_FILE).write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="ros2_lmd.lmd.compiled"):
        _, graph = _build(model, features)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f"{PACKAGE_FILE} does not match its manifest's SHA-256 (corrupt)" in m and "building it again" in m
        for m in messages
    ), messages
    assert graph.call is not None and graph.source == "package"  # rebuilt, not loaded
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    assert manifest["package_sha256"] == file_digest(entry / PACKAGE_FILE)  # the new one saved


def test_a_package_that_differs_from_its_recorded_eager_result_is_not_used(cache, caplog, monkeypatch):
    """The files match their manifest, but the package's numbers do not match the recorded eager
    result (here the record is made 1 % off): the check refuses it before use and it is rebuilt."""
    model, features = _model_and_features()
    entry = _entry(cache, model, features)
    reference = load_file(str(entry / REFERENCE_FILE))
    save_file({k: v * 1.01 for k, v in reference.items()}, str(entry / REFERENCE_FILE))
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    manifest["reference_sha256"] = file_digest(entry / REFERENCE_FILE)
    (entry / MANIFEST_FILE).write_text(json.dumps(manifest))
    built_again = []
    original = CompiledDecomposition._build_package

    def counting(self, *args):
        built_again.append(True)
        return original(self, *args)

    monkeypatch.setattr(CompiledDecomposition, "_build_package", counting)
    with caplog.at_level(logging.WARNING, logger="ros2_lmd.lmd.compiled"):
        compiled, graph = _build(model, features)
    refused = [
        r.getMessage()
        for r in caplog.records
        if "refused against its recorded eager result" in r.getMessage()
    ]
    assert len(refused) == 1 and "differs from eager by 9.90e-03" in refused[0]  # 1 % of the 1.01 x scale
    assert built_again and graph.source == "package" and graph.call is not None
    with torch.inference_mode():
        got = compiled(features)["segmentation"]
        expected = decompose(model, features)["segmentation"]
    assert (got.total - expected.total).abs().max() <= COMPILE_TOLERANCE * expected.total.abs().max()
    assert signature(features) in compiled.graphs


def test_the_key_covers_every_module_beside_a_model_class_of_this_package():
    # the helpers a model's fuse calls live beside its class (models/base.py, ...): an edit to one
    # must change the key, since the check against the recorded eager result cannot see it
    from ros2_lmd.lmd.artifacts import PACKAGE_ROOT, module_sources
    from ros2_lmd.models.compact import CompactFusion, compact_config

    model = CompactFusion(compact_config("crl"))
    files = {path.name for path in module_sources(model)}
    models_dir = PACKAGE_ROOT / "models"
    assert {path.name for path in models_dir.glob("*.py")} <= files
    assert "conv.py" in files  # torch's own classes are there too (their version is keyed besides)


def _package_inputs(features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(x.shape, generator=generator) for x in features.values()]


def test_a_package_runs_through_its_c_interface_as_torchs_loader_runs_it(built):
    """The monitor's worker threads call the package through its library's C interface, which lets
    the interpreter lock go (torch's loader keeps it for the whole run: lmd/package_abi.py): the
    results are the loader's bit for bit, also from two threads at once."""
    import threading

    from ros2_lmd.lmd.artifacts import PackageRunner

    cache = built[0]
    model, features = _model_and_features()
    package = _entry(cache, model, features) / PACKAGE_FILE
    runner = PackageRunner(package, 2)
    assert runner.releases_gil
    loader = torch._C._aoti.AOTIModelPackageLoader(str(package), "model", False, 1, -1)
    inputs = _package_inputs(features)
    with torch.inference_mode():
        expected = loader.run(inputs)
        got = runner(*inputs)
        assert len(got) == len(expected) and all(torch.equal(g, e) for g, e in zip(got, expected))
        results: list = [None, None]

        def run(i: int) -> None:
            with torch.inference_mode():
                results[i] = runner(*inputs)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for result in results:
        assert all(torch.equal(g, e) for g, e in zip(result, expected))


def test_a_package_the_c_interface_cannot_read_is_run_by_torchs_loader(built, tmp_path, caplog):
    """A package with data this module does not know (weights in a file of their own, say) is not
    opened through the C interface: PackageABIError names what was there, and the runner keeps
    torch's loader, with the same results."""
    import zipfile

    from ros2_lmd.lmd.artifacts import PackageRunner
    from ros2_lmd.lmd.package_abi import PackageABIError, PackageLibrary

    model, features = _model_and_features()
    package = tmp_path / "extra.pt2"
    shutil.copy(_entry(built[0], model, features) / PACKAGE_FILE, package)
    with zipfile.ZipFile(package) as archive:
        root = archive.namelist()[0].split("/")[0]
    with zipfile.ZipFile(package, "a") as archive:
        archive.writestr(f"{root}/data/aotinductor/model/notes.txt", "not a library")
    with pytest.raises(PackageABIError, match="1 other data files .*notes.txt"):
        PackageLibrary(package, 1)
    with caplog.at_level(logging.INFO, logger="ros2_lmd.lmd.artifacts"):
        runner = PackageRunner(package, 1)
    assert not runner.releases_gil
    assert any("run by torch's loader" in r.getMessage() for r in caplog.records)
    inputs = _package_inputs(features)
    with torch.inference_mode():
        expected = PackageRunner(_entry(built[0], model, features) / PACKAGE_FILE, 1)(*inputs)
        got = runner(*inputs)
    assert all(torch.equal(g, e) for g, e in zip(got, expected))
    with pytest.raises(PackageABIError, match="cannot open its library"):
        broken = tmp_path / "broken.pt2"
        broken.write_bytes(b"not a zip")
        PackageLibrary(broken, 1)


def test_only_the_most_recently_used_entries_are_kept(tmp_path):
    directory = tmp_path / "aot"
    for i in range(5):  # entry i last used at 1000 + i
        folder = directory / f"entry{i}"
        folder.mkdir(parents=True)
        (folder / MANIFEST_FILE).write_text("{}")
        (folder / PACKAGE_FILE).write_bytes(b"x")
        os.utime(folder / MANIFEST_FILE, (1000.0 + i, 1000.0 + i))
    (directory / ".entry9.staging").mkdir()  # another process writing an entry: no manifest yet
    removed = prune_artifacts(directory, keep=2)
    assert sorted(p.name for p in removed) == ["entry0", "entry1", "entry2"]
    assert sorted(p.name for p in directory.iterdir()) == [".entry9.staging", "entry3", "entry4"]
    assert prune_artifacts(directory, keep=2) == []
    assert prune_artifacts(tmp_path / "absent") == []


def test_a_load_marks_the_entry_used(cache):
    model, features = _model_and_features()
    entry = _entry(cache, model, features)
    os.utime(entry / MANIFEST_FILE, (1000.0, 1000.0))
    key = artifact_key(model, ["segmentation"], RuleVariants(), features)
    assert key is not None
    load_artifact(artifact_dir(cache), key)
    assert (entry / MANIFEST_FILE).stat().st_mtime > 1000.0
