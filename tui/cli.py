"""The `reminder-sync` command line (SPEC section 5).

Headless commands never import Textual: the dashboard and the demo import `tui.app` lazily.
Every failure prints one line (what happened, what to do) and exits with a code scripts can use:
0 done, 1 a failure, 2 bad usage, 3 stopped and waiting for the user (conflicts, mass delete).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

import click

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_WAITING = 3

T = TypeVar("T")
log = logging.getLogger("reminder_sync.cli")


class CliError(click.ClickException):
    """A failure the user can act on: one line, exit 1 (or the given code)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"reminder-sync: {self.format_message()}", err=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _explain(exc: BaseException) -> CliError:
    """Turn any exception into one clear line. Never shows a traceback or a secret."""
    from sync.connectors.http import ServiceError, redact

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ServiceError):
        return CliError(_one_line(exc.message))
    message = _one_line(redact(str(exc))) or type(exc).__name__
    known = {"StateError", "SecretStoreError", "ConfigError", "EngineError", "AuthError"}
    if any(cls.__name__ in known for cls in type(exc).__mro__):
        return CliError(message)
    if isinstance(exc, OSError):
        return CliError(f"{message}. Check the path and its permissions.")
    return CliError(
        f"unexpected error ({type(exc).__name__}): {message}. "
        "Run again with REMINDER_SYNC_DEBUG=1 for details, and report it if it persists."
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def handled(func: Callable[..., T]) -> Callable[..., T]:
    """Run a command body; map exceptions to one line and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError):
            raise
        except KeyboardInterrupt:
            click.echo("reminder-sync: interrupted.", err=True)
            raise SystemExit(130) from None
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, as other command-line tools do,
            # and keep Python from complaining again when it flushes stdout at exit.
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(EXIT_FAILURE) from None
        except Exception as exc:
            import os

            if os.environ.get("REMINDER_SYNC_DEBUG"):
                log.exception("command failed")
            raise _explain(exc) from None

    return wrapper


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


# --- the engine, built once per command ------------------------------------------------------


def _secrets() -> Any:
    from sync.engine import default_secret_store

    return default_secret_store()


async def _with_engine(body: Callable[[Any], Awaitable[T]], *, writable: bool = True) -> T:
    from sync.engine import build_engine

    engine = build_engine(None, _secrets(), read_only=not writable)
    try:
        return await body(engine)
    finally:
        await engine.aclose()


# --- commands -------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.version_option(package_name="reminder-sync")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep reminder tasks identical in Marketo Sales Connect and Salesforce.

    Without a command, opens the dashboard. State lives in REMINDER_SYNC_HOME (default: the
    platform's user data directory); secrets live in the OS keyring.
    """
    _configure_logging(ctx.invoked_subcommand)
    if ctx.invoked_subcommand is None:
        _dashboard()


def _configure_logging(command: str | None) -> None:
    """Log to the state directory's log file; headless commands also show warnings on stderr.

    The dashboard owns the terminal, so it logs to the file only; the demo keeps everything in
    its throwaway directory and logs nowhere.
    """
    if command == "demo":
        logging.getLogger().addHandler(logging.NullHandler())
        return
    from sync.logs import configure_logging
    from sync.paths import home_dir

    try:
        configure_logging(home_dir(), stderr_level=None if command is None else logging.WARNING)
    except OSError as exc:  # an unwritable state directory is reported by the command itself
        logging.basicConfig(level=logging.WARNING)
        log.warning("cannot write the log file: %s", exc)


@handled
def _dashboard() -> None:
    try:
        from tui.app import run_dashboard  # lazy: Textual loads only here
    except ImportError as exc:
        raise CliError(
            f"the dashboard is not available in this build ({exc}). "
            "The headless commands work: see `reminder-sync --help`."
        ) from None
    run_dashboard(None)


@main.command()
@handled
def demo() -> None:
    """Run the dashboard against both emulators with seeded data (no account needed)."""
    try:
        from tui.app import run_demo  # lazy: Textual loads only here
    except ImportError as exc:
        raise CliError(
            f"the demo is not available in this build ({exc}). "
            "`reminder-sync emulators --seed demo` serves the demo services headless."
        ) from None
    run_demo()


class EmulatorPair:
    """Both emulators served on 127.0.0.1 (one thread each). Also used by the demo."""

    def __init__(self, salesforce: Any, salesconnect: Any) -> None:
        self.salesforce = salesforce  # emulators.server.RunningServer, with .app
        self.salesconnect = salesconnect

    def describe(self) -> list[dict[str, str]]:
        """One line per service: what `connect` needs (emulator credentials, not secrets)."""
        sf_config = self.salesforce.app.state.emulator.config
        sc_config = self.salesconnect.app.state.emulator.config
        sc_root = self.salesconnect.base_url + "/api/v1"
        return [
            {
                "service": "salesforce",
                "base_url": self.salesforce.base_url,
                "token_url": self.salesforce.base_url + "/services/oauth2/token",
                "client_id": sf_config.client_id,
                "client_secret": sf_config.client_secret,
                "username": sf_config.username,
            },
            {
                "service": "salesconnect",
                "base_url": sc_root,
                "token_url": sc_root + "/oauth/token",
                "client_id": sc_config.client_id,
                "client_secret": sc_config.client_secret,
                "username": sc_config.username,
            },
        ]

    def stop(self) -> None:
        self.salesforce.stop()
        self.salesconnect.stop()


def start_emulators(
    *, salesforce_port: int = 0, salesconnect_port: int = 0, seed: str = "none"
) -> EmulatorPair:
    """Serve both emulators on loopback; `seed="demo"` fills them with a rep's week."""
    from emulators.salesconnect import create_app as salesconnect_app
    from emulators.salesforce import create_app as salesforce_app
    from emulators.server import serve_in_thread

    sf_app = salesforce_app()
    sc_app = salesconnect_app()
    if seed == "demo":
        try:
            from emulators.seed import seed_demo
        except ImportError:
            raise CliError(
                "demo seed data is not available in this build; use --seed none."
            ) from None
        seed_demo(sc_app.state.emulator, sf_app.state.emulator)
    sf_server = serve_in_thread(sf_app, salesforce_port)
    sf_server.app = sf_app  # type: ignore[attr-defined]
    try:
        sc_server = serve_in_thread(sc_app, salesconnect_port)
    except BaseException:
        sf_server.stop()
        raise
    sc_server.app = sc_app  # type: ignore[attr-defined]
    return EmulatorPair(sf_server, sc_server)


@main.command()
@click.option("--salesforce-port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--salesconnect-port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--seed", type=click.Choice(["demo", "none"]), default="none", show_default=True)
@handled
def emulators(salesforce_port: int, salesconnect_port: int, seed: str) -> None:
    """Serve both emulators on 127.0.0.1 until interrupted (one JSON line per service)."""
    try:
        pair = start_emulators(
            salesforce_port=salesforce_port, salesconnect_port=salesconnect_port, seed=seed
        )
    except OSError as exc:
        raise CliError(
            f"could not listen on 127.0.0.1 ({exc.strerror or exc}); choose other ports "
            "with --salesforce-port/--salesconnect-port, or 0 for free ones."
        ) from None
    try:
        for line in pair.describe():
            click.echo(json.dumps(line, sort_keys=True))
        sys.stdout.flush()
        _wait_for_interrupt()
    finally:
        pair.stop()


def _wait_for_interrupt() -> None:
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    import time

    while not stop:
        time.sleep(0.2)


@main.group()
def connect() -> None:
    """Log in to a service and keep its tokens in the OS keyring."""


def _read_secret(secret_stdin: bool, what: str) -> str | None:
    if not secret_stdin:
        return None
    value = sys.stdin.read().strip()
    if not value:
        raise CliError(f"--secret-stdin was given but no {what} arrived on standard input.")
    return value


@connect.command("salesforce")
@click.option("--login-url", required=True, help="Login host, e.g. https://login.salesforce.com")
@click.option("--client-id", required=True, help="The connected app's consumer key.")
@click.option(
    "--auth",
    type=click.Choice(["pkce", "client-credentials", "jwt"]),
    default="pkce",
    show_default=True,
)
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the client secret (or, for jwt, the private key PEM) from standard input.",
)
@click.option("--username", default=None, help="The user to log in as (jwt).")
@click.option("--client-secret-stdin", "secret_stdin_alias", is_flag=True, hidden=True)
@handled
def connect_salesforce(
    login_url: str,
    client_id: str,
    auth: str,
    secret_stdin: bool,
    username: str | None,
    secret_stdin_alias: bool,
) -> None:
    """Log in to Salesforce (PKCE in a browser, client credentials, or JWT bearer)."""
    from sync.connections import connect_salesforce as do_connect

    secret = _read_secret(secret_stdin or secret_stdin_alias, "secret")
    if auth == "client-credentials" and not secret:
        raise CliError(
            "client-credentials needs the client secret: pipe it in with --secret-stdin.",
            EXIT_USAGE,
        )
    if auth == "jwt" and (not secret or not username):
        raise CliError(
            "jwt needs --username and the private key PEM on standard input (--secret-stdin).",
            EXIT_USAGE,
        )
    info = _run(
        do_connect(
            _secrets(),
            login_url=login_url,
            client_id=client_id,
            auth=auth,
            secret=secret,
            username=username,
            announce=lambda url: click.echo(
                f"Open this URL in a browser to log in (waiting for the redirect):\n{url}",
                err=True,
            ),
        )
    )
    click.echo(f"Connected to Salesforce as {info}.")


