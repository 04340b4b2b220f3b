"""Bad input `cryodaq validate` must stop: each case answers with its one FILE:LINE:COL line
(or `FILE: message` where no line applies), exit 1 (2: a file that cannot be read at all), no
traceback, within 2 s and 300 MB; `cryodaq run` refuses the same before building the rig.

Each file in `bad_input/` lists the lines it must yield as `# expect: LINE:COL key: msg` (or
`# expect: OTHER_FILE:LINE:COL ...` for a problem inside another file, relative to it), in
order, and any extra command line arguments as `# args: ...`. Cases that cannot live in the
repository (a FIFO, a 50 MB file, device files) are made here. The cases run in one child
process per command, killed if it outlives its time.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = sorted((HERE / "bad_input").glob("*.yaml"))
VALID = HERE.parent / "config" / "campaigns" / "quickstart.yaml"
SECONDS, MEGABYTES = 2.0, 300.0


@dataclass(frozen=True)
class Case:
    """One bad input: the command's arguments after the command name, the lines it must give."""

    id: str
    args: tuple[str, ...]
    expected: tuple[str, ...]
    code: int = 1


def corpus_case(path: Path) -> Case:
    expected, args = [], [str(path)]
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        if line.startswith("# args: "):
            args += shlex.split(line.removeprefix("# args: "))
        if line.startswith("# expect: "):
            where, _, rest = line.removeprefix("# expect: ").partition(" ")
            if where[0].isdigit():
                where = f"{path}:{where}"
            elif not where.startswith("<"):  # OTHER_FILE:LINE:COL, relative to this file
                name, sep, position = where.partition(":")
                where = f"{os.path.normpath(path.parent / name)}{sep}{position}"
            expected.append(f"{where} {rest}")
    assert expected, f"{path.name} has no '# expect:' line"
    return Case(path.stem, tuple(args), tuple(expected))


def made_cases(tmp: Path) -> list[Case]:
    """The cases made at test time, in `tmp`."""
    rig = HERE.parent / "config" / "rigs" / "mmc_simple_sim.yaml"
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)
    rig_fifo = tmp / "rig_fifo.yaml"
    rig_fifo.write_text("name: rig_fifo\nrig: fifo.yaml\nsteps:\n  - wait: 1 s\n")
    huge = tmp / "huge.yaml"
    with huge.open("w") as f:
        f.write(f"name: huge\nrig: {rig}\nsteps:\n")
        f.write("  - wait: 1 s\n" * 4_000_000)  # 52 MB
    wide = tmp / "alias_characters.yaml"
    wide.write_text(f"a: &a \"{'x' * 600_000}\"\nb: [*a, *a, *a, *a]\n")
    near = tmp / "near_limits.yaml"  # 9000 nodes of valid steps, then one bad
    near.write_text(f"name: near\nrig: {rig}\nsteps:\n" + "  - wait: 1 s\n" * 2999
                    + "  - wait: 0 s\n")
    return [
        Case("rig_fifo", (str(rig_fifo),), (
            f"{rig_fifo}:2:6 rig: cannot read rig file {str(fifo)!r}: a FIFO, not a regular file",
        )),
        Case("campaign_fifo", (str(fifo),),
             (f"error: {fifo}: cannot read: a FIFO, not a regular file",), 2),
        Case("campaign_dev_zero", ("/dev/zero",),
             ("error: /dev/zero: cannot read: a character device, not a regular file",), 2),
        Case("campaign_directory", (str(HERE / "bad_input"),),
             (f"error: {HERE / 'bad_input'}: cannot read: a directory, not a regular file",), 2),
        Case("huge", (str(huge),), (f"{huge}: larger than the limit of 1 MiB",)),
        Case("alias_characters", (str(wide),),
             (f"{wide}:2:13: an alias expands the document past 2097152 characters",)),
        Case("near_limits", (str(near),), (f"{near}:3003:11 steps.2999.wait: must be > 0 s",)),
    ]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return [corpus_case(p) for p in CORPUS] + made_cases(tmp_path_factory.mktemp("made"))


