"""The `vasooli` command line, in-process and as a real process, on a temporary SQLite file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, make_url, select
from sqlalchemy.orm import Session

from cli.main import main
from db.config import Settings
from db.models import AuditEvent, Loan, Role
from db.services.staff.members import check_invite
from db.session import make_engine

CODE = re.compile(r"^[A-Za-z0-9_-]{12,64}$")
ROOT = Path(__file__).resolve().parent.parent
# Settings a developer's shell might carry; each test starts from the defaults.
_ENV = (
    "DATABASE_URL",
    "PORT",
    "TELEGRAM_BOT_USERNAME",
    "TELEGRAM_BOT_TOKEN",
    "AGENCY_TIMEZONE",
    "INVITE_VALID_HOURS",
)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite file as DATABASE_URL, run from a folder without a .env file."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _count(url: str, entity) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.scalar(select(func.count()).select_from(entity))
    finally:
        engine.dispose()


def _invite_role(url: str, code: str) -> Role:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return check_invite(session, code=code)
    finally:
        engine.dispose()


def test_upgrade_then_invite_prints_a_working_code(db_url, capsys):
    code, out, _ = _run(capsys, "db", "upgrade")
    assert code == 0 and re.fullmatch(
        r"database at sqlite:///.*cli\.db is up to date "
        r"\(revision \w+\)",
        out[-1],
    )
    code, out, _ = _run(capsys, "invite", "--role", "manager", "--hours", "5")
    assert code == 0 and CODE.match(out[-1])
    assert "manager" in out[0] and "(5 hours)" in out[0] and "Asia/Kolkata" in out[0]
    assert not any("t.me" in line for line in out)
    assert _invite_role(db_url, out[-1]) == Role.MANAGER
    assert _count(db_url, AuditEvent) == 1


def test_invite_prints_the_deep_link_when_the_bot_username_is_set(db_url, capsys, monkeypatch):
    assert _run(capsys, "db", "upgrade")[0] == 0
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "@VasooliBot")
    code, out, _ = _run(capsys, "invite", "--role", "admin")
    invite = out[-1]
    assert code == 0 and CODE.match(invite)
    assert f"https://t.me/VasooliBot?start={invite}" in out[-2]
    assert _invite_role(db_url, invite) == Role.ADMIN


def test_invite_before_upgrade_says_what_to_run(db_url, capsys):
    code, out, err = _run(capsys, "invite", "--role", "admin")
    assert code == 2 and out == []
    assert len(err) == 1 and "run `vasooli db upgrade` first" in err[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["invite", "--role", "boss"], "invalid choice: 'boss'"),
        (["invite", "--role", "agent", "--hours", "0"], "--hours"),
        (["invite", "--role", "agent", "--hours", "abc"], "--hours"),
        (["seed", "--loans", "-5"], "--loans"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(db_url, capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "abc"), ("DATABASE_URL", "mysql://x"), ("AGENCY_TIMEZONE", "Mars/Base")],
)
def test_a_malformed_setting_exits_2_naming_it(db_url, capsys, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    code, out, err = _run(capsys, "staff", "list")
    assert code == 2 and out == []
    assert len(err) == 1 and f"setting {name} is invalid" in err[0]


def test_seed_then_staff_list(db_url, capsys):
    assert _run(capsys, "db", "upgrade")[0] == 0
    code, out, _ = _run(capsys, "staff", "list")
    assert code == 0 and "vasooli invite --role admin" in out[0]
    code, out, _ = _run(capsys, "seed", "--loans", "40", "--borrowers", "30", "--agents", "2")
    assert code == 0 and out[0].startswith("Added 40 loans") and "paid_off" in out[1]
    assert _count(db_url, Loan) == 40
    code, out, _ = _run(capsys, "staff", "list")
    assert code == 0 and out[0].split() == [
        "id",
        "name",
        "role",
        "state",
        "telegram",
        "id",
        "last",
        "login",
    ]
    assert [line.split()[-4] for line in out[1:]] == ["admin", "manager", "agent", "agent"]
    assert all(line.endswith("never") and "900000" in line for line in out[1:])


def test_seed_needs_a_borrower_for_loans(db_url, capsys):
    assert _run(capsys, "db", "upgrade")[0] == 0
    code, _, err = _run(capsys, "seed", "--loans", "5", "--borrowers", "0")
    assert code == 2 and err == ["vasooli: --borrowers must be at least 1 when --loans is above 0"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["db"],
        ["db", "upgrade"],
        ["invite"],
        ["staff"],
        ["staff", "list"],
        ["seed"],
        ["bot"],
        ["worker"],
        ["web"],
        ["run"],
    ],
)
def test_every_command_has_help(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: vasooli")


def test_upgrade_and_list_on_the_test_database(db_url, capsys, monkeypatch, engine, database_url):
    if database_url.startswith("postgresql"):  # the test server trusts; the password is unused
        database_url = str(make_url(database_url).set(password="s3cret").render_as_string(False))
    monkeypatch.setenv("DATABASE_URL", database_url)
    code, out, _ = _run(capsys, "db", "upgrade")
    assert code == 0 and "is up to date" in out[0] and "s3cret" not in out[0]
    assert _run(capsys, "staff", "list")[0] == 0


def test_an_unreachable_database_is_one_line_without_the_password(db_url, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://vasooli:s3cret@127.0.0.1:1/nowhere")
    code, out, err = _run(capsys, "db", "upgrade")
    assert code == 1 and out == [] and len(err) == 1
    assert err[0].startswith("vasooli: the database at postgresql+psycopg://vasooli@127.0.0.1:1/")
    assert "s3cret" not in err[0]


def test_bot_without_a_token_stops_with_one_line(db_url, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bot"])
    err = capsys.readouterr().err.splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "TELEGRAM_BOT_TOKEN" in err[0]


def _process(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _ENV}
    clean.update(DATABASE_URL=f"sqlite:///{tmp_path / 'proc.db'}", PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        args,
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_as_a_real_process(tmp_path):
    module = [sys.executable, "-m", "cli"]
    script = Path(sys.executable).with_name("vasooli")
    upgrade = _process([*module, "db", "upgrade"], tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "is up to date" in upgrade.stdout
    runner = [str(script)] if script.exists() else module
    invite = _process(
        [*runner, "invite", "--role", "admin"], tmp_path, TELEGRAM_BOT_USERNAME="VasooliBot"
    )
    assert invite.returncode == 0, invite.stderr
    lines = invite.stdout.splitlines()
    assert CODE.match(lines[-1]) and f"?start={lines[-1]}" in lines[-2]
    bad = _process([*runner, "invite", "--role", "admin"], tmp_path, PORT="abc")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "vasooli: setting PORT is invalid: Input should be a valid integer, unable to parse "
        "string as an integer"
    ]


def test_env_example_lists_every_setting_with_its_default():
    example = ROOT / ".env.example"
    names = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example.read_text(), re.M))
    assert names == {name.upper() for name in Settings.model_fields}
    assert Settings(_env_file=example).model_dump() == Settings(_env_file=None).model_dump()
