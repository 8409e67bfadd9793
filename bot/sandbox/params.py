"""Reading a Bot API request's parameters the way Telegram does.

python-telegram-bot sends every parameter as a form field whose value is a string: plain
strings as they are, everything else JSON-encoded (numbers, booleans, and nested objects
such as reply_markup). With files it switches to multipart/form-data. Other clients send
JSON bodies or query strings. Telegram accepts all of these, so the sandbox does too, and
each method asks for a parameter as the type it expects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from bot.sandbox.world import ApiError, bad_request

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart request."""

    filename: str
    content_type: str
    data: bytes


class Params:
    """One request's parameters, converted on demand like the Bot API converts them."""

    def __init__(self, values: dict[str, object], uploads: dict[str, Upload] | None = None):
        self.values = values
        self.uploads = uploads or {}

    def plain(self) -> dict[str, object]:
        """The parameters as recorded for tests: uploads by name, not bytes."""
        files = {name: f"<upload {u.filename}>" for name, u in self.uploads.items()}
        return dict(self.values) | files

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value) if isinstance(value, dict | list) else str(value)

    def integer(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(_scalar(value))
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str) -> float | None:
        """A number that may have a fraction (PTB sends timedelta timeouts as floats)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(_scalar(value))
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def obj(self, name: str) -> object:
        """A nested object: JSON text in forms, already decoded in JSON bodies."""
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            what = "reply keyboard markup" if name == "reply_markup" else name
            raise bad_request(f"can't parse {what} JSON object") from None

    def chat_id(self, name: str = "chat_id") -> int:
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        try:
            return int(_scalar(value))
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None  # e.g. an @username nobody has

    def upload(self, name: str) -> Upload | str | None:
        """A file parameter: an upload (by its own name or attach://x), or a file_id/URL."""
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = self.uploads.get(value.removeprefix("attach://"))
            if attached is None:
                raise bad_request(f"there is no {name} in the request")
            return attached
        if name in self.uploads:
            return self.uploads[name]
        return value if isinstance(value, str) and value else None


def _scalar(value: object) -> str | float:
    """A JSON or form value that int() and float() may read; TypeError for a list or object."""
    if isinstance(value, str | int | float):
        return value
    raise TypeError(f"not a number: {type(value).__name__}")


def parse_body(content_type: str, body: bytes, query: dict[str, str]) -> Params:
    """Params from a request's query string and body, whatever its encoding."""
    values: dict[str, object] = dict(query)
    uploads: dict[str, Upload] = {}
    mime = content_type.split(";")[0].strip().lower()
    if not body:
        pass
    elif mime == "application/json":
        values.update(_json_object(body))
    elif mime == "application/x-www-form-urlencoded":
        values.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif mime == "multipart/form-data":
        fields, uploads = parse_multipart(content_type, body)
        values.update(fields)
    return Params(values, uploads)


def _json_object(body: bytes) -> dict:
    try:
        decoded = json.loads(body)
    except ValueError:
        raise bad_request("can't parse JSON encoded request") from None
    if not isinstance(decoded, dict):
        raise bad_request("can't parse JSON encoded request")
    return decoded


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    """Split a multipart/form-data body into text fields and uploaded files."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise ApiError(400, "Bad Request: multipart boundary is missing")
    fields: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    # Every delimiter but the first is preceded by CRLF, which belongs to the delimiter.
    parts = (b"\r\n" + body).split(b"\r\n--" + match[1].encode("latin-1"))
    for part in parts[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = _part_headers(head)
        disposition = headers.get("content-disposition", "")
        name = _disposition_param(disposition, "name")
        filename = _disposition_param(disposition, "filename")
        if name is None:
            continue
        if filename is None:
            fields[name] = data.decode("utf-8")
        else:
            kind = headers.get("content-type", "application/octet-stream")
            uploads[name] = Upload(filename, kind, data)
    return fields, uploads


def _part_headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def _disposition_param(disposition: str, key: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{key}="((?:[^"\\]|\\.)*)"', disposition)
    if match:
        return match[1].replace('\\"', '"')
    match = re.search(rf"(?:^|;)\s*{key}=([^;\s]+)", disposition)
    return match[1] if match else None
