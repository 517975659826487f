"""Hand-made aggregated tables in the runner's contract, for testing the book's page functions.

The values are arbitrary test inputs chosen so that hand-checked verdicts follow from them
(e.g. per-rater beats shared at every sparse level); they are never shown in the book.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mrseg.io import write_csv, write_json

METRICS = ("ged", "ged_dpersona", "dice_match", "dice_soft", "hm_iou", "d_sy", "d_ss", "d_yy",
           "dice_expert_0", "dice_expert_1", "dice_expert_2", "dice_expert_3")

N_CASES = 12

# (study, row, model, n_present, base GED): lower GED is better; Dice follows 1 - GED/2
ROWS = [
    ("main", "probunet", "probunet-mean", 4, 0.30),
    ("main", "shared_s1", "shared", 4, 0.21),
    ("main", "dpersona_s1s2", "shared+s2", 4, 0.22),
    ("main", "per_rater_s1", "per-rater", 4, 0.20),
    ("ablation", "1_dpersona_s1s2", "shared+s2", 4, 0.22),
    ("ablation", "6_per_rater_s1", "per-rater", 4, 0.20),
    ("ablation", "7_per_rater_plus_style_s2", "per-rater+s2", 4, 0.25),
    ("sparsity", "shared_s1", "shared", 4, 0.21),
    ("sparsity", "per_rater_s1", "per-rater", 4, 0.205),
    ("sparsity", "shared_s1", "shared", 1, 0.40),
    ("sparsity", "per_rater_s1", "per-rater", 1, 0.26),
]


def write_example_results(root: Path, plan: str = "thesis", profile: str = "smoke", folds: int = 2,
                          failed: bool = True, statistics: bool = True) -> Path:
    """Write cases/per_fold/summary/alignment/runs/context into ``root/plan/profile`` and, with
    ``statistics``, paired.csv and scorecard.json as aggregation does; return the folder."""
    out = Path(root) / plan / profile
    rng = np.random.default_rng(0)
    per_fold, cases, runs, align = [], [], [], []
    for study, row, model, n_present, base in ROWS:
        for fold in range(folds):
            run_id = f"synthetic/{model}/np{n_present}/fold{fold}/seed1337/smoke-e2"
            ged = base + 0.01 * fold
            values = {"ged": ged - 0.02, "ged_dpersona": ged, "dice_match": 1 - ged / 2,
                      "dice_soft": 0.8 + 0.001 * fold, "hm_iou": 0.7, "d_sy": ged,
                      "d_ss": 0.1 if model != "probunet-mean" else 0.01,
                      "d_yy": 0.1}
            for k in range(4):
                values[f"dice_expert_{k}"] = 1 - ged / 2 - 0.001 * k
            per_fold.append({"run_id": run_id, "study": study, "row": row, "model": model, "variant": "",
                             "n_present": n_present, "fold": fold, "epochs": 2, "M": 8, "n_cases": N_CASES, **values})
            for c in range(N_CASES):  # case c of a fold is the same image for every row: paired
                case_rng = np.random.default_rng(1000 * fold + c)
                shift = case_rng.normal(0, 0.01)   # shared by every row: cancels in paired differences
                own = rng.normal(0, 0.002)         # this run's own per-case noise
                per_case = {k: (v + shift + own if k in ("ged", "ged_dpersona", "d_sy") else
                                v - (shift + own) / 2 if k.startswith("dice") else v) for k, v in values.items()}
                per_case["dice_match_m4"] = per_case["dice_match"] - 0.01
                cases.append({"run_id": run_id, "study": study, "row": row, "dataset": "synthetic", "model": model,
                              "n_present": n_present, "fold": fold, "seed": 1337, "profile": profile, "epochs": 2,
                              "case_id": f"f{fold}c{c:03d}", "patient_id": f"f{fold}p{c // 2:03d}", "M": 8, **per_case})
            runs.append({"run_id": run_id, "kind": "train", "study": study, "row": row, "status": "complete",
                         "seconds": 10.0 * (2 if model.startswith("per-rater") else 1), "error": ""})
            if study == "sparsity":
                latent = np.nan if model == "per-rater" else (0.2 + 0.05 * fold if n_present == 4 else 0.9 + 0.01 * fold)
                align.append({"run_id": run_id, "row": row, "n_present": n_present, "fold": fold,
                              "latent_mean": latent,
                              "latent_sd": np.nan if np.isnan(latent) else (0.4 if n_present == 4 else 0.03),
                              "decoder_mean": 0.3, "decoder_sd": 0.1,
                              "latent_share_positive": np.nan if np.isnan(latent) else 0.6,
                              "latent_share_negative": np.nan if np.isnan(latent) else 0.4,
                              "n_cases": N_CASES, "study": "sparsity"})
    if failed:
        runs.append({"run_id": "synthetic/shared+s2+mitb2/np4/fold0/seed1337/smoke-e2", "kind": "train",
                     "study": "ablation", "row": "2_mit_b2_backbone", "status": "failed", "seconds": 1.0,
                     "error": "RuntimeError: made to fail"})
    pf = pd.DataFrame(per_fold)
    groups = pf.groupby(["study", "row", "n_present"], sort=False)
    summary = []
    for (study, row, n_present), g in groups:
        rec = {"study": study, "row": row, "n_present": n_present, "model": g["model"].iloc[0], "n_folds": len(g)}
        for m in METRICS:
            rec[f"{m}_mean"] = g[m].mean()
            rec[f"{m}_sd"] = g[m].std(ddof=1) if len(g) > 1 else np.nan
        summary.append(rec)
    write_csv(out / "per_fold.csv", pf)
    write_csv(out / "cases.csv", pd.DataFrame(cases))
    write_csv(out / "summary.csv", pd.DataFrame(summary))
    write_csv(out / "alignment.csv", pd.DataFrame(align))
    write_csv(out / "runs.csv", pd.DataFrame(runs))
    write_json(out / "context.json", {"plan": plan, "profile": profile, "datasets": ["synthetic"],
                                      "semi_synthetic": False, "epochs": {"full": 2, "sparse": 3}, "M": 8,
                                      "ged_conventions": {"ged": 0.0, "ged_dpersona": 1.0}})
    if statistics:  # what aggregation adds: the paired comparisons and the scorecard
        from mrseg.pipeline.aggregate import paired_table
        from mrseg.scoring.claims import write_scorecard

        write_csv(out / "paired.csv", paired_table(pd.read_csv(out / "cases.csv")))
        write_scorecard(out, plan, profile)
    return out
