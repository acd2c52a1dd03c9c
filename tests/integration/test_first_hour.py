"""The first hour (issue 13, items 2 and 3): errors that say what to do, and the
values users actually return from steps and pass as payloads.

Storage is involved wherever a run is started, so those tests run on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import enum
import subprocess
import sys
import textwrap
import uuid
import warnings
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import squidie
from squidie import (
    ConfigError,
    Fail,
    InvalidPayload,
    MissingConfig,
    MissingDependency,
    Squidie,
    SquidieWarning,
    StorageError,
    Workflow,
    field,
    manual,
    step,
)
from squidie.journal.transactions import run_transaction
from squidie.testing import FakeClock, drain
from squidie.workflow.portable_json import (
    MAX_DEPTH,
    NotPortable,
    portable_json,
    sanitised_json,
    unregister_json_encoder,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `sq.install()` or `squidie install`"
_SQL_WORDS = ("UPDATE", "WHERE", "LINE ", "[SQL", "parameters", "SELECT", "INSERT")


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock(T0))
    instance.install()
    return instance


def one_step(action: Any, **trigger_fields: Any) -> type[Workflow]:
    class OneStep(Workflow):
        trigger = manual("go", payload=trigger_fields or None)
        steps = [step("x", action, output="out")]

    return OneStep


def errors_of(sq: Squidie, run_id: str) -> list[dict[str, Any]]:
    return [a["error"] for a in sq.inspect_run(run_id, include_history=True).attempts or []]


class Colour(enum.Enum):
    RED = "red"
    SIZE = (1, 2)


@dataclasses.dataclass(frozen=True)
class Line:
    sku: str
    price: Decimal
    shipped: date | None = None


@dataclasses.dataclass
class Node:
    name: str
    next: Node | None = None


class Money:
    """A host type Squidie knows nothing about."""

    def __init__(self, amount: str, currency: str) -> None:
        self.amount, self.currency = Decimal(amount), currency


# -- item 2: errors that say what to do ---------------------------------------------


class TestMissingSchema:
    def test_forgetting_install_says_to_run_install(self, db_url: str) -> None:
        sq = squidie.connect(db_url, clock=FakeClock(T0))  # no sq.install()
        with pytest.raises(StorageError) as failed:
            sq.start(one_step(lambda i, c: None))
        message = str(failed.value)
        assert INSTALL_HINT in message
        assert failed.value.details["hint"] == INSTALL_HINT
        assert "squidie_" in message  # the missing table is named
        for word in _SQL_WORDS:
            assert word not in message, word
        if "postgresql" in db_url:
            assert failed.value.sqlstate == "42P01"  # type: ignore[attr-defined]
            assert "42P01" in message
        with pytest.raises(StorageError, match=r"sq\.install"):
            sq.list_runs()

    def test_other_storage_errors_do_not_claim_the_schema_is_missing(self, sq: Squidie) -> None:
        with pytest.raises(StorageError) as failed:
            run_transaction(
                sq.store.engine,  # type: ignore[attr-defined]
                lambda conn, _ambiguous: conn.execute(text("SELECT * FROM host_x")),
            )
        assert INSTALL_HINT not in str(failed.value)
        assert "hint" not in failed.value.details


class TestConfigErrors:
    def test_a_postgres_url_without_psycopg_says_how_to_install_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # As if psycopg were not installed: importing it fails (nothing is uninstalled).
        for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "psycopg", None)
        with pytest.raises(MissingDependency) as failed:
            squidie.connect("postgresql://app@localhost/app")
        assert isinstance(failed.value, ConfigError)
        assert failed.value.code == "missing_dependency"
        assert "pip install 'squidie[postgres]'" in str(failed.value)
        assert "'psycopg'" in str(failed.value)

    @pytest.mark.parametrize(
        "url",
        [
            "not a url at all",
            "mysql://root@localhost/db",
            "postgresql://app:s3cret@host:port/db",
            "postgresql+nosuchdriver://app@localhost/db",
        ],
    )
    def test_a_bad_url_is_invalid_config_not_missing_config(self, url: str) -> None:
        with pytest.raises(ConfigError) as failed:
            squidie.connect(url)
        assert failed.value.code == "invalid_config"
        assert not isinstance(failed.value, MissingConfig | MissingDependency)
        assert "s3cret" not in str(failed.value)

    def test_bad_arguments_are_invalid_config(self) -> None:
        with pytest.raises(ConfigError) as failed:
            squidie.connect("", queue="")
        assert failed.value.code == "invalid_config"
        assert len(failed.value.problems) == 2

    def test_no_default_instance_is_missing_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("squidie.api.connecting._default", None)
        with pytest.raises(MissingConfig) as failed:
            squidie.list_runs()
        assert failed.value.code == "missing_config"
        assert isinstance(failed.value, ConfigError)  # old `except ConfigError` still catches
        assert "squidie.configure(url)" in str(failed.value)


def _main_workflow(name: str) -> type[Workflow]:
    """A workflow class whose module is ``__main__``, as in a script or a notebook."""
    namespace = {
        "__module__": "__main__",
        "__qualname__": name,
        "trigger": manual("go"),
        "steps": [step("x", lambda i, c: None)],
    }
    return type(name, (Workflow,), namespace)


class TestWorkflowInMain:
    def test_start_warns_once_per_workflow_that_other_processes_cannot_import_it(
        self, sqlite_url: str
    ) -> None:
        sq = squidie.connect(sqlite_url)
        sq.install()
        suffix = uuid.uuid4().hex[:8]
        first, second = _main_workflow(f"Script{suffix}"), _main_workflow(f"Other{suffix}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sq.start(first)
            sq.start(first)
            sq.start(second)
            sq.start(second)
        ours = [w for w in caught if issubclass(w.category, SquidieWarning)]
        assert len(ours) == 2  # once per workflow class and process, however many starts
        text = str(ours[0].message)
        assert f"__main__.Script{suffix}" in text
        assert "other processes cannot import it" in text
        assert "importable module" in text
        assert ours[0].filename == __file__  # points at the caller's start()
        drain(sq)  # workers in this process still run it: a warning, not an error
        assert {r.status for r in sq.list_runs()} == {"completed"}

    def test_workflows_in_importable_modules_do_not_warn(self, sqlite_url: str) -> None:
        sq = squidie.connect(sqlite_url)
        sq.install()
        with warnings.catch_warnings():
            warnings.simplefilter("error", SquidieWarning)
            sq.start(one_step(lambda i, c: None))

    def test_a_script_sees_the_warning_once_on_stderr(self, tmp_path: Path) -> None:
        script = tmp_path / "script.py"
        script.write_text(
            textwrap.dedent(f"""
            import squidie
            from squidie import Workflow, manual, step

            class Hello(Workflow):
                trigger = manual("go")
                steps = [step("x", lambda i, c: None)]

            sq = squidie.connect("sqlite:///{tmp_path / "db.sqlite3"}")
            sq.install()
            for _ in range(3):
                sq.start(Hello)
            print("started")
        """)
        )
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            timeout=120,
            check=True,
        )
        assert done.stdout.strip() == "started"
        assert done.stderr.count("SquidieWarning") == 1
        assert "__main__.Hello" in done.stderr


class TestKeyPaths:
    def test_payload_messages_name_the_key_path(self) -> None:
        flow = one_step(lambda i, c: None, items=field(list), meta=field(dict, {}))
        sq = squidie.connect("sqlite://")
        sq.install()
        with pytest.raises(InvalidPayload) as failed:
            sq.start(
                flow,
                payload={"items": [{}, {}, {"price": float("nan")}], "meta": {"tags": {"a", "b"}}},
            )
        text = "\n".join(failed.value.problems)
        assert "$.items[2].price" in text
        assert "$.meta.tags" in text
        assert "register_json_encoder" in text  # what to do about an unknown type

    def test_output_messages_name_the_key_path(self, sq: Squidie) -> None:
        run = sq.start(
            one_step(lambda i, c: {"order": {"lines": [{"price": 1}, {"price": object()}]}})
        )
        drain(sq)
        errors = errors_of(sq, run.run_id)
        assert errors[0]["code"] == "invalid_output"
        assert "$.order.lines[1].price" in errors[0]["message"]
        assert sq.inspect_run(run.run_id).status == "failed"


# -- item 3: outputs users return ---------------------------------------------------


class TestOutputsUsersReturn:
    def test_datetimes_decimals_uuids_enums_and_dataclasses_are_stored_as_json(
        self, sq: Squidie
    ) -> None:
        ident = uuid.UUID("12345678-1234-5678-1234-567812345678")

        def action(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            return {
                "at": datetime(2026, 5, 15, 9, 30, tzinfo=UTC),
                "local": datetime(2026, 5, 15, 9, 30, tzinfo=timezone(timedelta(hours=2))),
                "day": date(2026, 5, 15),
                "clock": time(9, 30),
                "total": Decimal("19.99"),
                "tiny": Decimal("1E-30"),
                "id": ident,
                "colour": Colour.RED,
                "size": Colour.SIZE,
                "lines": (Line("a-1", Decimal("2.50"), date(2026, 5, 16)),),
            }

        run = sq.start(one_step(action))
        drain(sq)
        final = sq.inspect_run(run.run_id)
        assert final.status == "completed"
        assert final.context["out"] == {
            "at": "2026-05-15T09:30:00+00:00",
            "local": "2026-05-15T09:30:00+02:00",
            "day": "2026-05-15",
            "clock": "09:30:00",
            "total": "19.99",
            "tiny": "1E-30",
            "id": "12345678-1234-5678-1234-567812345678",
            "colour": "red",
            "size": [1, 2],
            "lines": [{"sku": "a-1", "price": "2.50", "shipped": "2026-05-16"}],
        }

    def test_a_dataclass_may_be_the_whole_output(self, sq: Squidie) -> None:
        run = sq.start(one_step(lambda i, c: Line("b-2", Decimal("0.10"))))
        drain(sq)
        assert sq.inspect_run(run.run_id).context["out"] == {
            "sku": "b-2",
            "price": "0.10",
            "shipped": None,
        }

    def test_a_pydantic_model_is_stored_as_its_json_dump(self, sq: Squidie) -> None:
        pydantic = pytest.importorskip("pydantic")

        class Item(pydantic.BaseModel):  # type: ignore[name-defined,misc]
            sku: str
            price: Decimal
            at: datetime

        def action(input: dict[str, Any], ctx: Any) -> Any:
            item = Item(sku="c-3", price=Decimal("5.00"), at=T0)
            return item if input.get("whole") else {"items": [item]}

        flow = one_step(action, whole=field(bool, False))
        runs = [sq.start(flow), sq.start(flow, payload={"whole": True})]
        drain(sq)
        dumped = {"sku": "c-3", "price": "5.00", "at": "2026-01-01T00:00:00Z"}
        assert sq.inspect_run(runs[0].run_id).context["out"] == {"items": [dumped]}
        assert sq.inspect_run(runs[1].run_id).context["out"] == dumped

    def test_a_registered_encoder_stores_host_types(self, sq: Squidie) -> None:
        squidie.register_json_encoder(Money, lambda m: {"amount": m.amount, "currency": m.currency})
        try:
            run = sq.start(one_step(lambda i, c: {"charged": Money("12.30", "EUR")}))
            drain(sq)
            assert sq.inspect_run(run.run_id).context["out"] == {
                "charged": {"amount": "12.30", "currency": "EUR"}
            }  # the Decimal converted too
        finally:
            unregister_json_encoder(Money)

    def test_a_registered_encoder_wins_over_the_built_in_form(self) -> None:
        squidie.register_json_encoder(date, lambda d: d.strftime("%d/%m/%Y"))
        try:
            assert portable_json({"d": date(2026, 5, 15)}) == {"d": "15/05/2026"}
            # datetime is a date: the most specific registration applies first
            assert portable_json([datetime(2026, 5, 15, tzinfo=UTC)]) == ["15/05/2026"]
        finally:
            unregister_json_encoder(date)
        assert portable_json({"d": date(2026, 5, 15)}) == {"d": "2026-05-15"}

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ({"s": {1, 2}}, "set is not a JSON type"),
            ({"n": Decimal("NaN")}, "non-finite Decimal"),
            ({"m": Money("1", "EUR")}, "Money is not a JSON type"),
            ({"t": timedelta(seconds=5)}, "timedelta is not a JSON type"),
        ],
    )
    def test_what_still_cannot_be_stored_fails_with_invalid_output_and_the_path(
        self, sq: Squidie, value: dict[str, Any], problem: str
    ) -> None:
        run = sq.start(one_step(lambda i, c: {"result": value}))
        drain(sq)
        errors = errors_of(sq, run.run_id)
        assert len(errors) == 1 and errors[0]["code"] == "invalid_output"
        assert problem in errors[0]["message"]
        assert f"$.result.{next(iter(value))}" in errors[0]["message"]

    def test_a_value_that_converts_to_a_non_dict_is_not_an_output(self, sq: Squidie) -> None:
        run = sq.start(one_step(lambda i, c: T0))
        drain(sq)
        message = errors_of(sq, run.run_id)[0]["message"]
        assert "step returned datetime, expected a dict or None" in message

    def test_an_encoder_that_raises_refuses_the_value_naming_the_path(self) -> None:
        def broken(value: Money) -> Any:
            raise RuntimeError("no")

        squidie.register_json_encoder(Money, broken)
        try:
            with pytest.raises(NotPortable) as failed:
                portable_json({"a": [Money("1", "EUR")]})
            assert failed.value.path == "$.a[0]"
            assert "cannot convert Money to JSON (RuntimeError)" in str(failed.value)
            # error details must always be recordable: never raises
            assert isinstance(sanitised_json({"a": Money("1", "EUR")})["a"], str)
        finally:
            unregister_json_encoder(Money)

    def test_endless_conversions_and_cycles_end_at_the_depth_bound(self) -> None:
        squidie.register_json_encoder(Money, lambda m: m)  # never reaches JSON
        try:
            with pytest.raises(NotPortable, match="did not convert to JSON"):
                portable_json({"m": Money("1", "EUR")})
        finally:
            unregister_json_encoder(Money)
        loop = Node("a")
        loop.next = loop
        with pytest.raises(NotPortable, match=f"nested deeper than {MAX_DEPTH} levels"):
            portable_json(loop)
        assert isinstance(sanitised_json({"loop": loop}), dict)
        deep: Node | None = None
        for index in range(10_000):  # no recursion: no RecursionError either
            deep = Node(str(index), deep)
        with pytest.raises(NotPortable, match="nested deeper"):
            portable_json(deep)

    def test_error_details_take_the_same_json_form(self, sq: Squidie) -> None:
        def fail(input: dict[str, Any], ctx: Any) -> None:
            raise Fail("declined", details={"at": T0, "amount": Decimal("9.99")})

        run = sq.start(one_step(fail))
        drain(sq)
        details = errors_of(sq, run.run_id)[0]["details"]
        assert details == {"at": "2026-01-01T00:00:00+00:00", "amount": "9.99"}


class TestPayloadsUsersPass:
    def test_typed_fields_for_datetime_date_decimal_and_uuid_store_text(self, sq: Squidie) -> None:
        ident = uuid.uuid4()
        flow = one_step(
            lambda i, c: None,
            at=field(datetime),
            day=field(date),
            amount=field(Decimal, Decimal("0.00")),
            ref=field(uuid.UUID),
            note=field(dict, {}),
        )
        run = sq.start(
            flow,
            payload={
                "at": datetime(2026, 5, 15, 9, tzinfo=UTC),
                "day": "2026-05-15",
                "ref": str(ident).upper(),
                "note": {"when": date(2026, 1, 2), "by": Colour.RED},
            },
        )
        assert run.input == {
            "at": "2026-05-15T09:00:00+00:00",
            "day": "2026-05-15",
            "amount": "0.00",
            "ref": str(ident),
            "note": {"when": "2026-01-02", "by": "red"},
        }
        # the text form is accepted too (payloads arrive as JSON), and is idempotent
        again = sq.start(flow, payload=dict(run.input), run_id=run.run_id)
        assert again.run_id == run.run_id
        assert flow.to_spec()["trigger"]["payload"]["amount"] == {
            "type": "decimal",
            "default": "0.00",
        }

    def test_typed_fields_refuse_ambiguous_values(self) -> None:
        flow = one_step(
            lambda i, c: None,
            at=field(datetime),
            amount=field(Decimal),
            ref=field(uuid.UUID),
            day=field(date),
        )
        sq = squidie.connect("sqlite://")
        sq.install()
        with pytest.raises(InvalidPayload) as failed:
            sq.start(
                flow,
                payload={
                    "at": datetime(2026, 5, 15),
                    "amount": 0.1,
                    "ref": "not-a-uuid",
                    "day": T0,
                },
            )
        text = "\n".join(failed.value.problems)
        assert "'at': must carry a UTC offset" in text
        assert "'amount': must be a Decimal, an int or decimal text (not a float)" in text
        assert "'ref': must be a UUID or its text" in text
        assert "'day': must be a date" in text
        assert sq.list_runs() == []

    def test_a_bad_default_is_a_definition_error(self) -> None:
        with pytest.raises(squidie.WorkflowDefinitionError, match="default must be a Decimal"):
            one_step(lambda i, c: None, amount=field(Decimal, 0.5))

    def test_a_dataclass_may_be_the_whole_payload(self, sq: Squidie) -> None:
        flow = one_step(
            lambda i, c: None, sku=field(str), price=field(Decimal), shipped=field(str, "")
        )
        with pytest.raises(InvalidPayload, match="'shipped': must be str, got NoneType"):
            sq.start(flow, payload=Line("d-4", Decimal("3")))  # type: ignore[arg-type]
        run = sq.start(
            flow,
            payload=Line(
                "d-4",
                Decimal("3"),  # type: ignore[arg-type]
                date(2026, 2, 1),
            ),
        )
        assert run.input == {"sku": "d-4", "price": "3", "shipped": "2026-02-01"}

    def test_a_pydantic_model_may_be_the_trigger_payload(self, sq: Squidie) -> None:
        pydantic = pytest.importorskip("pydantic")

        class Order(pydantic.BaseModel):  # type: ignore[name-defined,misc]
            customer: str
            total: Decimal
            lines: list[dict[str, int]] = []

        flow = one_step(
            lambda i, c: {"seen": i},
            customer=field(str),
            total=field(Decimal),
            lines=field(list, []),
        )
        # validated by pydantic when built, by the trigger's fields before anything is stored
        with pytest.raises(pydantic.ValidationError):
            Order(customer="ada", total="lots")
        order = Order(customer="ada", total=Decimal("10.5"), lines=[{"qty": 2}])
        run = sq.start(flow, payload=order)
        drain(sq)
        final = sq.inspect_run(run.run_id)
        assert final.input == {"customer": "ada", "total": "10.5", "lines": [{"qty": 2}]}
        assert final.context["out"]["seen"]["total"] == "10.5"