def run_child(command: str, cases: list[Case], extra: dict[str, list[str]]) -> dict[str, dict]:
    """Each case through `cryodaq COMMAND` in one child process; its answers by case id (a
    case the child hung on or died in answers `{"started": True}`)."""
    todo = [{"id": "warm-up", "args": ["validate", str(VALID)]}]
    todo += [{"id": c.id, "args": [command, *c.args, *extra.get(c.id, [])]} for c in cases]
    child = subprocess.Popen(
        [sys.executable, str(HERE / "bad_input_child.py"), command],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, _ = child.communicate(json.dumps(todo), timeout=60 + SECONDS * len(cases))
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate()
    answers: dict[str, dict] = {}
    for line in out.splitlines():
        answer = json.loads(line)
        answers[answer["id"]] = answer
    return answers


@pytest.fixture(scope="module")
def validated(cases: list[Case]) -> dict[str, dict]:
    return run_child("validate", cases, {})


@pytest.fixture(scope="module")
def refused(cases: list[Case], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    runs = tmp_path_factory.mktemp("runs")
    extra = {c.id: ["--out", str(runs / c.id), "--no-display"] for c in cases}
    answers = run_child("run", cases, extra)
    made = sorted(p.name for p in runs.iterdir())
    assert not made, f"run made run directories for bad input: {made}"
    return answers


def _answer(answers: dict[str, dict], case: Case, code: int) -> dict:
    answer = answers.get(case.id)
    assert answer is not None, f"{case.id}: not reached (an earlier case killed the child)"
    assert "code" in answer, f"{case.id}: hung or killed the child"
    assert "Traceback" not in answer["output"], answer["output"]
    assert answer["seconds"] < SECONDS, f"{case.id}: {answer['seconds']:.2f} s"
    assert answer["maxrss_mb"] < MEGABYTES, f"{case.id}: {answer['maxrss_mb']:.0f} MB"
    assert answer["code"] == code, answer["output"]
    return answer


def test_every_kind_of_bad_input_is_in_the_corpus(cases: list[Case]) -> None:
    assert len(cases) >= 40
    assert len({c.id for c in cases}) == len(cases)


@pytest.mark.parametrize("index", range(len(CORPUS) + 7))
def test_validate_answers_one_line_per_problem(
    index: int, cases: list[Case], validated: dict[str, dict]
) -> None:
    case = cases[index]
    lines = _answer(validated, case, case.code)["output"].splitlines()
    if case.code == 2:
        assert len(lines) == 1 and lines[0].startswith(case.expected[0]), lines
        return
    count = len(case.expected)
    assert lines[-1] == f"{case.args[0]}: {count} problem{'s' if count > 1 else ''}", lines
    assert len(lines) == count + 1, "\n".join(lines)
    for got, want in zip(lines, case.expected, strict=False):
        assert got.startswith(want), f"\n got: {got}\nwant: {want}"


@pytest.mark.parametrize("index", range(len(CORPUS) + 7))
def test_run_refuses_before_building_the_rig(
    index: int, cases: list[Case], refused: dict[str, dict]
) -> None:
    case = cases[index]  # run exits 1 for every campaign it refuses, unreadable ones too
    output = _answer(refused, case, 1)["output"]
    lines = [line.removeprefix("error: ") for line in output.splitlines()]
    for want in case.expected:
        assert any(line.startswith(want.removeprefix("error: ")) for line in lines), (
            f"\nwant: {want}\n got: {lines}"
        )


def test_run_refuses_an_out_that_names_a_file(tmp_path: Path) -> None:
    existing = tmp_path / "a_file"
    existing.write_text("keep me\n")
    answers = run_child("run", [Case("out_file", (str(VALID), "--out", str(existing)), ())], {})
    answer = _answer(answers, Case("out_file", (), ()), 1)
    assert answer["output"].strip() == (
        f"error: {existing}: --out names an existing file; give a new directory"
    )
    assert existing.read_text() == "keep me\n"
