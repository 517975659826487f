"""The posterior-use study's tables, and certified code changes of a reference export."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mrseg.bookkeeping.fingerprint import source_hash
from mrseg.config import RunConfig
from mrseg.diagnostics import posterior_use as pu
from mrseg.pipeline import certify, equivalence


def _per_fold() -> pd.DataFrame:
    rows = []
    for model, dice in (("shared_s1", 0.73), ("per_rater_s1", 0.74)):
        rows.append({"study": "main", "row": model, "n_present": 4, "fold": 0, "seed": 1337, "dice_match": dice,
                     "kl_nats": 1e-5, "active_units": 0, "ds_over_dyy": 0.5, "ged_dpersona": 0.48, "converged": True})
    for setting, kl, units, drop in (("geco0.05", 2.0, 4, -0.01), ("klw1e-4", 3.0, 5, -0.05), ("warm10", 1e-3, 0, 0.0)):
        for prefix, model, dice in (("shared", "shared_s1", 0.73), ("per_rater", "per_rater_s1", 0.74)):
            rows.append({"study": "posterior_pilot", "row": f"{prefix}_{setting}", "n_present": 4, "fold": 0,
                         "seed": 1337, "dice_match": dice + drop, "kl_nats": kl, "active_units": units,
                         "ds_over_dyy": 0.6, "ged_dpersona": 0.47, "converged": True})
    return pd.DataFrame(rows)


def test_row_names_parse():
    assert pu.pilot_setting("shared_geco0.05") == ("geco0.05", "shared_s1")
    assert pu.pilot_setting("per_rater_klw1e-4") == ("klw1e-4", "per_rater_s1")
    assert pu.pilot_setting("probunet") is None
    assert pu.study_setting("geco0.05__dpersona_s1s2") == ("geco0.05", "dpersona_s1s2")
    assert pu.study_setting("shared_s1") is None


def test_pilot_qualifies_only_informative_settings_that_keep_their_fit():
    pilot = pu.pilot_table(_per_fold())
    base = pilot[pilot["setting"] == pu.BASELINE]
    assert len(base) == 2 and not base["informative"].any()
    geco = pilot[pilot["setting"] == "geco0.05"].set_index("model")
    assert geco.loc["shared_s1", "fit_change"] == pytest.approx(-0.01)
    assert geco["informative"].all() and geco["fit_kept"].all()
    klw = pilot[pilot["setting"] == "klw1e-4"]
    assert klw["informative"].all() and not klw["fit_kept"].any()      # 0.05 lost: beyond the 0.02 margin
    assert pu.qualifying_settings(pilot) == ["geco0.05"]               # warm10: collapsed; klw1e-4: lost fit


def _cases(effect: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(4):
        for seed in (1, 2, 3):
            shift = rng.normal(0, 0.002)
            for case in range(30):
                base = rng.uniform(0.3, 0.7)
                for study, row, value, n_p in (("main", "shared_s1", base, 4),
                                               ("main", "per_rater_s1", base + effect + shift, 4),
                                               ("posterior", "geco__shared_s1", base, 4),
                                               ("posterior", "geco__per_rater_s1", base - 0.05 + shift, 4)):
                    rows.append({"study": study, "row": row, "n_present": n_p, "fold": fold, "seed": seed,
                                 "case_id": f"{fold}-{case}", "patient_id": f"p{fold}-{case // 2}", "ged_dpersona": value})
    return pd.DataFrame(rows)


def test_regime_comparisons_read_each_regime_with_run_level_intervals():
    out = pu.regime_comparisons(_cases(0.0), "ged_dpersona")
    assert list(out["regime"]) == [pu.BASELINE, "geco"]
    base, geco = out.iloc[0], out.iloc[1]
    assert base["n_runs"] == 12 and base["verdict"] == "inconclusive"
    assert geco["difference"] == pytest.approx(-0.05, abs=0.003)
    assert geco["ci_high"] < 0 and geco["verdict"] == "per_rater_s1 better"


def test_certificate_chain_covers_only_retrained_configurations(monkeypatch):
    config = RunConfig.from_profile("smoke", model="shared").to_dict()
    other = RunConfig.from_profile("smoke", model="per-rater").to_dict()
    key = equivalence.configuration_key(config)
    assert key == equivalence.configuration_key({**config, "fold": 0, "seed": 99})   # folds and seeds share it
    now = source_hash()
    chain = [{"identical": True, "to_source_hash": "mid", "configurations": [
                 {"configuration": key, "from_source_hash": "old", "identical": True}]},
             {"identical": True, "to_source_hash": now, "configurations": [
                 {"configuration": key, "from_source_hash": "mid", "identical": True}]}]
    assert equivalence.certified_current({"source_hash": "old", "config": config}, chain)
    assert not equivalence.certified_current({"source_hash": "other", "config": config}, chain)
    assert not equivalence.certified_current({"source_hash": "old", "config": other}, chain)
    failed = [{**chain[0], "identical": False}, chain[1]]
    assert not equivalence.certified_current({"source_hash": "old", "config": config}, failed)


def test_a_local_run_made_by_certified_older_code_is_current(tmp_path, monkeypatch):
    """The runner reads certificates as the reference export does: a run whose only change is a
    certified code edit is not retrained (nor are its diagnostics redone)."""
    from mrseg.bookkeeping.fingerprint import run_fingerprint, source_hash
    from mrseg.io import write_json
    from mrseg.pipeline import status

    config = RunConfig.from_profile("smoke", model="shared").to_dict()
    manifest = {**run_fingerprint(config), "config": config}
    manifest.update(source_hash="old", code_fingerprint="made by old code")
    monkeypatch.setenv("MRSEG_REFERENCE", str(tmp_path))
    status._certificates.cache_clear()
    assert status.run_stale(manifest, config) == "changed: code"
    cert = {"identical": True, "to_source_hash": source_hash(), "configurations": [
        {"configuration": equivalence.configuration_key(config), "from_source_hash": "old", "identical": True}]}
    write_json(tmp_path / "thesis" / "smoke" / "equivalence.json", {"certificates": [cert]})
    status._certificates.cache_clear()
    assert status.run_stale(manifest, config) == ""
    assert status.run_stale({**manifest, "config_hash": "another"}, config).startswith("changed: code, config")
    status._certificates.cache_clear()


def test_tables_identical_is_exact():
    a = pd.DataFrame({"case_id": ["x", "y"], "ged": [0.1, np.nan]})
    assert equivalence.tables_identical(a, a.copy())
    assert not equivalence.tables_identical(a, a.assign(ged=[0.1 + 1e-12, np.nan]))
    assert not equivalence.tables_identical(a, a.iloc[:1])


def test_old_sources_are_found_by_their_hash_in_the_history(tmp_path, monkeypatch):
    import io
    import subprocess
    import tarfile

    from mrseg.bookkeeping.fingerprint import RESULT_SOURCES, hash_sources
    from mrseg.paths import REPO_ROOT

    try:
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "HEAD", "mrseg"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path / "head", filter="data")
    wanted = hash_sources(tmp_path / "head" / "mrseg", RESULT_SOURCES)
    found = certify.old_sources(wanted)
    assert found is not None and hash_sources(found / "mrseg", RESULT_SOURCES) == wanted
    assert certify.old_sources("f" * 40, limit=3) is None


def test_network_use_table_reads_the_ladder_and_mit_b2_rows_only():
    """Per (study, row, np): runs, mean and largest KL and active units; rows of other studies (and
    other ablation rows) are left out; the sentence says collapsed only when every run is below the
    collapse threshold."""
    from mrseg.diagnostics.posterior_use import COLLAPSED_KL, network_use_table
    from mrseg.report.posterior_text import network_sentences

    per_fold = pd.DataFrame([
        {"study": "scale", "row": "r34__shared_s1", "n_present": 4, "fold": 0, "seed": 1337, "kl_nats": 1e-5, "active_units": 0},
        {"study": "scale", "row": "r34__shared_s1", "n_present": 4, "fold": 1, "seed": 1337, "kl_nats": 3e-5, "active_units": 0},
        {"study": "ablation", "row": "2_mit_b2_backbone", "n_present": 4, "fold": 0, "seed": 1339, "kl_nats": 2e-6,
         "active_units": 0},
        {"study": "ablation", "row": "3_orthogonality_loss", "n_present": 4, "fold": 0, "seed": 1339, "kl_nats": 9.0,
         "active_units": 6},
        {"study": "main", "row": "shared_s1", "n_present": 4, "fold": 0, "seed": 1337, "kl_nats": 9.0, "active_units": 6}])
    table = network_use_table(per_fold)
    assert list(zip(table["study"], table["row"])) == [("scale", "r34__shared_s1"), ("ablation", "2_mit_b2_backbone")]
    r34 = table.iloc[0]
    assert r34["n_runs"] == 2 and math.isclose(r34["kl_nats"], 2e-5) and math.isclose(r34["kl_nats_max"], 3e-5)
    (text,) = network_sentences(table)
    assert "every posterior is collapsed" in text and "3e-05 nats, in r34__shared_s1 at np = 4" in text
    table.loc[1, "kl_nats_max"] = 2 * COLLAPSED_KL
    assert "keeps its posterior in use" in network_sentences(table)[0]
    assert network_use_table(per_fold[per_fold["study"] == "main"]).empty and network_sentences(pd.DataFrame()) == []
