"""The log file: private, rotated, and never a secret in it, even in a traceback."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.logs import configure_logging

TOKEN = "00DZZ0000000001!AQ4AQFakeAccessTokenValue1234567890"


@pytest.fixture
def logged_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    path = configure_logging(home, stderr_level=None)
    yield path
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_reminder_sync", False):
            logging.getLogger().removeHandler(handler)
            handler.close()


def test_the_log_file_is_private_and_holds_the_engines_messages(logged_home: Path) -> None:
    logging.getLogger("sync.engine").info("sync run abc123 finished: 3 write(s)")

    assert "sync run abc123 finished" in logged_home.read_text()
    assert stat.S_IMODE(logged_home.stat().st_mode) == 0o600
    assert stat.S_IMODE(logged_home.parent.stat().st_mode) == 0o700


def test_a_token_in_a_message_or_a_traceback_never_reaches_the_file(logged_home: Path) -> None:
    log = logging.getLogger("sync.connectors.salesforce")
    log.warning("request failed with header Authorization: Bearer %s", TOKEN)
    try:
        raise RuntimeError(f"refresh failed: refresh_token={TOKEN}&grant_type=refresh_token")
    except RuntimeError:
        log.exception("sync run failed")

    text = logged_home.read_text()
    assert "sync run failed" in text and "RuntimeError" in text
    assert TOKEN not in text
    assert "AQ4AQFake" not in text


def test_configuring_twice_writes_each_record_once(tmp_path: Path, logged_home: Path) -> None:
    configure_logging(logged_home.parent, stderr_level=None)
    logging.getLogger("sync.engine").info("only once, please")

    assert logged_home.read_text().count("only once, please") == 1


def test_the_terminal_gets_one_line_and_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path / "home", stderr_level=logging.WARNING)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("sync.engine").exception("sync run r1 failed")
        logging.getLogger("sync.engine").info("not for the terminal")
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_reminder_sync", False):
                logging.getLogger().removeHandler(handler)
                handler.close()

    err = capsys.readouterr().err
    assert "sync run r1 failed" in err
    assert "Traceback" not in err and "not for the terminal" not in err
    assert "Traceback" in (tmp_path / "home" / "reminder-sync.log").read_text()