@connect.command("salesconnect")
@click.option("--base-url", required=True, help="The Sales Connect API root.")
@click.option("--client-id", required=True)
@click.option("--token-url", default=None, help="Default: the contract's token endpoint.")
@click.option("--secret-stdin", is_flag=True, help="Read the client secret from standard input.")
@handled
def connect_salesconnect(
    base_url: str, client_id: str, token_url: str | None, secret_stdin: bool
) -> None:
    """Connect to Sales Connect with client credentials."""
    from sync.connections import connect_salesconnect as do_connect

    secret = _read_secret(secret_stdin, "client secret")
    if not secret:
        secret = click.prompt("Client secret", hide_input=True, err=True)
    info = _run(
        do_connect(
            _secrets(),
            base_url=base_url,
            client_id=client_id,
            token_url=token_url,
            secret=secret,
        )
    )
    click.echo(f"Connected to Sales Connect as {info}.")


@main.command()
@handled
def enable() -> None:
    """Turn "Sync reminder tasks with Salesforce" on (the next run is the first sync)."""

    async def body(engine: Any) -> Any:
        await engine.set_enabled(True, start=False)
        return engine.settings

    settings = _run(_with_engine(body))
    click.echo(f"Sync is on (enabled at {_when(settings.enabled_at)}).")


