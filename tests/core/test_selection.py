"""Translation you can trust: the scale guard, the ridge by leave-one-out, ``auto``, the estimate,
confidence (issue 9). Synthetic pairs with a known answer reproduce each failure seen on real encoders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from relcli.core._ridge import ridge_loo
from relcli.core._scoring import anchor_scores
from relcli.core.heads import LogisticHead
from relcli.core.registry import make_translator
from relcli.core.selection import POOR_SCORE, select_translator
from relcli.core.stats import guarded_scale
from tests.conftest import random_orthogonal


def gaussian(n, d, seed, dtype=torch.float64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def centred_cos(a, b, mean):
    return F.cosine_similarity(a - mean, b - mean, dim=1)


def recall_at_10(pred, truth):
    """Mean overlap of the 10 nearest rows (by cosine, self excluded) of pred_i among truth and of truth_i among truth."""
    p, t = F.normalize(pred, dim=1), F.normalize(truth, dim=1)
    eye = torch.eye(len(truth), dtype=torch.bool)
    a = (p @ t.T).masked_fill(eye, -2).topk(10, dim=1).indices
    b = (t @ t.T).masked_fill(eye, -2).topk(10, dim=1).indices
    return float((a[:, :, None] == b[:, None, :]).any(2).float().mean())


# ---------------------------------------------------------------------- dead dimensions
def test_guarded_scale_keeps_live_dims_and_gives_dead_ones_the_typical_scale():
    std = torch.tensor([1.0, 2.0, 1e-33, 0.0, 1.5e-2, 3e-3], dtype=torch.float64)
    mean = torch.tensor([0.0, 5.0, 1e-33, 4.0, 0.0, 0.0], dtype=torch.float64)
    rms = float(std.pow(2).mean().sqrt())
    got = guarded_scale(std, mean)
    assert got[:2].tolist() == [1.0, 2.0] and float(got[4]) == 1.5e-2  # 1.5e-2 ≥ 1e-2·rms: kept
    assert torch.allclose(got[[2, 3, 5]], torch.full((3,), rms, dtype=torch.float64))
    noisy = torch.tensor([1.0, 1e-9], dtype=torch.float32)  # a constant 1e3 column: std is rounding noise
    assert float(guarded_scale(noisy, torch.tensor([0.0, 1e3]))[1]) == pytest.approx(float(noisy.pow(2).mean().sqrt()))
    assert guarded_scale(torch.zeros(3), torch.ones(3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("dead", [1e-33, 0.0])
def test_head_survives_tiny_noise_in_dead_dimensions(dead):
    """A MiniLM-like space: 2 of 24 dims at ~1e-33; rows to classify carry 5e-9 noise there (as IRP
    output does). The head's accuracy must not fall to chance (it was 0.18-0.22 of 0.93)."""
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 24, generator=g, dtype=torch.float64) * 3
    labels = torch.arange(800) % 4
    x = centres[labels] + torch.randn(800, 24, generator=g, dtype=torch.float64)
    x[:, [5, 17]] = dead * (1 + torch.rand(800, 2, generator=g, dtype=torch.float64))
    head = LogisticHead().fit(x[:600], labels[:600])
    noisy = x[600:].clone()
    noisy[:, [5, 17]] += 5e-9 * torch.randn(200, 2, generator=g, dtype=torch.float64)
    clean_accuracy = float((head.predict(x[600:]) == labels[600:]).double().mean())
    noisy_accuracy = float((head.predict(noisy) == labels[600:]).double().mean())
    assert clean_accuracy > 0.9 and noisy_accuracy == clean_accuracy


# ---------------------------------------------------------------------- ridge by leave-one-out
@pytest.mark.parametrize("d", [8, 50])
def test_ridge_leave_one_out_equals_refitting_without_each_anchor(d):
    """The closed form equals refitting (with the intercept: centred data) on the other anchors,
    also below k = d, where leaving the intercept out would let every anchor leak into its own fit."""
    xs, ys = gaussian(30, d, 1), gaussian(30, 5, 2)
    xs, ys = xs - xs.mean(dim=0), ys - ys.mean(dim=0)  # as DirectTranslator centres them
    captured = {}

    def to_target(held_out):
        captured.setdefault("first", held_out)
        return held_out

    ridge_loo(xs, ys, to_target, ys, grid=(0.1,))
    lam = 0.1 * 30
    for i in (0, 7, 29):
        keep = torch.arange(30) != i
        mx, my = xs[keep].mean(dim=0), ys[keep].mean(dim=0)
        xk, yk = xs[keep] - mx, ys[keep] - my
        r = torch.linalg.solve(xk.T @ xk + lam * torch.eye(d, dtype=xs.dtype), xk.T @ yk)
        assert torch.allclose(captured["first"][i], (xs[i] - mx) @ r + my, atol=1e-10)


