"""Bot API methods about files: sendPhoto, sendDocument, getFile.

Uploaded bytes are saved under the sandbox's files folder, so a test can open exactly what
the bot sent, and getFile paths are served back under /file/bot<token>/.
"""

from __future__ import annotations

import mimetypes
import struct
from pathlib import Path, PurePosixPath

from bot.sandbox.methods import caption_fields, deliver
from bot.sandbox.params import Params, Upload
from bot.sandbox.world import World, bad_request

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF markers


def _store_upload(world: World, upload: Upload, folder: str) -> dict:
    with world.lock:  # the number names the file, so it is taken and used under the lock
        number = len(world.files) + 1
        relative = f"{folder}/file_{number}{_suffix(upload)}"
        path = Path(world.files_dir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload.data)
        file_id = f"SBX{folder[:3].upper()}{number:08d}"
        record = {
            "file_id": file_id,
            "file_unique_id": f"U{number:08d}",
            "file_size": len(upload.data),
            "file_path": relative,
            "local_path": str(path),
            "file_name": upload.filename,
            "mime_type": upload.content_type,
        }
        world.files[file_id] = record
        return record


def _suffix(upload: Upload) -> str:
    """A file extension that says what the bytes are (PTB names raw bytes oddly)."""
    if upload.data.startswith(_PNG):
        return ".png"
    if upload.data.startswith(b"\xff\xd8"):
        return ".jpg"
    if mimetypes.guess_type(upload.filename)[0]:
        return PurePosixPath(upload.filename).suffix
    return mimetypes.guess_extension(upload.content_type) or ".bin"


def _media(world: World, p: Params, name: str, folder: str) -> tuple[dict, bytes | None]:
    """The file a send method names: a fresh upload, a file_id we issued, or a URL."""
    value = p.upload(name)
    if value is None:
        raise bad_request(f"there is no {name} in the request")
    if isinstance(value, Upload):
        return _store_upload(world, value, folder), value.data
    with world.lock:
        known = world.files.get(value)
    if known is not None:
        path = known.get("local_path")
        return known, Path(path).read_bytes() if path else None
    if value.startswith(("http://", "https://")):
        # Telegram would fetch the URL; the sandbox has no internet, so it keeps the link.
        return {"file_id": value, "file_unique_id": value, "file_name": value}, None
    raise bad_request("wrong file identifier/HTTP URL specified")


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG, or None when the bytes are not an image we read."""
    if data.startswith(_PNG) and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def send_photo(world: World, p: Params) -> dict:
    chat_id = p.chat_id()
    world.writable_chat(chat_id)
    caption = caption_fields(p)
    record, data = _media(world, p, "photo", "photos")
    size = image_size(data) if data is not None else (0, 0)
    if size is None:
        raise bad_request("IMAGE_PROCESS_FAILED")  # what Telegram says to bytes that aren't one
    photo = {key: record[key] for key in ("file_id", "file_unique_id")}
    photo |= {"file_size": record.get("file_size", 0), "width": size[0], "height": size[1]}
    return deliver(
        world,
        p,
        chat_id,
        {"photo": [photo]} | caption,
        source=p.text("caption"),
        file_path=record.get("local_path"),
    )


def send_document(world: World, p: Params) -> dict:
    chat_id = p.chat_id()
    world.writable_chat(chat_id)
    caption = caption_fields(p)
    record, _ = _media(world, p, "document", "documents")
    keys = ("file_id", "file_unique_id", "file_name", "mime_type", "file_size")
    document = {key: record[key] for key in keys if record.get(key) is not None}
    return deliver(
        world,
        p,
        chat_id,
        {"document": document} | caption,
        source=p.text("caption"),
        file_path=record.get("local_path"),
    )


def get_file(world: World, p: Params) -> dict:
    with world.lock:
        record = world.files.get(p.text("file_id") or "")
    if record is None or not record.get("file_path"):
        raise bad_request("invalid file_id")
    keys = ("file_id", "file_unique_id", "file_size", "file_path")
    return {key: record[key] for key in keys}
