"""The README's commands checked against the programs themselves: every flag it shows for a script is in that
script's `--help`, and each row of its scripts table shows the flags the script requires.

Why: the README drifted from the code (a row without a required flag, a help text behind its parser). Each
program's own `--help`, run in its own process as a user runs it, is the reference that cannot drift.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PROGRAMS = {**{path.stem: Path("scripts", path.name) for path in sorted((REPO / "scripts").glob("*.py"))},
            "app": Path("app.py")}

# a program named as `scripts/NAME.py` or bare `NAME.py`, never as part of another path (`runners/source_cv.py`)
SCRIPT = re.compile(r"(?<![\w/.-])(?:scripts/)?(?P<script>\w+)\.py\b")
FLAG = re.compile(r"(?<![\w-])(?P<flag>--[A-Za-z][\w-]*)")
TOKEN = re.compile(f"{SCRIPT.pattern}|{FLAG.pattern}")
CODE_SPAN = re.compile(r"`([^`]+)`")
FENCE = "```"
# commands of other tools whose flags are theirs, not ours
FOREIGN = {"pip", "pytest", "ray", "git", "apt-get", "make", "hf", "python3"}
ENV_ASSIGNMENT = re.compile(r"^\w+=\S*$")


def commands(readme: str) -> Iterator[str]:
    """The README's command-like units: each line of a fenced block (continuations joined, comments dropped),
    each table row (its code spans, in order) and each code span of the prose (which may wrap across lines)."""
    in_fence = False
    pending = ""
    paragraph: list[str] = []
    for line in [*readme.splitlines(), ""]:
        text = line.strip()
        fence, row = text.startswith(FENCE), text.startswith("|")
        if in_fence or fence or row or not text:
            yield from CODE_SPAN.findall(" ".join(paragraph))
            paragraph = []
        if fence:
            in_fence = not in_fence
        elif in_fence:
            command = re.sub(r"(^|\s)#.*$", "", line).rstrip()
            if command.endswith("\\"):
                pending += command[:-1] + " "
                continue
            yield pending + command
            pending = ""
        elif row:
            yield " ".join(CODE_SPAN.findall(line))
        elif text:
            paragraph.append(text)


def flags_by_script(unit: str) -> tuple[dict[str, set[str]], set[str]]:
    """The flags a command shows for each program it names (a flag belongs to the program named last before it),
    and the flags it shows before naming any program."""
    named: dict[str, set[str]] = {}
    loose: set[str] = set()
    current = None
    for match in TOKEN.finditer(unit):
        if match["script"] is not None:
            current = match["script"] if match["script"] in PROGRAMS else None
            if current is not None:
                named.setdefault(current, set())
        elif current is not None:
            named[current].add(match["flag"])
        else:
            loose.add(match["flag"])
    return named, loose


def readme_flags(readme: str) -> tuple[dict[str, set[str]], set[str]]:
    """Per program, every flag the README shows for it; and the flags it shows with no program named (e.g.
    "`--dtype int8`"), leaving out other tools' commands (pip, pytest, ray…)."""
    shown: dict[str, set[str]] = {}
    loose: set[str] = set()
    for unit in commands(readme):
        named, unnamed = flags_by_script(unit)
        for script, flags in named.items():
            shown.setdefault(script, set()).update(flags)
        words = [word for word in unit.split() if not ENV_ASSIGNMENT.match(word)]
        if not named and words and words[0] not in FOREIGN:
            loose |= unnamed
    return shown, loose


def scripts_table_rows(readme: str) -> dict[str, str]:
    """The scripts table's usage cells: program name → the first cell of its row (e.g. "scripts/scan.py PATH...
    --out results.csv")."""
    rows = {}
    for line in readme.splitlines():
        cells = re.split(r"(?<!\\)\|", line)
        if len(cells) < 3 or not line.startswith("|"):
            continue
        usage = " ".join(CODE_SPAN.findall(cells[1]))
        match = SCRIPT.match(usage)
        if match and match["script"] in PROGRAMS:
            rows[match["script"]] = usage
    return rows