def test_linear_below_k_equals_d_beats_the_interpolating_pseudo_inverse():
    """30 anchors for 64-d spaces with noise: the cross-validated ridge recovers neighbourhoods a
    minimum-norm interpolation loses (the reported failure: recall@10 0.06-0.25 at the old cut-off)."""
    d, k = 64, 30
    basis = gaussian(4, d, 4) * torch.linspace(3, 0.3, 4, dtype=torch.float64)[:, None]
    latent = gaussian(2000, 4, 5)
    x = latent @ basis + 0.1 * gaussian(2000, d, 6)
    signal = latent @ basis @ random_orthogonal(d, 7)
    y = signal + 3.0 * gaussian(2000, d, 8)  # noisy targets: an interpolation fits the noise
    ridge = make_translator("linear").fit(x[:k], y[:k])
    pinv = make_translator("linear", rcond=1e-6).fit(x[:k], y[:k])
    assert ridge.alpha_ >= 0.01
    assert recall_at_10(ridge.transform(x[k:]), signal[k:]) > recall_at_10(pinv.transform(x[k:]), signal[k:]) + 0.2


# ---------------------------------------------------------------------- auto and the estimate
def anisotropic_pair(n=3000, d=32, offset=12.0, seed=10):
    """e5-like target: every row shares one big offset (mean pairwise cosine ~0.8)."""
    x = gaussian(n, d, seed)
    y = x @ random_orthogonal(d, seed + 1) + offset * F.normalize(gaussian(1, d, seed + 2), dim=1) \
        + 0.1 * gaussian(n, d, seed + 3)
    return x, y


def test_auto_recovers_an_anisotropic_target_where_uncentred_irp_collapses():
    x, y = anisotropic_pair()
    k = 200
    assert float(F.cosine_similarity(y[:500, None], y[None, :500], dim=2).mean()) > 0.6
    auto = select_translator(x[:k], y[:k])
    irp = select_translator(x[:k], y[:k], method="irp")
    mean = y[:k].mean(dim=0)
    truth_auto = centred_cos(auto.translator.transform(x[k:]), y[k:], mean).mean()
    truth_irp = centred_cos(irp.translator.transform(x[k:]), y[k:], mean).mean()
    assert truth_auto > 0.95 and truth_irp < truth_auto - 0.2
    # the estimate ranks the methods as the truth does, and flags the poor one
    assert auto.estimate["score"] > irp.estimate["score"] + 0.15
    assert auto.chosen.name != "irp (allow_rank_deficient)"
    scores = {c.name: c.scores["score"] for c in auto.candidates}
    assert scores["irp (center, allow_rank_deficient)"] > scores["irp (allow_rank_deficient)"]


def test_the_estimate_is_near_chance_for_spaces_with_no_relation():
    x, y = gaussian(400, 16, 20), gaussian(400, 16, 21)
    selection = select_translator(x[:200], y[:200])
    assert selection.estimate["score"] < POOR_SCORE / 2
    good = select_translator(x[:200], x[:200] @ random_orthogonal(16, 22))
    assert good.estimate["score"] > 0.8


def test_auto_respects_given_options_and_records_every_candidate():
    x, y = anisotropic_pair(n=400, d=12)
    selection = select_translator(x[:120], y[:120], options={"center": True})
    names = [c.name for c in selection.candidates]
    # --center rules out uncentred IRP; the direct methods centre anyway
    assert names == ["irp (center, allow_rank_deficient)", "procrustes", "procrustes (scaling=isotropic)", "linear",
                     "ortho-linear"]
    selection = select_translator(x[:120], y[:120], options={"scaling": "none"})  # one Procrustes: the user's scaling
    assert [c.method for c in selection.candidates] == ["irp", "irp", "procrustes", "linear", "ortho-linear"]
    assert all(c.options.get("scaling") == "none" for c in selection.candidates if c.method != "irp")
    record = selection.record()
    assert set(record) == {"chosen", "objective", "estimate", "folds", "anchors", "candidates"} and record["folds"] == 5
    assert record["objective"] == "all"  # no source anchor has two targets
    assert set(record["estimate"]) == {"score", "mrr", "top1", "recall10", "cosine", "r2", "spread"}
    assert all({"method", "options", "score"} <= set(c) for c in record["candidates"])


