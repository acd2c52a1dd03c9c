"""The public surface is typed: ``mypy --strict`` accepts realistic host code
(tests/typing/pass_usage.py) and reports each misuse in tests/typing/fail_usage.py;
every public ``Squidie`` method has a module-level forwarder of the same signature."""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path

import pytest
from mypy import api as mypy_api

import squidie
from squidie.api import default_instance

HERE = Path(__file__).parent
ROOT = Path(__file__).parents[2]


@functools.cache
def mypy_strict_errors() -> tuple[str, ...]:
    """One ``mypy --strict`` run over both usage files; the error lines it reports."""
    out, err, _status = mypy_api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            str(HERE / "pass_usage.py"),
            str(HERE / "fail_usage.py"),
        ]
    )
    assert not err, err
    return tuple(line for line in out.splitlines() if ": error:" in line)


def test_realistic_host_code_type_checks_strictly() -> None:
    assert [line for line in mypy_strict_errors() if "pass_usage.py" in line] == []


def test_each_misuse_is_a_type_error() -> None:
    source = (HERE / "fail_usage.py").read_text().splitlines()
    expected = {n for n, line in enumerate(source, start=1) if "  # expect-error:" in line}
    reported = {
        int(m.group(1))
        for line in mypy_strict_errors()
        if (m := re.match(r".*fail_usage\.py:(\d+):", line))
    }
    assert expected and reported == expected


def public_methods() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(squidie.Squidie, inspect.isfunction)
        if not name.startswith("_")
    )


@pytest.mark.parametrize("name", public_methods())
def test_every_method_has_a_forwarder_of_the_same_signature(name: str) -> None:
    method = inspect.signature(getattr(squidie.Squidie, name))
    forwarder = getattr(default_instance, name)
    without_self = method.replace(parameters=list(method.parameters.values())[1:])
    assert inspect.signature(forwarder) == without_self
    assert inspect.getdoc(forwarder) == inspect.getdoc(getattr(squidie.Squidie, name))
    assert getattr(squidie, name) is forwarder and name in squidie.__all__


def test_no_forwarder_without_a_method() -> None:
    assert sorted(default_instance.__all__) == public_methods()


def test_a_misspelt_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        squidie.strat  # noqa: B018
