"""A non-editable install, run from another folder, finds the bundled weights and recipes, and
holds no experiment recipe of the lab (train/recipes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_non_editable_install_has_package_data(tmp_path):
    target = tmp_path / "site"
    # built from a copy: an in-tree build writes build/ and sercli.egg-info into the checkout
    import shutil

    src = tmp_path / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".*")
    for part in ("sercli", "weights", "train/recipes"):  # the lab's recipes too: they must stay out
        shutil.copytree(REPO / part, src / part, ignore=junk)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "sercli" / "weights" / "cnn.pt").is_file()
    assert (target / "sercli" / "recipes" / "cnn.toml").is_file()
    installed = {p.name for p in target.rglob("*.toml")}
    assert installed == {p.name for p in (REPO / "sercli" / "recipes").glob("*.toml")}
    assert {"whisper-tiny.toml", "cnn-spk3.toml", "svm.toml", "seed-rnn.toml"} <= installed
    lab = {p.name for p in (REPO / "train" / "recipes").glob("*.toml")}
    assert "cnn-attn.toml" in lab and not installed & lab
    assert not [n for n in installed if "-loco" in n or n.startswith("cnn-attn")]
    code = (
        "import sercli, sercli.models as m, sercli.training.run, sercli.training.recipe as t, json, sys; "
        "print(json.dumps([sercli.__file__, str(m.weights_dir()), str(t.bundled_folder()), "
        "[m.load_model(n).sha256 for n in m.REGISTRY], t.load_recipe('cnn-spk3').channels, "
        "[v.__file__ for k, v in sys.modules.items() "
        "if k.startswith('sercli') and getattr(v, '__file__', None)]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout
    pkg, wdir, rdir, shas, channels, files = json.loads(out)
    assert channels == [16, 32, 64, 128]  # cnn-spk3 -> cnn-spk -> cnn-v1, all installed
    assert pkg.startswith(str(target)) and wdir.startswith(str(target)) and rdir.startswith(str(target))
    # every subpackage is installed: none is picked up from this checkout instead (a package
    # missing from pyproject.toml's list would still import here, through the editable install)
    assert files and all(f.startswith(str(target)) for f in files), [f for f in files if not f.startswith(str(target))]
    from sercli.models import REGISTRY

    assert shas == [REGISTRY[n][1] for n in REGISTRY]


def test_every_subpackage_is_listed_for_install():
    # pyproject.toml lists packages by hand (weights/ is mapped in from outside sercli/), so a new
    # subpackage left off the list would be missing from a wheel while every checkout test passes
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "sercli").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, sorted(found - listed)
