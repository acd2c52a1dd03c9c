"""The docs run as written: every ```python block of README.md and docs/ is
executed, page by page, exactly as printed, the way a reader pastes them into
one file in order. Each block carries the imports it uses, so a reader who
pastes only that block (after the page's earlier ones) never meets a
``NameError``; every ``Output:`` block of a page must match what the python
blocks since the previous ``Output:`` block printed (the script gets one marker
``print`` at each such boundary, nothing else). Code shown in a ``text`` (or
other) block instead of a ``python`` one would escape all this, so no other
block may hold Python statements.

``docs/examples/*.py`` run under the install ``docs/index.md`` documents for
each of them: imports of anything that install does not bring are refused, as
in a fresh virtualenv.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from squidie.testing.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
MARKER = "--- squidie docs: end of output block ---"


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, text, first line, and whether
    the prose right before it ends with ``Output:``."""

    lang: str
    text: str
    line: int
    is_output: bool


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` in order."""
    source = page.read_text()
    found, prose_start = [], 0
    for m in FENCE.finditer(source):
        prose = source[prose_start : m.start()].strip()
        found.append(
            Block(
                m.group(1),
                m.group(2),
                source.count("\n", 0, m.start()) + 1,
                m.group(1) == "text" and prose.endswith("Output:"),
            )
        )
        prose_start = m.end()
    return found


def python_pages() -> list[Path]:
    """Pages with at least one python block."""
    return [p for p in PAGES if any(b.lang == "python" for b in blocks(p))]


def imported(tree: ast.AST) -> set[str]:
    """Names a block binds with import statements."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def used(tree: ast.AST) -> set[str]:
    """Names a block reads."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def page_id(page: Path) -> str:
    """A readable test id for a page."""
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", python_pages(), ids=page_id)
def test_every_python_block_imports_what_it_uses(page: Path) -> None:
    problems = []
    earlier: set[str] = set()
    for block in (b for b in blocks(page) if b.lang == "python"):
        tree = ast.parse(block.text, filename=f"{page.name}:{block.line}")
        missing = (used(tree) & earlier) - imported(tree)
        if missing:
            problems.append(
                f"{page_id(page)}:{block.line} uses {sorted(missing)} "
                "imported only by an earlier block"
            )
        earlier |= imported(tree)
    assert not problems, "\n".join(problems)


_STATEMENTS = (
    ast.Import,
    ast.ImportFrom,
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.With,
    ast.For,
    ast.While,
    ast.Try,
    ast.If,
)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_python_hides_in_other_blocks(page: Path) -> None:
    """Python in a ``text`` block is never run; it must be a ``python`` block."""
    hidden = []
    for block in (b for b in blocks(page) if b.lang != "python"):
        try:
            tree = ast.parse(block.text)
        except SyntaxError:
            continue
        if any(
            isinstance(node, _STATEMENTS)
            or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call))
            for node in tree.body
        ):
            hidden.append(f"{page_id(page)}:{block.line} ({block.lang or 'no language'})")
    assert not hidden, f"Python code outside ```python blocks: {hidden}"


def page_code(page: Path) -> str:
    """The page's python blocks, as one script."""
    return "\n\n".join(b.text for b in blocks(page) if b.lang == "python")


