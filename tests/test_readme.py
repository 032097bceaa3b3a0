"""The commands of README.md (and docs/) run as written.

README's shell blocks are cut into simple commands. A `sercli` command that needs nothing but the
bundled examples/ (classify, models, info, plot, --help) is run and must exit 0; every other
`sercli` command (it reads ~/corpora, a file of yours, stdin) is parsed by the CLI's own click
parser, so an unknown subcommand or option, or a value outside an option's choices or range, fails
here. A lab command (`python -m train.NAME`, `python -m bench.NAME`) must name an existing script
and only options that script declares. docs/*.md's blocks get the same checks without running.
README also stays short, for users, and names no folder of our machines; no committed text file
does.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from sercli.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
#: the lab's pages for people who rerun experiments
LAB_PAGES = [REPO / "train" / "NOTEBOOK.md", REPO / "train" / "recipes" / "README.md"]

#: folders of our own machines (a user has ~/corpora, runs/, ~/.cache/...)
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root|tmp|mnt|scratch|Users)/")
#: subcommands that need nothing but the bundled models and examples/, so CI runs them
RUNNABLE = {"classify", "models", "info", "plot"}
SEPARATORS = {"&&", "||", "|", ";"}
#: option types whose values can be checked without the file system
CHECKED_TYPES = (click.Choice, click.types.IntParamType, click.types.FloatParamType)


def shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```(?:sh|bash|console)\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def simple_commands(block: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments, pipes, `&&` and
    redirections taken apart; each command a list of words."""
    out: list[list[str]] = []
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        words, cmd, skip = list(lex), [], False
        for w in words:
            if skip:
                skip = False
            elif w in (">", ">>", "<"):
                skip = True  # a redirection's file
            elif w in SEPARATORS:
                out.append(cmd)
                cmd = []
            else:
                cmd.append(w)
        out.append(cmd)
    return [c for c in out if c]


def sercli_args(cmd: list[str]) -> list[str] | None:
    """The arguments of a sercli command (`sercli ...`, `.venv/bin/sercli ...`,
    `python -m sercli ...`), else None."""
    if Path(cmd[0]).name == "sercli":
        return cmd[1:]
    if Path(cmd[0]).name.startswith("python") and cmd[1:3] == ["-m", "sercli"]:
        return cmd[3:]
    return None


def lab_module(cmd: list[str]) -> tuple[str, list[str]] | None:
    if (
        Path(cmd[0]).name.startswith("python")
        and len(cmd) > 2
        and cmd[1] == "-m"
        and cmd[2].split(".")[0] in ("train", "bench")
    ):
        return cmd[2], cmd[3:]
    return None


def parse_sercli(args: list[str]) -> tuple[str | None, list[str]]:
    """Parse like the CLI does, without running: (subcommand, its positional arguments).
    Raises click.UsageError / click.BadParameter for what the CLI would refuse."""
    root = click.Context(cli, info_name="sercli")
    if not args or args[0].startswith("-"):
        cli.make_parser(root).parse_args(list(args))
        return None, []
    cmd = cli.get_command(root, args[0])
    if cmd is None:
        raise click.UsageError(f"no such command {args[0]!r}")
    ctx = click.Context(cmd, info_name=args[0], parent=root)
    opts, _, order = cmd.make_parser(ctx).parse_args(list(args[1:]))
    positional: list[str] = []
    for param in order:
        value = opts.get(param.name)
        values = [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, str)]
        if isinstance(param, click.Argument):
            positional += values
        elif isinstance(param.type, CHECKED_TYPES):
            for v in values:
                param.type.convert(v, param, ctx)  # an unknown choice, a number out of range
    return args[0], positional


def check_lab(module: str, args: list[str]) -> None:
    script = REPO.joinpath(*module.split(".")).with_suffix(".py")
    assert script.is_file(), f"python -m {module}: no {script.relative_to(REPO)}"
    source = script.read_text(encoding="utf-8")
    # options a script takes from a shared lab module (`from train.head_lab import ...`) count too
    for shared in re.findall(r"^from (train\.\w+) import", source, flags=re.M):
        source += REPO.joinpath(*shared.split(".")).with_suffix(".py").read_text(encoding="utf-8")
    for a in args:
        if a.startswith("--"):
            opt = a.split("=")[0]
            assert f'"{opt}"' in source, f"python -m {module}: {opt} is not an option of the script"


def runnable(sub: str | None, args: list[str], positional: list[str], cwd: Path) -> bool:
    if sub is None:
        return True  # sercli --help, --version
    if sub not in RUNNABLE or any("~" in a for a in args) or "-" in positional:
        return False
    return all((cwd / p).exists() for p in positional)


def readme_commands() -> list[list[str]]:
    return [c for block in shell_blocks(README) for c in simple_commands(block)]