@main.command()
@handled
def disable() -> None:
    """Turn the sync off. Links and history are kept."""

    async def body(engine: Any) -> None:
        await engine.set_enabled(False)

    _run(_with_engine(body))
    click.echo("Sync is off.")


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing anywhere.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--confirm-deletes",
    is_flag=True,
    help="Let a run that the mass-delete guard stopped carry out its deletes.",
)
@handled
def sync(dry_run: bool, as_json: bool, confirm_deletes: bool) -> None:
    """Run one sync."""
    from sync.events import Outcome

    async def body(engine: Any) -> Any:
        return await engine.run_once(
            dry_run=dry_run, reason="cli", allow_mass_delete=confirm_deletes
        )

    summary = _run(_with_engine(body))
    if as_json:
        _emit_json(summary.as_dict())
    else:
        _print_summary(summary)
    code = {
        Outcome.DONE: EXIT_OK,
        Outcome.CONFLICTS: EXIT_WAITING,
        Outcome.GUARD: EXIT_WAITING,
        Outcome.LIMIT: EXIT_FAILURE,
        Outcome.FAILED: EXIT_FAILURE,
        Outcome.DISABLED: EXIT_FAILURE,
    }[summary.outcome]
    if code and not as_json and summary.message:
        click.echo(f"reminder-sync: {_one_line(summary.message)}", err=True)
    sys.exit(code)


def _counts(counts: dict[str, int]) -> str:
    return (
        f"Sales Connect {counts.get('salesconnect', 0)}, Salesforce {counts.get('salesforce', 0)}"
    )


def _print_summary(summary: Any) -> None:
    from sync.events import Outcome

    if summary.dry_run:
        click.echo(f"Dry run: {len(summary.planned)} planned change(s); nothing was written.")
        for change in summary.planned:
            click.echo(f"  {change.describe()}")
        if summary.conflicts:
            click.echo(f"  {summary.conflicts} conflict(s) would wait for you.")
        return
    if summary.outcome in (Outcome.FAILED, Outcome.LIMIT, Outcome.DISABLED):
        return  # the one-line message on stderr says it all
    click.echo(f"Sync {summary.outcome}: {summary.writes} write(s).")
    click.echo(f"  created: {_counts(summary.created)}")
    click.echo(f"  updated: {_counts(summary.updated)}")
    click.echo(f"  deleted: {_counts(summary.deleted)}")
    if summary.conflicts:
        click.echo(
            f"  {summary.conflicts} conflict(s) wait for you: "
            "`reminder-sync conflicts`, then `reminder-sync resolve ID --take SIDE`."
        )
    if summary.errors:
        click.echo(f"  {summary.errors} task(s) failed and will be retried; see `status`.")