def reads_database_url(code: str) -> bool:
    """Whether the code takes its database from ``SQUIDIE_DATABASE_URL``: it names the
    variable, or calls ``connect()`` without a URL or engine."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Constant) and node.value == "SQUIDIE_DATABASE_URL":
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "connect"
            and not node.args
            and not {k.arg for k in node.keywords} & {"url", "engine"}
        ):
            return True
    return False


def starts_postgres(code: str) -> bool:
    """Whether the code asks ``squidie.testing.postgres`` for a server of its own."""
    return "provide_postgres" in code


def _page_runs() -> list[Any]:
    """(page, database) pairs: every page on SQLite; one that reads
    ``SQUIDIE_DATABASE_URL`` on PostgreSQL as well."""
    runs = []
    for page in python_pages():
        code = page_code(page)
        pg = [pytest.mark.postgres] if starts_postgres(code) else []
        runs.append(pytest.param(page, "sqlite", id=f"{page_id(page)}-sqlite", marks=pg))
        if reads_database_url(code):
            runs.append(
                pytest.param(
                    page, "postgres", id=f"{page_id(page)}-postgres", marks=[pytest.mark.postgres]
                )
            )
    return runs


@pytest.mark.parametrize(("page", "db"), _page_runs())
def test_page_runs_as_printed(
    page: Path, db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database_url = (
        request.getfixturevalue("pg_url")
        if db == "postgres"
        else f"sqlite:///{tmp_path / 'squidie.sqlite3'}"
    )
    parts, expected = [], []
    for block in blocks(page):
        if block.lang == "python":
            parts.append(block.text)
        elif block.is_output:
            parts.append(f"print({MARKER!r}, flush=True)\n")
            expected.append(block.text)
    (tmp_path / "page.py").write_text("\n\n".join(parts))
    # A page that starts its own PostgreSQL (testing-host-apps) gets the suite's server
    # through the provider's first source, SQUIDIE_TEST_DATABASE_URL.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SQUIDIE_DATABASE_URL": database_url,
        **_postgres_for(page_code(page), request),
    }
    done = subprocess.run(
        [sys.executable, "page.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"{page_id(page)} failed as printed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    printed = done.stdout.split(MARKER + "\n")
    for number, want in enumerate(expected):
        got = printed[number].strip().splitlines()
        assert got == want.strip().splitlines(), (
            f"{page_id(page)}: Output block {number + 1} differs from what the code printed"
        )


# --- docs/examples ----------------------------------------------------------------------

INDEX = ROOT / "docs" / "index.md"
ROW = re.compile(r"^\| \[`(?P<script>[\w.]+\.py)`\][^|]*\|[^|]*\|(?P<needs>[^|]*)\|$", re.M)
INSTALL = re.compile(r"`(pip install [^`]+)`")
_GUARD = """
import importlib.abc, json, os, runpy, sys
blocked = set(json.loads(os.environ["SQUIDIE_DOCS_BLOCKED"]))
class Fresh(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in blocked:
            return None
        raise ModuleNotFoundError(f"No module named {top!r} (not in the documented install)",
                                  name=top)
sys.meta_path.insert(0, Fresh())
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def documented_installs() -> list[tuple[str, str]]:
    """``docs/index.md``'s table: (example script, a ``pip install`` line it documents);
    a script may document several (without and with an extra)."""
    return [
        (m["script"], install)
        for m in ROW.finditer(INDEX.read_text())
        for install in INSTALL.findall(m["needs"])
    ]


def _distributions(install: str) -> Iterator[Requirement]:
    """What a ``pip install -e '.[extra]' pkg`` line asks for, as requirements."""
    for arg in shlex.split(install)[2:]:
        if arg.startswith("-"):
            continue
        yield Requirement(arg.replace(".", "squidie", 1) if arg.startswith(".") else arg)


def missing_after(install: str) -> set[str]:
    """Top-level modules of this venv's distributions that a fresh venv would not have
    after ``install``: all but the named distributions and what they require (markers
    evaluated here). The standard library is no distribution, so it is never missing."""
    modules_of: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(_norm(dist), set()).add(module)
    allowed, seen = {"squidie"}, set()
    todo = list(_distributions(install))
    while todo:
        req = todo.pop()
        key = (_norm(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        allowed |= modules_of.get(key[0], set())
        for text in metadata.requires(req.name) or []:
            sub = Requirement(text)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})
            ):
                todo.append(sub)
    return set().union(*modules_of.values()) - allowed


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_example_documents_its_install() -> None:
    assert sorted({script for script, _ in documented_installs()}) == [p.name for p in EXAMPLES]


def _postgres_for(code: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Code that starts a PostgreSQL of its own gets the suite's server instead, through
    the provider's first source, ``SQUIDIE_TEST_DATABASE_URL``."""
    if not starts_postgres(code):
        return {}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return {"SQUIDIE_TEST_DATABASE_URL": server.admin_url}


def _example_runs() -> list[Any]:
    return [
        pytest.param(
            script,
            install,
            id=f"{script}: {install}",
            marks=[pytest.mark.postgres]
            if starts_postgres((ROOT / "docs" / "examples" / script).read_text())
            else [],
        )
        for script, install in documented_installs()
    ]


@pytest.mark.parametrize(("script", "install"), _example_runs())
def test_example_runs_after_its_documented_install(
    script: str, install: str, request: pytest.FixtureRequest
) -> None:
    example = ROOT / "docs" / "examples" / script
    env = {
        **os.environ,
        "SQUIDIE_DOCS_BLOCKED": json.dumps(sorted(missing_after(install))),
        "PYTHONPATH": str(ROOT),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        **_postgres_for(example.read_text(), request),
    }
    env.pop("SQUIDIE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", _GUARD, str(example)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (
        f"{example.name} fails after `{install}`:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
