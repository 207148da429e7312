"""Paper metrics and baselines: PCC/MSE against numpy/scipy, the sampling scheme, Shapley axioms,
the frozen-network baselines against LMD, modality Grad-CAM against a direct computation, and the
separation result (R_p/C = C_p/R = 1.00, MSE 0.00 for LMD; not for the Baseline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from support.tiny import build_small_crml
from torch import nn

from ros2_lmd.eval.frozen import FrozenNetwork
from ros2_lmd.eval.gradcam import modality_gradcam
from ros2_lmd.eval.metrics import mse, pcc, perturbation_pairs, summarise
from ros2_lmd.eval.perturbation import Method, modality_predictions, paper_methods, run_perturbation
from ros2_lmd.eval.shapley import lmd_shapley, modality_shapley, shapley_from_game
from ros2_lmd.lmd import RuleVariants
from ros2_lmd.lmd.reference_nets import SimpleBEVDecoder, randomise_norm_statistics
from ros2_lmd.models import RULE_PRESETS


def test_pcc_and_mse_match_scipy_and_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3, 7)), rng.normal(size=(5, 3, 7))
    b[1] = 0.3 * a[1] + b[1]
    ours = pcc(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [stats.pearsonr(a[i].ravel(), b[i].ravel())[0] for i in range(5)]
    assert np.allclose(ours, expected, atol=1e-12)
    assert np.allclose(
        mse(torch.from_numpy(a), torch.from_numpy(b)).numpy(), ((a - b) ** 2).reshape(5, -1).mean(1)
    )
    assert torch.isnan(pcc(torch.ones(1, 4), torch.randn(1, 4))).all()  # undefined, not silently 0
    assert summarise([1.0, 3.0, float("nan")]) == (2.0, 1.0)


def test_pairs_follow_the_paper_spacing():
    pairs = perturbation_pairs(6019)
    assert (0, 500) in pairs and (0, 6000) in pairs and len(pairs) == 6019 * 12
    small = perturbation_pairs(24, offsets=3)
    assert {j for k, j in small if k == 0} == {2, 4, 6}  # spacing 500/6019 of 24 -> 2
    assert all(k != j for k, j in perturbation_pairs(3, offsets=12))


def test_anchors_keep_the_pairing_on_a_subset_of_its_rows():
    full = perturbation_pairs(6019)
    some = perturbation_pairs(6019, anchors=4)
    # samples 0, 1504, 3009 and 4514 (evenly spread), each with its 12 partners over the whole set
    assert sorted({k for k, _ in some}) == [0, 1504, 3009, 4514]
    assert some == [pair for pair in full if pair[0] in (0, 1504, 3009, 4514)]
    assert {j for k, j in some if k == 4514} == {(4514 + 500 * m) % 6019 for m in range(1, 13)}
    assert perturbation_pairs(24, offsets=3, anchors=24) == perturbation_pairs(24, offsets=3)


def test_shapley_efficiency_and_symmetry():
    x = {
        "camera": torch.tensor([1.0, 2.0]),
        "radar": torch.tensor([3.0, -1.0]),
        "lidar": torch.tensor([0.5, 0.5]),
    }

    def fn(f):  # symmetric in camera/radar, with interactions
        return f["camera"] * f["radar"] + f["camera"] + f["radar"] + 2 * f["lidar"] ** 2 + 1.0

    phi = modality_shapley(fn, x)
    zeros = {m: torch.zeros_like(v) for m, v in x.items()}
    assert torch.allclose(sum(phi.values()), fn(x) - fn(zeros))  # efficiency
    swapped = {"camera": x["radar"], "radar": x["camera"], "lidar": x["lidar"]}
    phi_swapped = modality_shapley(fn, swapped)
    assert torch.allclose(phi["camera"], phi_swapped["radar"]) and torch.allclose(
        phi["radar"], phi_swapped["camera"]
    )
    # product game: the interaction is split evenly
    game = shapley_from_game(("a", "b"), lambda s: torch.tensor(6.0 if s == {"a", "b"} else 0.0))
    assert game["a"].item() == game["b"].item() == 3.0


def _bev_model(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    channels = {"camera": 4, "radar": 2}
    model = randomise_norm_statistics(SimpleBEVDecoder(channels, latent=8), g).eval().to(dtype)
    samples = [
        {m: torch.randn(1, c, 8, 8, generator=g, dtype=dtype) for m, c in channels.items()} for _ in range(6)
    ]
    return model, samples


def test_lmd_plus_shap_redistributes_the_bias():
    model, samples = _bev_model()
    x = samples[0]
    attributions = lmd_shapley(model, x, "segmentation")
    zeros = {m: torch.zeros_like(v) for m, v in x.items()}
    with torch.no_grad():
        assert torch.allclose(
            sum(attributions.values()), model(x)["segmentation"] - model(zeros)["segmentation"], atol=1e-10
        )


def test_fully_frozen_network_reproduces_lmd_components():
    model, samples = _bev_model()
    clean = samples[0]
    other = {"camera": samples[1]["camera"], "radar": clean["radar"]}
    for rule in ("ratio", "identity"):
        lmd = modality_predictions(
            Method("lmd", "lmd", RuleVariants(layernorm=rule)), model, clean, other, "segmentation"
        )
        frozen = modality_predictions(
            Method("f", "frozen", RuleVariants(layernorm=rule), True, True),
            model,
            clean,
            other,
            "segmentation",
        )
        for m in clean:
            assert torch.allclose(lmd[m], frozen[m], atol=1e-9), (rule, m)
    # nothing frozen is the plain network
    plain = FrozenNetwork(model, clean, False, False)
    with torch.no_grad():
        assert torch.allclose(plain(other)["segmentation"], model(other)["segmentation"])


def test_separation_lmd_versus_baseline():
    model, samples = _bev_model(1)
    methods = [Method("Baseline", "frozen"), Method("LMD", "lmd")]
    results = run_perturbation(model, samples, methods, output_key="segmentation", offsets=2, batch=4)
    lmd, base = results["LMD"], results["Baseline"]
    for unperturbed in ("PCC R_p/C", "PCC C_p/R"):
        assert lmd[unperturbed][0] == pytest.approx(1.0, abs=1e-6) and lmd[unperturbed][1] < 1e-6
        assert base[unperturbed][0] < 0.999
    for unperturbed in ("MSE R_p/C", "MSE C_p/R"):
        assert lmd[unperturbed][0] < 1e-6
        assert base[unperturbed][0] > 1e-6
    assert lmd["PCC C_p/C"][0] < 0.99  # the perturbed modality's own prediction does change


def test_three_modality_columns():
    torch.manual_seed(0)
    model = SimpleBEVDecoder({"camera": 2, "radar": 2, "lidar": 2}, latent=4).eval()
    samples = [{m: torch.randn(1, 2, 4, 4) for m in ("camera", "radar", "lidar")} for _ in range(3)]
    out = run_perturbation(model, samples, [Method("LMD", "lmd")], output_key="segmentation", offsets=1)
    assert {"PCC C_pR_p/L", "PCC C_pL_p/R", "PCC R_pL_p/C", "MSE C_pR_p/C"} <= set(out["LMD"])
    assert out["LMD"]["PCC C_pR_p/L"][0] == pytest.approx(1.0, abs=1e-5)


def test_paper_rules_row_separates_on_the_three_modality_simplebev():
    methods = paper_methods("paper")
    row = next(m for m in methods if m.name == "LMD (paper rules)")
    assert row.rules == RULE_PRESETS["paper"] and row.table == "linearisation"
    assert "LMD (paper rules)" not in {m.name for m in paper_methods()}
    model = build_small_crml()
    generator = torch.Generator().manual_seed(3)
    samples = [
        {m: torch.rand(1, *shape, generator=generator) for m, shape in model.feature_shapes().items()}
        for _ in range(3)
    ]
    out = run_perturbation(model.fuse, samples, [row], output_key="bev_logits", offsets=1)[row.name]
    for column in ("C_pR_p/L", "C_pL_p/R", "R_pL_p/C"):  # the modality not replaced: unchanged
        assert out[f"PCC {column}"][0] == pytest.approx(1.0, abs=1e-5), column
        assert out[f"MSE {column}"][0] == pytest.approx(0.0, abs=1e-8), column


@pytest.mark.slow
def test_paper_methods_all_run():
    model, samples = _bev_model(2, torch.float32)
    out = run_perturbation(model, samples[:3], paper_methods(), output_key="segmentation", offsets=1)
    assert len(out) == len(paper_methods())
    for name, row in out.items():
        assert all(np.isfinite(v[0]) for k, v in row.items() if k.startswith("MSE")), name


def test_modality_gradcam_matches_direct_computation():
    torch.manual_seed(0)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fusion = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Conv2d(4, 1, 1)

        def forward(self, f):
            return self.head(F.relu(self.fusion(torch.cat([f["camera"], f["radar"]], 1))))

    model = Toy().double()
    x = {
        "camera": torch.randn(1, 2, 6, 6, dtype=torch.float64),
        "radar": torch.randn(1, 1, 6, 6, dtype=torch.float64),
    }
    region = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    region[..., 2:4, 1:3] = 1
    maps = modality_gradcam(model, model, x, "fusion", region)
    # direct: A = fusion(x); gradient of sum(region * head(relu(A))) wrt A, averaged spatially
    A = model.fusion(torch.cat([x["camera"], x["radar"]], 1)).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad((model.head(F.relu(A)) * region).sum(), A)
    alpha = grad.mean((2, 3), keepdim=True)
    w = model.fusion.weight
    radar_part = F.conv2d(x["radar"], w[:, 2:], padding=1)  # the fusion conv is linear: its radar term
    camera_part = F.conv2d(x["camera"], w[:, :2], padding=1)
    assert torch.allclose(maps["radar"], torch.relu((alpha * radar_part).sum(1)), atol=1e-12)
    assert torch.allclose(maps["camera"], torch.relu((alpha * camera_part).sum(1)), atol=1e-12)
