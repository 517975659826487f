"""Aggregation on hand-made eval tables: per-fold means, SD over folds like the thesis, alignment."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mrseg.pipeline.aggregate import (
    alignment_row,
    alignment_summary_table,
    cases_table,
    metric_columns,
    per_fold_table,
    read_eval_cases,
    summary_table,
)


def _eval(run_id, model, fold, geds, n_present=4):
    return pd.DataFrame({
        "run_id": run_id, "dataset": "synthetic", "model": model, "variant": "", "n_present": n_present,
        "fold": fold, "seed": 1337, "profile": "smoke", "epochs": 2, "case_id": [f"c{i}" for i in range(len(geds))],
        "patient_id": "p", "nodule_id": "n", "M": 8, "ged": geds, "dice_match": [1 - g for g in geds],
    })


def test_per_fold_and_summary_match_hand_computed_values():
    # The thesis's own per-fold GEDs (Appendix I, per-rater) as one case per fold, plus a second
    # study that holds the same runs (a run carries every study it belongs to).
    folds = [0.1371, 0.1658, 0.1268, 0.1418]
    tables = [(_eval(f"r{f}", "per-rater", f, [g - 0.01, g + 0.01]),
               [{"study": "main", "row": "per_rater_s1", "n_present": 4},
                {"study": "sparsity", "row": "per_rater_s1", "n_present": 4}]) for f, g in enumerate(folds)]
    cases = cases_table(tables)
    assert len(cases) == 16 and set(cases["study"]) == {"main", "sparsity"}
    assert metric_columns(cases) == ["ged", "dice_match"]

    per_fold = per_fold_table(cases)
    assert len(per_fold) == 8
    main = per_fold[per_fold["study"] == "main"].sort_values("fold")
    assert main["ged"].tolist() == pytest.approx(folds)         # mean of (g - 0.01, g + 0.01)
    assert main["n_cases"].tolist() == [2, 2, 2, 2]
    assert main["M"].tolist() == [8] * 4

    summary = summary_table(per_fold)
    row = summary[summary["study"] == "main"].iloc[0]
    assert row["n_folds"] == 4 and row["folds"] == "0 1 2 3" and row["n_cases"] == 8
    # Table 4.6 reports 0.1429 +- 0.0143 for these folds: population SD (ddof=0)
    assert row["ged_mean"] == pytest.approx(0.142875)
    assert round(row["ged_sd"], 4) == 0.0143
    assert row["dice_match_mean"] == pytest.approx(1 - 0.142875)


def test_summary_groups_by_n_present():
    tables = [(_eval(f"s{np_}{f}", "shared", f, [0.1 * np_ + 0.01 * f], n_present=np_),
               [{"study": "sparsity", "row": "shared_s1", "n_present": np_}]) for np_ in (1, 2) for f in (0, 1)]
    summary = summary_table(per_fold_table(cases_table(tables)))
    assert summary[["n_present", "n_folds"]].values.tolist() == [[1, 2], [2, 2]]
    assert summary["ged_mean"].tolist() == pytest.approx([0.105, 0.205])
    assert summary["ged_sd"].tolist() == pytest.approx([0.005, 0.005])


def test_alignment_rows_and_summary():
    shared = alignment_row(pd.DataFrame({"latent_cosine": [0.6, -0.2, 0.1, 0.9], "decoder_cosine": [0.2] * 4}))
    assert shared["latent_mean"] == pytest.approx(0.35)
    assert shared["latent_share_positive"] == 0.75 and shared["latent_share_negative"] == 0.25
    assert shared["latent_share_above_0_5"] == 0.5 and shared["latent_defined"]
    per_rater = alignment_row(pd.DataFrame({"latent_cosine": [math.nan] * 3, "decoder_cosine": [0.1, 0.2, 0.3]}))
    assert not per_rater["latent_defined"] and math.isnan(per_rater["latent_mean"])  # undefined, never 0
    assert per_rater["decoder_mean"] == pytest.approx(0.2)

    table = pd.DataFrame([{"study": "sparsity", "row": "shared_s1", "n_present": 1, "model": "shared",
                           "fold": f, "latent_mean": m, "latent_sd": 0.1, "decoder_mean": 0.5, "decoder_sd": 0.2}
                          for f, m in enumerate([0.98, 0.96])])
    summary = alignment_summary_table(table).iloc[0]
    assert summary["latent_mean"] == pytest.approx(0.97)
    assert summary["latent_sd_across_folds"] == pytest.approx(0.01)
    assert summary["latent_within_fold_sd"] == pytest.approx(0.1)


def test_bad_eval_table_names_the_file(tmp_path):
    path = tmp_path / "eval_cases.csv"
    path.write_text("case_id,foo\nc0,1\n")
    with pytest.raises(ValueError, match="eval_cases.csv: missing columns"):
        read_eval_cases(path)


def test_alignment_as_trained_column():
    """Sparse runs carry the as-trained cosine; full-annotation runs fall back to the latent one."""
    sparse = alignment_row(pd.DataFrame({"latent_cosine": [0.2, 0.4], "decoder_cosine": [0.1, 0.1],
                                         "latent_cosine_as_trained": [1.0, 0.8]}))
    assert sparse["as_trained_mean"] == pytest.approx(0.9)
    assert sparse["latent_mean"] == pytest.approx(0.3)
    full = alignment_row(pd.DataFrame({"latent_cosine": [0.2, 0.4], "decoder_cosine": [0.1, 0.1]}))
    assert full["as_trained_mean"] == pytest.approx(0.3)


def test_summary_reports_the_share_of_converged_runs():
    import pandas as pd

    from mrseg.pipeline.aggregate import summary_table

    per_fold = pd.DataFrame({"study": ["main"] * 3, "row": ["shared_s1"] * 3, "n_present": [4] * 3, "fold": [0, 1, 2],
                             "model": ["shared"] * 3, "n_cases": [10] * 3, "ged": [0.5, 0.6, 0.7],
                             "converged": [True, False, None], "val_improvement_last_fifth": [0.01, 0.05, None]})
    row = summary_table(per_fold).iloc[0]
    assert row["converged_mean"] == 0.5                     # one of the two known runs; the unknown one left out
    assert abs(row["val_improvement_last_fifth_mean"] - 0.03) < 1e-12
    assert "converged_sd" not in row and abs(row["ged_mean"] - 0.6) < 1e-12