def test_confidence_is_high_near_the_anchors_and_low_far_from_them():
    """Rows inside the anchors' span agree across fold models; rows along directions no anchor covers do not."""
    d, k = 32, 40
    basis = gaussian(12, d, 30)
    x_anchor = gaussian(k, 12, 31) @ basis + 0.01 * gaussian(k, d, 32)
    q = random_orthogonal(d, 33)
    selection = select_translator(x_anchor, x_anchor @ q, method="linear")
    inside = gaussian(300, 12, 34) @ basis
    outside = gaussian(300, d, 35)
    conf_in = selection.confidence(inside, selection.translator.transform(inside))
    conf_out = selection.confidence(outside, selection.translator.transform(outside))
    ranked_above = (conf_in[:, None] > conf_out[None, :]).double().mean()  # the AUC of telling them apart
    assert ranked_above > 0.95 and conf_in.min() >= -1 - 1e-9 and conf_in.max() <= 1 + 1e-9


def test_anchor_scores_of_a_perfect_and_of_a_mean_prediction():
    gallery = gaussian(50, 8, 40) + 5.0
    rows = torch.arange(10, 20)
    perfect = anchor_scores(gallery[rows], rows, gallery)
    assert perfect["mrr"] == perfect["top1"] == perfect["recall10"] == 1.0 and perfect["cosine"] == pytest.approx(1.0)
    lazy = anchor_scores(gallery.mean(dim=0).expand(10, 8), rows, gallery)
    assert lazy["cosine"] == pytest.approx(0.0, abs=1e-9) and lazy["score"] < 0.2


@pytest.mark.parametrize("k", [16, 64, 1024])
def test_an_unrelated_prediction_scores_chance_at_every_gallery_size(k):
    """Retrieval among k anchors is easier for small k (recall@10 of a random guess is 10/(k-1)); the score
    corrects for it, so predictions unrelated to their truths score ~ r2/3 (0 for retrieval) at every k."""
    gallery = gaussian(k, 24, 50 + k)
    rows = torch.arange(k)
    beyond_chance = []
    for trial in range(20 if k < 1024 else 3):
        scores = anchor_scores(gaussian(k, 24, 1000 * k + trial), rows, gallery)
        beyond_chance.append(scores["score"] - scores["r2"] / 3)
    assert sum(beyond_chance) / len(beyond_chance) == pytest.approx(0.0, abs=0.02)
    perfect = anchor_scores(gallery, rows, gallery)
    assert perfect["score"] == pytest.approx(1.0)