@main.command()
@handled
def run() -> None:
    """Keep syncing until interrupted (Ctrl-C)."""
    from sync import events

    def printer(event: Any) -> None:
        if isinstance(event, events.SyncFinished):
            s = event.summary
            click.echo(
                f"{_when(s.finished_at)} sync {s.outcome}: {s.writes} write(s), "
                f"{s.conflicts} conflict(s), {s.errors} error(s)"
            )
        elif isinstance(event, events.SyncFailed):
            retry = f" (retry at {_when(event.retry_at)})" if event.retry_at else ""
            click.echo(f"sync failed [{event.category}]: {_one_line(event.message)}{retry}")

    async def body(engine: Any) -> None:
        engine.subscribe(printer)
        if not engine.settings.enabled:
            raise CliError("sync is off: run `reminder-sync enable` first.")
        click.echo("Syncing until interrupted (Ctrl-C)...")
        await engine.run_forever()

    try:
        _run(_with_engine(body))
    except KeyboardInterrupt:
        click.echo("Stopped.")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@handled
def status(as_json: bool) -> None:
    """Connections, last run, counts of links, conflicts and errors, API usage."""

    async def body(engine: Any) -> Any:
        return engine.status()

    st = _run(_with_engine(body, writable=False))
    if as_json:
        _emit_json(st.as_dict())
        return
    conn = ", ".join(
        f"{name}: {'connected' if ok else 'not connected'}" for name, ok in st.connections.items()
    )
    click.echo(f"Sync: {'on' if st.enabled else 'off'} ({st.state})")
    click.echo(f"Connections: {conn}")
    click.echo(f"Last run: {_when(st.last_run)} ({st.last_outcome or 'none'})")
    if st.last_message:
        click.echo(f"  {_one_line(st.last_message)}")
    click.echo(f"Links: {st.links}  Conflicts: {st.conflicts}  Errors: {st.errors}")
    if st.api_max:
        click.echo(f"Salesforce API: {st.api_used}/{st.api_max} today")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@handled
def conflicts(as_json: bool) -> None:
    """List the conflicts waiting for you."""
    from sync.engine import conflict_as_dict

    async def body(engine: Any) -> Any:
        return engine.conflicts()

    found = _run(_with_engine(body, writable=False))
    if as_json:
        _emit_json([conflict_as_dict(c) for c in found])
        return
    if not found:
        click.echo("No conflicts.")
        return
    for conflict in found:
        data = conflict_as_dict(conflict)
        click.echo(f"{conflict.id}  {data['kind']}  {data['summary']}")
        for name, values in data["values"].items():
            click.echo(
                f"    {name}: base={values['base']!r} salesconnect={values['salesconnect']!r} "
                f"salesforce={values['salesforce']!r}"
            )


@main.command()
@click.argument("conflict_id")
@click.option("--take", type=click.Choice(["salesconnect", "salesforce"]), required=True)
@handled
def resolve(conflict_id: str, take: str) -> None:
    """Settle one conflict by taking one side's values (applied by the next sync)."""
    from sync.engine import resolution_taking
    from sync.model import Side

    async def body(engine: Any) -> None:
        match = [c for c in engine.conflicts() if c.id == conflict_id]
        if not match:
            raise CliError(
                f"no conflict {conflict_id!r} is waiting; `reminder-sync conflicts` lists them.",
                EXIT_USAGE,
            )
        await engine.resolve(conflict_id, resolution_taking(match[0], Side(take)))

    _run(_with_engine(body))
    click.echo(f"Saved: {conflict_id} takes {take}. The next sync applies it.")


@main.command()
@click.argument("service", required=False, type=click.Choice(["salesforce", "salesconnect"]))
@handled
def logout(service: str | None) -> None:
    """Forget the tokens of one service (or both)."""
    from sync.connections import logout as do_logout

    services = [service] if service else ["salesforce", "salesconnect"]
    _run(do_logout(_secrets(), services))
    click.echo("Logged out of " + " and ".join(services) + ".")


if __name__ == "__main__":
    main()
