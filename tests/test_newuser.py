"""What a new user trips on (issue 18): each test here failed before its fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sercli.cli import cli

from .conftest import REPO, speechlike


def run(args, input=None):
    return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)


# --- item 9: the suite writes only to temporary folders ---------------------------------------

def test_the_suite_feature_cache_is_a_temporary_folder(tmp_path_factory, tiny_corpus):
    """extract_dataset without a cache folder (as the ensemble tests did) writes under the
    session's temporary folder, not ~/.cache/sercli; so do subprocesses."""
    from sercli.corpora import scan
    from sercli.dataset import default_cache_dir, extract_dataset
    base = tmp_path_factory.getbasetemp().resolve()
    cache = default_cache_dir().resolve()
    assert cache.is_relative_to(base)
    extract_dataset(scan(tiny_corpus).clips[:2], jobs=1)
    assert any(cache.rglob("*")), "nothing was cached where the suite's cache should be"
    out = subprocess.run([sys.executable, "-c", "from sercli.dataset import default_cache_dir as d; "
                          "print(d())"], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).resolve().is_relative_to(base)
