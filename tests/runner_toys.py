"""Small, real notebook templates and a plan over them, for testing the runner without models.

The train template writes an ``eval_cases.csv`` whose numbers are a function of the config
(fold, n_present, model) and completes its manifest; it fails on purpose when the config has
``latent_repulsion > 0``. Every execution appends a line to ``executions.txt`` in the run dir and
records the kernel's ``OMP_NUM_THREADS``, so tests can count executions and check thread limits.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

TRAIN = '''\
# %% [markdown]
# Toy training run.

# %% tags=["parameters"]
config_json: str = "{}"  # RunConfig as JSON
run_dir: str = ""  # the run directory

# %%
import json
import os
from pathlib import Path

import pandas as pd

from mrseg.bookkeeping.fingerprint import run_fingerprint
from mrseg.io import write_csv, write_json
from mrseg.bookkeeping.manifest import update_manifest

config = json.loads(config_json)
out = Path(run_dir)
out.mkdir(parents=True, exist_ok=True)
with open(out / "executions.txt", "a") as fh:
    fh.write(os.environ.get("OMP_NUM_THREADS", "unset") + "\\n")
if config["latent_repulsion"] > 0:
    raise RuntimeError("failing on purpose")

# %%
offset = {"shared": 0.0, "per-rater": -0.02, "shared+s2": 0.01, "per-rater+s2": 0.03}.get(config["model"], 0.05)
rows = []
for i in range(5):
    ged = 0.2 + offset + 0.01 * config["fold"] + 0.002 * i + 0.03 * (4 - config["n_present"])
    rows.append({"run_id": "", "dataset": config["dataset"], "model": config["model"], "variant": "",
                 "n_present": config["n_present"], "fold": config["fold"], "seed": config["seed"],
                 "profile": config["profile"], "epochs": config["epochs"], "case_id": f"case{i}",
                 "patient_id": f"p{i}", "nodule_id": f"n{i}", "M": config["eval_samples"],
                 "ged": ged, "ged_dpersona": ged + 0.05, "dice_match": 1.0 - ged,
                 "dice_expert_0": 0.9, "dice_expert_1": 0.8, "dice_soft": 0.85})
write_csv(out / "eval_cases.csv", pd.DataFrame(rows))
update_manifest(out, status="complete", semi_synthetic=True, seconds={"train": 1.0, "eval": 0.5},
                **run_fingerprint(config))
print("done", config["model"], config["fold"])
'''

ALIGNMENT = '''\
# %% tags=["parameters"]
config_json: str = "{}"  # RunConfig as JSON
run_dir: str = ""  # the run directory

# %%
import json
import math
from pathlib import Path

import pandas as pd

from mrseg.io import write_csv, write_json

config = json.loads(config_json)
shared = not config["model"].startswith("per-rater")
table = pd.DataFrame({"case_id": [f"case{i}" for i in range(4)],
                      "latent_cosine": [0.6, -0.2, 0.1, 0.9] if shared else [math.nan] * 4,
                      "decoder_cosine": [0.2, 0.2, 0.4, 0.4]})
write_csv(Path(run_dir) / "alignment_cases.csv", table)
write_json(Path(run_dir) / "alignment_summary.json", {"n_cases": 4, "defined": shared})
'''

PAGE = '''\
# %% tags=["parameters"]
results_dir: str = ""  # aggregated tables
plan: str = "thesis"  # plan name
profile: str = "smoke"  # profile

# %%
from pathlib import Path

import pandas as pd

summary = pd.read_csv(Path(results_dir) / "summary.csv")
summary[["study", "row", "n_present", "ged_mean"]]
'''

PLAN = '''\
name: toy
templates:
  train: {root}/train.py
  alignment: {root}/alignment.py
  latent: {root}/missing_latent.py
  pages: {root}/pages
defaults:
  folds: [0, 1]
  alignment_models: [shared, per-rater]
  alignment_studies: [main]
profiles:
  smoke:
    epochs: {{full: 1, sparse: 2}}
studies:
  main:
    epochs: full
    rows:
      shared_s1: {{model: shared}}
      dpersona_s1s2: {{model: shared+s2}}
      per_rater_s1: {{model: per-rater}}
  broken:
    epochs: full
    folds: [0]
    rows:
      bad: {{model: per-rater, latent_repulsion: 0.5}}
      bad_s2: {{model: per-rater+s2, latent_repulsion: 0.5}}
'''


def write_toy_plan(root: Path, pages: bool = True) -> Path:
    """Templates and ``plan.yaml`` under ``root``; returns the plan path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / "alignment.py").write_text(ALIGNMENT)
    if pages:
        (root / "pages").mkdir(exist_ok=True)
        (root / "pages" / "summary_page.py").write_text(PAGE)
    path = root / "plan.yaml"
    path.write_text(textwrap.dedent(PLAN.format(root=root)))
    return path
