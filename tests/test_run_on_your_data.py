"""The "Run it on your data" page followed as written, on a small folder dataset: 3 raters, some
masks missing. Its commands are read from the page itself, so the page and this test cannot drift
apart; only the data path (``my_data``) and the scale (``--profile demo`` -> ``smoke``) change."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from mrseg.cli import main
from mrseg.paths import REPO_ROOT
from mrseg.pipeline.plan import load_plan

PAGE = REPO_ROOT / "book" / "run_on_your_data.md"
N_CASES, N_RATERS, SIZE = 12, 3, 32


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


def _commands(data: Path) -> list[list[str]]:
    """Every ``python -m mrseg`` line of the page's bash blocks, made to run here."""
    out = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            if line.startswith("python -m mrseg "):
                line = line.replace("my_data", str(data)).replace("--profile demo", "--profile smoke")
                out.append(shlex.split(line)[3:])
    return out


@pytest.fixture()
def my_data(tmp_path: Path) -> Path:
    """A folder dataset: disc-shaped lesions, rater k's disc k pixels wider; rater 2 missing on
    every third case (so N = 3 comes from the files, not from a constant)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "my_data"
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(N_CASES):
        case = root / f"case_{i:04d}"
        case.mkdir(parents=True)
        cy, cx, r = rng.integers(10, 22), rng.integers(10, 22), rng.integers(3, 6)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2
        image = np.clip(0.3 + 0.5 * (disc <= r * r) + 0.05 * rng.standard_normal((SIZE, SIZE)), 0, 1)
        np.save(case / "image.npy", image.astype(np.float32))
        for k in range(N_RATERS):
            if k == 2 and i % 3 == 0:
                continue
            np.save(case / f"mask_{k}.npy", (disc <= (r + k) ** 2).astype(np.uint8))
    return root


def test_the_page_documents_the_conventions_and_the_train_command():
    text = PAGE.read_text()
    for phrase in ("above 127 of 255", "largest `k`", "python -m mrseg train", "defaults.config"):
        assert phrase in text, phrase


def test_following_the_page_builds_trains_and_plans_on_a_three_rater_folder(my_data, tmp_path, capsys):
    commands = _commands(my_data)
    build, info, train = commands[0], commands[1], commands[2]
    assert build[:3] == ["data", "build", "folder"] and info[:2] == ["data", "info"] and train[0] == "train"
    assert main(build) == 0 and main(info + ["--json"]) == 0
    assert '"raters": 3' in capsys.readouterr().out

    assert main(train + ["--json"]) == 0              # n_present comes from the data: 3, not 4
    assert re.search(r"run folder@\w+/per-rater/np3/fold0/", capsys.readouterr().err)

    plan_text = _blocks("yaml")[0].replace("my_data", str(my_data))
    plan_path = tmp_path / "my_plan.yaml"
    plan_path.write_text(plan_text)
    assert yaml.safe_load(plan_text)["defaults"]["config"]["dataset"] == "folder"
    plan = load_plan(plan_path, "smoke")
    trains = [item for item in plan if item.kind == "train"]
    assert trains and {item.config["dataset"] for item in trains} == {"folder"}     # defaults.config honoured
    assert {item.config["n_present"] for item in trains} == {1, 3}                   # 4 means every rater: 3
    assert main(["plan", "show", "--plan", str(plan_path), "--profile", "smoke"]) == 0
