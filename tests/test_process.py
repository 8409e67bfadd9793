"""db/process.py: every process logs alike and stops alike on a bad setting.

The entry points run as real processes here: what an operator sees on stderr, and the exit
code a supervisor sees, is the behaviour under test.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from db import process
from db.config import Settings

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ZE"
# Every process reads these; a developer's shell must not decide the test.
_SETTINGS_PREFIXES = ("DATABASE_", "PORT", "TELEGRAM_", "TWILIO_", "SMS_", "AGENCY_", "PUBLIC_")

ENTRY_POINTS = {
    "python -m bot": ([sys.executable, "-m", "bot"], "vasooli bot"),
    "python -m scheduler": ([sys.executable, "-m", "scheduler"], "vasooli worker"),
    "python -m cli worker": ([sys.executable, "-m", "cli", "worker"], "vasooli"),
    "python -m cli web": ([sys.executable, "-m", "cli", "web"], "vasooli"),
}


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    clean.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}", PYTHONPATH=str(ROOT), SMS_BACKEND="console"
    )
    return subprocess.run(
        args,
        cwd=tmp_path,  # no developer .env
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_bad_setting_is_one_short_line_and_exit_2(entry, tmp_path):
    args, prog = ENTRY_POINTS[entry]
    done = _run(args, tmp_path, PORT="abc", TELEGRAM_BOT_TOKEN=TOKEN)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{prog}: setting PORT is invalid: Input should be a valid integer, unable to parse "
        "string as an integer"
    ]


@pytest.mark.parametrize("entry", ["python -m bot", "python -m scheduler"])
def test_every_bad_setting_gets_its_own_line(entry, tmp_path):
    args, prog = ENTRY_POINTS[entry]
    done = _run(args, tmp_path, PORT="abc", AGENCY_TIMEZONE="Mars/Base", TELEGRAM_BOT_TOKEN=TOKEN)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{prog}: setting ") for line in lines)
    assert "PORT is invalid" in lines[0] and "AGENCY_TIMEZONE is invalid" in lines[1]
    assert "unknown time zone 'Mars/Base'" in lines[1]


def test_a_setting_an_adapter_needs_is_named_by_that_process(tmp_path):
    done = _run([sys.executable, "-m", "bot"], tmp_path)  # no TELEGRAM_BOT_TOKEN
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "vasooli bot: setting TELEGRAM_BOT_TOKEN is required for this command"
    ]


def test_one_log_format_and_no_secret_from_the_first_line(tmp_path):
    # Before any settings are read: a library logging a Bot API URL must not show the token.
    code = (
        "import logging\n"
        "from db import process\n"
        "process.setup_logging()\n"
        f"logging.getLogger('lib').info('GET https://api.telegram.org/bot{TOKEN}/getMe')\n"
        "logging.getLogger('httpx').info('a request line nobody asked for')\n"
        "logging.getLogger('lib').debug('a debug line')\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith(" INFO lib: GET https://api.telegram.org/bot***/getMe")
    assert TOKEN not in done.stderr


def test_verbose_shows_debug_and_the_quiet_libraries(tmp_path):
    code = (
        "import logging\n"
        "from db import process\n"
        "process.setup_logging(verbose=True)\n"
        "process.setup_logging()  # an adapter's main() keeps the command line's choice\n"
        "logging.getLogger('httpx').debug('request')\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0 and done.stderr.rstrip().endswith("DEBUG httpx: request")


def test_entry_point_turns_a_validation_error_into_lines(capsys):
    @process.entry_point("vasooli test")
    def main() -> None:
        Settings(_env_file=None, port="abc", currency="rupees")  # type: ignore[call-arg]

    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" is invalid")[0] for line in err] == [
        "vasooli test: setting PORT",
        "vasooli test: setting CURRENCY",
    ]


def test_log_to_file_takes_every_record_off_the_terminal(tmp_path):
    root = logging.getLogger()
    handlers, capture = root.handlers[:], logging.getLogger("py.warnings").handlers[:]
    try:
        process.log_to_file(tmp_path / "x.log")
        logging.getLogger("lib").warning("to the file")
        for handler in root.handlers:
            handler.flush()
        assert " WARNING lib: to the file" in (tmp_path / "x.log").read_text()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers = handlers
        logging.captureWarnings(False)
        logging.getLogger("py.warnings").handlers = capture
