"""Telegram's HTML parse mode, applied the way the Bot API applies it.

The rules and error texts follow tdlib's parser (what the real Bot API runs), so the sandbox
refuses exactly what Telegram refuses: a test then catches user text that reached an HTML
message unescaped. Offsets are counted in UTF-16 code units and errors name byte offsets of
the UTF-8 text, as Telegram does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE = {
    "i": "italic",
    "em": "italic",
    "b": "bold",
    "strong": "bold",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
}
_NAMED_ENTITIES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_SPACES = frozenset(b" \t\r\n\v\0")  # tdlib counts the terminating NUL as a space
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_NAME_TOKEN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_LT, _GT, _AMP, _SLASH, _EQ = ord("<"), ord(">"), ord("&"), ord("/"), ord("=")
# A bot command as Telegram detects it in a user's text: not glued to a word, '/', '<' or '>'.
_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")


class HtmlError(ValueError):
    """The text is not valid Telegram HTML; the message is what Telegram says after the colon."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of every Telegram entity offset."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict]:
    """The bot_command entities Telegram attaches to a user's message."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in _COMMAND.finditer(text)
    ]


def parse_html(source: str) -> tuple[str, list[dict]]:
    """Turn Telegram HTML into (plain text, entities), or raise HtmlError like Telegram."""
    return _Parser(source.encode("utf-8")).run()


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 offset in the output where the tag opened
    begin: int  # byte position in the output where the tag opened


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.out = bytearray()
        self.utf16 = 0
        self.stack: list[_Open] = []
        self.entities: list[dict] = []

    def at(self, i: int) -> int:
        # Past the end reads as NUL, as in tdlib's C string.
        return self.data[i] if i < len(self.data) else 0

    def run(self) -> tuple[str, list[dict]]:
        i = 0
        while i < len(self.data):
            c = self.data[i]
            if c == _AMP:
                code, end = self.decode_entity(i)
                if code:
                    self.emit_code_point(code)
                    i = end
                    continue
            if c != _LT:
                if c & 0xC0 != 0x80:  # first byte of a character; 4-byte ones are 2 units
                    self.utf16 += 2 if c >= 0xF0 else 1
                self.out.append(c)
                i += 1
                continue
            i = (self.end_tag(i) if self.at(i + 1) == _SLASH else self.start_tag(i)) + 1
        if self.stack:
            raise HtmlError(f"Can't find end tag corresponding to start tag {self.stack[-1].tag}")
        return self.finish()

    def finish(self) -> tuple[str, list[dict]]:
        try:
            text = self.out.decode("utf-8")
        except UnicodeDecodeError:
            raise HtmlError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            ) from None
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)  # a lone <code> has no language in the Bot API
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return text, self.entities

    def emit_code_point(self, code: int) -> None:
        self.utf16 += 2 if code > 0xFFFF else 1
        self.out += chr(code).encode("utf-8", "surrogatepass")

    def decode_entity(self, pos: int) -> tuple[int, int]:
        """(code point, position after it), or (0, pos) when '&' is just a character."""
        end, code = pos + 1, 0
        if self.at(end) == ord("#"):
            end += 1
            hexadecimal = self.at(end) == ord("x")
            end += hexadecimal
            digits, base = (_HEX, 16) if hexadecimal else (_DIGITS, 10)
            while self.at(end) in digits:
                code = code * base + int(chr(self.at(end)), base)
                end += 1
            if code == 0 or code >= 0x10FFFF or end - pos >= 10:
                return 0, pos
        else:
            while chr(self.at(end)).isascii() and chr(self.at(end)).isalpha():
                end += 1
            code = _NAMED_ENTITIES.get(self.data[pos + 1 : end], 0)
            if not code:
                return 0, pos
        return code, end + (self.at(end) == ord(";"))

    def start_tag(self, begin: int) -> int:
        """Parse '<tag ...>' at begin; return the position of its '>'."""
        i = begin + 1
        while self.at(i) not in _SPACES and self.at(i) != _GT:
            i += 1
        if self.at(i) == 0:
            raise HtmlError(f"Unclosed start tag at byte offset {begin}")
        tag = self.data[begin + 1 : i].decode("utf-8", "replace").lower()
        if tag not in SUPPORTED_TAGS:
            raise HtmlError(f'Unsupported start tag "{tag}" at byte offset {begin}')
        i, argument = self.attributes(tag, begin, i)
        if tag == "span" and argument != "spoiler":
            raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        self.stack.append(_Open(tag, argument, self.utf16, len(self.out)))
        return i

    def skip_spaces(self, i: int) -> int:
        while self.at(i) != 0 and self.at(i) in _SPACES:
            i += 1
        return i

    def attributes(self, tag: str, begin: int, i: int) -> tuple[int, str]:
        argument = ""
        while self.at(i) != _GT:
            i = self.skip_spaces(i)
            if self.at(i) == _GT:
                break
            name_start = i
            while self.at(i) not in _SPACES and self.at(i) != _EQ:
                i += 1
            name = self.data[name_start:i].decode("utf-8", "replace")
            if not name:
                raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
            i = self.skip_spaces(i)
            if self.at(i) != _EQ:
                raise HtmlError(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{tag}" at byte offset {begin}'
                )
            i = self.skip_spaces(i + 1)
            if self.at(i) == 0:
                raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            i, value = self.attribute_value(i)
            if self.at(i) == 0:
                raise HtmlError(f"Unclosed start tag at byte offset {begin}")
            argument = _tag_argument(tag, name, value, argument)
        return i, argument

    def attribute_value(self, i: int) -> tuple[int, str]:
        quote = self.at(i)
        if quote not in (ord("'"), ord('"')):
            start = i
            while self.at(i) in _NAME_TOKEN:
                i += 1
            if self.at(i) not in _SPACES and self.at(i) != _GT:
                raise HtmlError(f"Unexpected end of name token at byte offset {start}")
            return i, self.data[start:i].decode().lower()
        i += 1
        value = bytearray()
        while self.at(i) not in (quote, 0):
            code, end = self.decode_entity(i) if self.at(i) == _AMP else (0, i)
            if code:
                value += chr(code).encode("utf-8", "surrogatepass")
                i = end
                continue
            value.append(self.at(i))
            i += 1
        return i + (self.at(i) == quote), value.decode("utf-8", "replace")

    def end_tag(self, begin: int) -> int:
        """Parse '</tag>' at begin; return the position of its '>'."""
        if not self.stack:
            raise HtmlError(f"Unexpected end tag at byte offset {begin}")
        i = begin + 2
        while self.at(i) not in _SPACES and self.at(i) != _GT:
            i += 1
        name = self.data[begin + 2 : i].decode("utf-8", "replace").lower()
        i = self.skip_spaces(i)
        if self.at(i) != _GT:
            raise HtmlError(f"Unclosed end tag at byte offset {begin}")
        top = self.stack[-1]
        if name and name != top.tag:
            raise HtmlError(
                f'Unmatched end tag at byte offset {begin}, expected "</{top.tag}>", '
                f'found "</{name}>"'
            )
        if self.utf16 > top.offset:  # empty elements make no entity
            self.close(top)
        self.stack.pop()
        return i

    def close(self, top: _Open) -> None:
        entity: dict = {"offset": top.offset, "length": self.utf16 - top.offset}
        if top.tag in _SIMPLE:
            entity["type"] = _SIMPLE[top.tag]
        elif top.tag == "tg-emoji":
            if not top.argument.isdigit() or int(top.argument) == 0:
                raise HtmlError("Invalid custom emoji identifier specified")
            entity |= {"type": "custom_emoji", "custom_emoji_id": top.argument}
        elif top.tag == "a":
            url = top.argument or self.out[top.begin :].decode("utf-8", "replace")
            if not url.strip():
                return  # Telegram drops a link it cannot use rather than failing
            entity |= _link_entity(url)
        elif self.merge_pre_code(top, entity):
            return
        else:
            entity["type"] = top.tag
            if top.argument:  # a code's language, kept only until a matching <pre> closes
                entity["language"] = top.argument
        self.entities.append(entity)

    def merge_pre_code(self, top: _Open, entity: dict) -> bool:
        """<pre><code class="language-x"> (either nesting) is one pre entity with a language."""
        last = self.entities[-1] if self.entities else None
        if last is None or (last["offset"], last["length"]) != (entity["offset"], entity["length"]):
            return False
        if top.tag == "pre" and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
            return True
        if top.tag == "code" and last["type"] == "pre" and top.argument and "language" not in last:
            last["language"] = top.argument
            return True
        return False


def _tag_argument(tag: str, name: str, value: str, current: str) -> str:
    if tag == "a" and name == "href":
        return value
    if tag == "code" and name == "class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == "class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "tg-emoji" and name == "emoji-id":
        return value
    return current


def _link_entity(url: str) -> dict:
    match = re.fullmatch(r"tg://user\?id=(\d+)", url)
    if match:
        return {
            "type": "text_mention",
            "user": {"id": int(match[1]), "is_bot": False, "first_name": ""},
        }
    return {"type": "text_link", "url": url}