# ---------------------------------------------------------------------- fits from streamed sums
@pytest.mark.parametrize("method,options", [
    ("procrustes", {}), ("linear", {}), ("linear", {"rcond": 1e-3}), ("ortho-linear", {}), ("affine", {"scaling": "none"}),
    ("linear", {"scaling": "isotropic"}), ("irp", {}), ("irp", {"center": True}),
])
def test_a_fit_from_streamed_sums_equals_the_fit_from_rows(method, options):
    """The frozen twin fitted on chunk-by-chunk sums gives the map the rows give (same hyperparameters)."""
    from relcli.core.moments import AnchorMoments

    x, y = anisotropic_pair(n=900, d=12, offset=3.0)
    x, y = x[:, :10], y  # different dimensions
    fitted = make_translator(method, **options).fit(x, y)
    twin = fitted.frozen()
    reference = type(twin)(**twin.get_params()).fit(x, y)
    centre = (x.mean(dim=0), y.mean(dim=0)) if options.get("center") else (None, None)
    moments = AnchorMoments(unit=method == "irp", centre_x=centre[0], centre_y=centre[1])
    for start in range(0, 900, 128):
        moments.update(x[start:start + 128], y[start:start + 128])
    streamed = twin.fit_moments(moments)
    probe = gaussian(50, 10, 90)
    torch.testing.assert_close(streamed.transform(probe), reference.transform(probe), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(reference.transform(probe), fitted.transform(probe), rtol=1e-6, atol=1e-6)


def test_a_prediction_that_misses_the_shared_offset_scores_low():
    """Rows right in direction around the mean but without the mean itself (what uncentred IRP does on an
    anisotropic encoder) reproduce nothing a classifier trained on the target space can use: r2 < 0."""
    gallery = gaussian(60, 8, 50) + 6.0
    rows = torch.arange(0, 30)
    centred = gallery[rows] - gallery.mean(dim=0)
    scores = anchor_scores(centred, rows, gallery)
    assert scores["r2"] < 0 and scores["score"] < anchor_scores(gallery[rows], rows, gallery)["score"] - 0.3
    assert anchor_scores(gallery[rows], rows, gallery)["r2"] == pytest.approx(1.0)


# ---------------------------------------------------------------------- cost of the selection
def test_candidates_that_tune_nothing_are_fitted_on_every_anchor_only_when_chosen(monkeypatch):
    """Procrustes and ortho-linear choose nothing from the anchors: their folds need no full fit
    (a 768 × 768 SVD each at 1,024 anchors), so only the winner is refitted on every anchor."""
    from relcli.core import translate

    fits: dict[str, int] = {}
    for cls in (translate.Procrustes, translate.OrthoLinearTranslator, translate.LinearTranslator):
        solve = cls._solve

        def counted(self, *args, _solve=solve, _name=cls.method):
            fits[_name] = fits.get(_name, 0) + 1
            return _solve(self, *args)

        monkeypatch.setattr(cls, "_solve", counted)
    x = gaussian(200, 12, 0)
    y = x @ random_orthogonal(12, seed=1) + 0.05 * gaussian(200, 12, 2)
    chosen = select_translator(x, y, "auto").chosen.method
    assert chosen in fits
    # 5 folds (Procrustes twice: standard and isotropic scaling); linear tunes its ridge on all anchors
    expected = {"procrustes": 10, "ortho-linear": 5, "linear": 6}
    expected[chosen] += 0 if chosen == "linear" else 1
    assert fits == expected


@pytest.mark.parametrize("method, options, tunes", [
    ("procrustes", {}, False), ("ortho-linear", {}, False), ("linear", {"alpha": 0.5}, False),
    ("linear", {"rcond": 1e-3}, False), ("linear", {}, True), ("irp", {"rcond": 0.01}, False), ("irp", {}, True),
])
def test_frozen_works_before_a_fit_exactly_when_nothing_is_tuned(method, options, tunes):
    from relcli.errors import NotFittedError

    translator = make_translator(method, **options)
    assert translator.tunes_on_anchors is tunes
    if tunes:
        with pytest.raises(NotFittedError, match="is not fitted"):
            translator.frozen()
        return
    x = gaussian(80, 6, 3)
    y = x @ random_orthogonal(6, seed=4) + 0.1 * gaussian(80, 6, 5)
    twin = translator.frozen().fit(x, y)
    assert torch.equal(twin.transform(x), translator.fit(x, y).transform(x))


def test_a_winner_that_cannot_be_fitted_on_every_anchor_says_which_method():
    """Folds allow a rank-deficient IRP; the refit on every anchor keeps the user's setting."""
    from relcli.errors import DataError

    x, y = gaussian(30, 40, 6), gaussian(30, 40, 7)
    with pytest.raises(DataError, match=r"no method could be fitted on the anchors: irp \(rcond=0.01\): IRP needs at least"):
        select_translator(x, y, "irp", {"rcond": 0.01})


# ---------------------------------------------------------------------- many-to-many dictionaries as anchors
def test_a_word_with_several_translations_is_one_item_of_the_estimate():
    """Anchors from a many-to-many dictionary hold one source row several times, paired with each of
    its translations. The same prediction cannot be nearest to each of them, so counting a sibling
    against a held-out anchor capped the estimate (top-1 0.57 where the map is exact); siblings are
    one item now: never counted against each other, held out together."""
    from relcli.core._scoring import Gallery, fold_indices, source_groups

    x, q = gaussian(300, 16, 0), random_orthogonal(16, seed=1)
    y = x @ q
    synonyms = y[:150] + 0.3 * gaussian(150, 16, 2)  # a second translation of 150 words: near, not equal
    source, target = torch.cat([x, x[:150]]), torch.cat([y, synonyms])
    groups = source_groups(source)
    assert groups is not None and int(groups.max()) + 1 == 300 and source_groups(x) is None
    for held in fold_indices(450, 5, seed=0, groups=groups):  # a word's anchors are held out together
        assert set(groups[held].tolist()).isdisjoint(set(groups[~torch.isin(torch.arange(450), held)].tolist()))
    assert Gallery(target).scores(target, torch.arange(450))["top1"] == 1.0  # ties count for the truth
    assert Gallery(target, groups).scores(source @ q, torch.arange(450))["top1"] == 1.0
    assert Gallery(target).scores(source @ q, torch.arange(450))["top1"] < 0.7  # the cap without groups
    for method in ("procrustes", "irp", "linear"):
        estimate = select_translator(source, target, method).estimate
        assert estimate["top1"] > 0.95, (method, estimate)

