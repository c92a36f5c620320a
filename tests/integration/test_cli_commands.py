"""The headless CLI (SPEC section 5) against both emulators over loopback.

Commands run in-process through click's runner with REMINDER_SYNC_HOME in tmp_path and the
in-memory secret store standing in for the OS keyring (the only part replaced).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tui.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, EXIT_WAITING, main


@pytest.fixture
def cli(home: Path, secrets: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REMINDER_SYNC_HOME", str(home))
    monkeypatch.setattr("sync.engine.default_secret_store", lambda: secrets)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def connected_cli(cli, sf, sc):
    result = cli(
        "connect", "salesforce", "--login-url", sf.base_url, "--client-id", sf.client_id,
        "--auth", "client-credentials", "--secret-stdin", input=sf.client_secret + "\n",
    )  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    assert "Connected to Salesforce" in result.output
    result = cli(
        "connect", "salesconnect", "--base-url", sc.base_url, "--client-id", sc.client_id,
        "--secret-stdin", input=sc.client_secret + "\n",
    )  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    return cli


def _one_line_error(result: Result) -> str:
    text = result.stderr.strip()
    assert "Traceback" not in result.output and "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    return text


def test_same_field_edit_exits_3_overwrites_neither_side_and_is_settled_by_resolve(
    connected_cli, sf, sc
) -> None:
    cli = connected_cli
    sf_id = sf.create_task(Subject="Pricing call")
    assert cli("enable").exit_code == EXIT_OK
    assert cli("sync").exit_code == EXIT_OK
    [sc_task] = [t for t in sc.tasks() if t["name"] == "Pricing call"]

    sc.update_task(sc_task["id"], name="Pricing call with CFO")
    sf.update_task(sf_id, Subject="Pricing call moved")
    result = cli("sync")

    assert result.exit_code == EXIT_WAITING
    assert "conflict" in result.output.lower()
    assert sc.get_task(sc_task["id"])["name"] == "Pricing call with CFO"
    assert sf.get_task(sf_id)["Subject"] == "Pricing call moved"

    listed = cli("conflicts", "--json")
    assert listed.exit_code == EXIT_OK
    [conflict] = json.loads(listed.stdout)
    assert conflict["fields"] == ["name"]
    assert conflict["values"]["name"] == {
        "base": "Pricing call",
        "salesconnect": "Pricing call with CFO",
        "salesforce": "Pricing call moved",
    }

    assert cli("resolve", conflict["id"], "--take", "salesforce").exit_code == EXIT_OK
    result = cli("sync")
    assert result.exit_code == EXIT_OK, result.output
    assert sc.get_task(sc_task["id"])["name"] == "Pricing call moved"
    assert json.loads(cli("conflicts", "--json").stdout) == []


def test_dry_run_prints_the_plan_and_changes_nothing_on_either_emulator(
    connected_cli, sf, sc, home
) -> None:
    cli = connected_cli
    sf.create_task(Subject="Imported on the real run")
    assert cli("enable").exit_code == EXIT_OK
    sc.create_task(name="Pushed on the real run")
    sf_before = {t["Id"]: t["SystemModstamp"] for t in sf.tasks()}
    sc_before = {t["id"]: t["version"] for t in sc.tasks(include_deleted=True)}
    state_before = (home / "state.json").read_bytes()

    result = cli("sync", "--dry-run")

    assert result.exit_code == EXIT_OK, result.output
    assert "create on Sales Connect" in result.output
    assert "create on Salesforce" in result.output
    assert "nothing was written" in result.output
    assert {t["Id"]: t["SystemModstamp"] for t in sf.tasks()} == sf_before
    assert {t["id"]: t["version"] for t in sc.tasks(include_deleted=True)} == sc_before
    assert (home / "state.json").read_bytes() == state_before

    as_json = json.loads(cli("sync", "--dry-run", "--json").stdout)
    assert as_json["dry_run"] is True
    assert sorted(p["target"] for p in as_json["planned"]) == ["salesconnect", "salesforce"]

    assert cli("sync").exit_code == EXIT_OK
    assert "Imported on the real run" in sc.by_name()
    assert "Pushed on the real run" in sf.by_subject()


def test_status_json_counts_links_conflicts_and_errors(connected_cli, sf, sc) -> None:
    cli = connected_cli
    for n in range(3):
        sf.create_task(Subject=f"Task {n}")
    cli("enable")
    cli("sync")

    result = cli("status", "--json")

    assert result.exit_code == EXIT_OK
    status = json.loads(result.stdout)
    assert (status["links"], status["conflicts"], status["errors"]) == (3, 0, 0)
    assert status["enabled"] is True
    assert status["connections"] == {"salesconnect": True, "salesforce": True}
    assert status["last_outcome"] == "done" and status["last_run"] is not None
    assert status["api_max"] == 15000 and 0 < status["api_used"] < 100
    text = cli("status").output
    assert "Links: 3" in text and "Conflicts: 0" in text


def test_mass_delete_guard_exits_3_with_a_message_and_confirm_deletes_lets_them_through(
    connected_cli, sf, sc
) -> None:
    cli = connected_cli
    ids = [sf.create_task(Subject=f"Review {n}") for n in range(6)]
    cli("enable")
    cli("sync")
    for sf_id in ids:
        sf.delete_task(sf_id)

    result = cli("sync")

    assert result.exit_code == EXIT_WAITING
    assert "Nothing was deleted" in _one_line_error(result)
    assert len(sc.tasks()) == 6
    assert cli("sync", "--confirm-deletes").exit_code == EXIT_OK
    assert sc.tasks() == []


def test_sync_without_a_connection_is_one_clear_line_and_exit_1(cli) -> None:
    cli("enable")
    result = cli("sync")
    assert result.exit_code == EXIT_FAILURE
    line = _one_line_error(result)
    assert "Not connected" in line and "reminder-sync connect" in line


def test_sync_while_disabled_says_how_to_enable(connected_cli) -> None:
    result = connected_cli("sync")
    assert result.exit_code == EXIT_FAILURE
    assert "reminder-sync enable" in result.output + result.stderr


def test_resolve_of_an_unknown_conflict_is_bad_usage(connected_cli) -> None:
    result = connected_cli("resolve", "fields:nope|nope", "--take", "salesforce")
    assert result.exit_code == EXIT_USAGE
    assert "conflicts" in _one_line_error(result)


def test_a_plain_http_url_off_loopback_is_refused(cli) -> None:
    result = cli(
        "connect", "salesconnect", "--base-url", "http://sales.example.com/api/v1",
        "--client-id", "x", "--secret-stdin", input="s\n",
    )  # fmt: skip
    assert result.exit_code == EXIT_FAILURE
    assert "https" in _one_line_error(result)


def test_logout_forgets_the_tokens(connected_cli, secrets, sf) -> None:
    from sync.connectors.salesforce_auth import SECRET_ACCESS_TOKEN

    assert connected_cli("logout", "salesforce").exit_code == EXIT_OK
    assert secrets._values.get(SECRET_ACCESS_TOKEN) is None
    status = json.loads(connected_cli("status", "--json").stdout)
    assert status["connections"] == {"salesconnect": True, "salesforce": False}


def test_disable_stops_the_sync(connected_cli, sf, sc) -> None:
    connected_cli("enable")
    assert connected_cli("disable").exit_code == EXIT_OK
    sf.create_task(Subject="Not while disabled")
    assert connected_cli("sync").exit_code == EXIT_FAILURE
    assert sc.tasks() == []