def inline_commands(path: Path) -> list[list[str]]:
    """Commands quoted in the prose (`sercli ...`, `python -m train.NAME ...`), outside code blocks;
    a placeholder such as `python -m train.NAME` is not one."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S).replace("\n", " ")
    spans = re.findall(r"`([^`]+)`", text)
    return [
        c for s in spans if re.match(r"(sercli|python -m (train|bench)\.[a-z])\S*(\s|$)", s) for c in simple_commands(s)
    ]


def test_readme_is_short_and_for_users():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) < 200, len(lines)
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 200]
    assert not long, f"README lines over 200 characters: {long}"
    assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)
    for needed in (
        "## Install",
        "## Classify",
        "## Models",
        "--normalize-by",
        "sercli evaluate",
        "sercli train",
        "docs/",
        "## Licence and ethics",
    ):
        assert needed in text, needed


def test_readme_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_lines = [line for block in shell_blocks(README) for line in block.splitlines() if "pytest" in line]
    assert test_lines and all(line in ci for line in test_lines), test_lines


def test_readme_commands_parse():
    checked = 0
    for cmd in readme_commands():
        args = sercli_args(cmd)
        lab = lab_module(cmd)
        try:
            if args is not None:
                parse_sercli(args)
                checked += 1
            elif lab is not None:
                check_lab(*lab)
                checked += 1
        except click.ClickException as e:
            pytest.fail(f"{shlex.join(cmd)}: {e.format_message()}")
    assert checked >= 10, checked


@pytest.mark.parametrize("doc", [*DOCS, README, *LAB_PAGES], ids=lambda p: str(p.relative_to(REPO)))
def test_docs_commands_parse(doc):
    """docs' shell blocks, and commands quoted in the prose of README, docs and the notebook."""
    blocks = [] if doc == README else shell_blocks(doc)
    for cmd in [c for b in blocks for c in simple_commands(b)] + inline_commands(doc):
        args, lab = sercli_args(cmd), lab_module(cmd)
        try:
            if args is not None:
                parse_sercli(args)
            elif lab is not None:
                check_lab(*lab)
        except click.ClickException as e:
            pytest.fail(f"{doc.name}: {shlex.join(cmd)}: {e.format_message()}")


def test_readme_commands_that_need_only_the_examples_run(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    ran: list[list[str]] = []
    for cmd in readme_commands():
        args = sercli_args(cmd)
        if args is None or args in ran:
            continue
        sub, positional = parse_sercli(args)
        if not runnable(sub, args, positional, tmp_path):
            continue
        r = subprocess.run(
            [sys.executable, "-m", "sercli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, f"{shlex.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}"
        ran.append(args)
    subcommands = {a[0] for a in ran if a}
    assert {"classify", "models"} <= subcommands, ran
    assert ["classify", "examples/"] in ran, ran


def test_no_committed_text_names_a_folder_of_our_machines():
    texts = [
        README,
        REPO / "CHANGELOG.md",
        REPO / "pyproject.toml",
        REPO / "examples" / "README.md",
        *LAB_PAGES,
        *DOCS,
        *REPO.glob("bench/*.md"),
        *REPO.glob("weights/*.md"),
        *REPO.glob("weights/*.json"),
        *REPO.glob("train/results/**/*.md"),
        *REPO.glob("train/results/**/*.json"),
        *REPO.glob("train/recipes/*.toml"),
        *REPO.glob("sercli/recipes/*.toml"),
        *REPO.glob("sercli/**/*.py"),
        *REPO.glob("train/*.py"),
        *REPO.glob("bench/*.py"),
    ]
    found = [
        f"{p.relative_to(REPO)}: {m.group(0)}"
        for p in texts
        if p.is_file()
        for m in [MACHINE_PATH.search(p.read_text(encoding="utf-8"))]
        if m
    ]
    assert not found, found


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_readme_and_docs_resolve():
    for page in (README, *LAB_PAGES, *DOCS):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"\w+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: link to {target}"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no #{anchor} in {file.name}"


def test_python_names_in_docs_exist():
    """A `sercli.module.name` quoted in README or docs names something that is there today."""
    import importlib

    for page in (README, *DOCS):
        for dotted in set(re.findall(r"`(sercli(?:\.\w+)+)", page.read_text(encoding="utf-8"))):
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                    break
                except ModuleNotFoundError:
                    continue
            for attr in parts[cut:]:
                assert hasattr(obj, attr), f"{page.name}: {dotted}"
                obj = getattr(obj, attr)


def test_models_table_numbers_are_the_cards_and_the_benchmarks():
    """README's models table: each test UAR is its model card's, each clips/s is weights/speed.json's
    (bench/speeds.py, from the benchmark), and the peer's figure is the one bench/models.py wrote."""
    import json

    from sercli.models.catalog import bundled

    cards = {e.name: e for e in bundled()}
    speeds = json.loads((REPO / "weights" / "speed.json").read_text())["models"]
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)`[^|]*\|[^|]*\| ([0-9.]+) \| ([0-9.]+) \|$", text, re.M)
    assert {r[0] for r in rows} == set(cards)
    for name, uar, clips_per_s in rows:
        assert float(uar) == cards[name].test_uar, name
        assert float(clips_per_s) == speeds[name]["clips_per_s"], name
    bench = (REPO / "bench" / "results-models.md").read_text(encoding="utf-8")
    peer = re.search(r"^\| peer's way[^\n]*?\*\*([0-9.]+)\*\*", bench, re.M).group(1)
    assert f"ran at {peer} clips/s there" in " ".join(text.split())