def help_flags(help_text: str) -> set[str]:
    """Every option string argparse lists in its options section (aliases included)."""
    flags = set()
    for line in help_text.splitlines():
        invocation = re.match(r"^  (-\S.*?)(?:  |$)", line)
        if invocation:
            flags |= set(FLAG.findall(invocation[1]))
    return flags


def required_flags(help_text: str) -> set[str]:
    """The options a program cannot run without: those its usage line shows outside square brackets."""
    usage = help_text.split("\n\n", 1)[0]
    while (stripped := re.sub(r"\[[^\[\]]*\]", "", usage)) != usage:
        usage = stripped
    return set(FLAG.findall(usage))


def run_help(program: Path) -> str:
    """`python PROGRAM --help` from the repository root, as a user runs it; its help text."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, str(program), "--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"{program} --help exited {done.returncode}: {done.stderr.strip()[-500:]}"
    return done.stdout


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    """Every program's --help, run side by side (most import torch, which takes seconds each)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(PROGRAMS, pool.map(run_help, PROGRAMS.values())))


README_TEXT = README.read_text(encoding="utf-8")
SHOWN, LOOSE = readme_flags(README_TEXT)


def test_readme_names_every_program():
    assert sorted(set(PROGRAMS) - set(SHOWN)) == [], "programs the README never shows"


@pytest.mark.parametrize("script", sorted(SHOWN))
def test_every_flag_the_readme_shows_for_a_program_is_in_its_help(script, helps):
    missing = sorted(SHOWN[script] - help_flags(helps[script]))
    assert missing == [], f"the README shows {missing} for {PROGRAMS[script]}, which its --help does not list"


@pytest.mark.parametrize("script", sorted(scripts_table_rows(README_TEXT)))
def test_each_scripts_table_row_shows_the_flags_its_program_requires(script, helps):
    usage = scripts_table_rows(README_TEXT)[script]
    missing = sorted(required_flags(helps[script]) - set(FLAG.findall(usage)))
    assert missing == [], f"the README's row `{usage}` lacks the required {missing}"


def test_flags_shown_without_a_program_exist_in_some_program(helps):
    known = set().union(*(help_flags(text) for text in helps.values()))
    assert sorted(LOOSE - known) == [], "flags in the README that no program takes"


def test_readme_parser_gives_each_flag_to_the_program_named_before_it():
    text = """| script | what |
|---|---|
| `scripts/scan.py PATH --out r.csv` | rows; `--per-face` one per face; `--backend local\\|ray` |

See `runners/source_cv.py --not-a-program-flag` and `--dtype int8`; `pip install --user x`; a span that
wraps: `python scripts/evaluate.py DATA
--offline`.

```bash
python scripts/train_svm.py L --out a.skops \\
    --force   # or evaluate.py --commented-out
python app.py --offline
```
"""
    shown, loose = readme_flags(text)
    assert shown == {"scan": {"--out", "--per-face", "--backend"}, "train_svm": {"--out", "--force"},
                     "app": {"--offline"}, "evaluate": {"--offline"}}
    assert loose == {"--not-a-program-flag", "--dtype"}
    assert scripts_table_rows(text) == {"scan": "scripts/scan.py PATH --out r.csv"}


def test_required_flags_are_those_outside_brackets_in_the_usage():
    help_text = """usage: train_residual.py [-h] --cv CV --recipe RECIPE --out OUT --workdir
                         WORKDIR [--steps STEPS] [--ray [ADDRESS]]
                         data

options:
  -h, --help            show this help message and exit
  --dtype DTYPE [DTYPE ...], --dtypes DTYPE [DTYPE ...]
                        --wrapped-help-text is not an option
"""
    assert required_flags(help_text) == {"--cv", "--recipe", "--out", "--workdir"}
    assert help_flags(help_text) == {"--help", "--dtype", "--dtypes"}
