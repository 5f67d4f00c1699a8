"""Reading text files the way every reader here needs: UTF-8 lines, delimited records, JSON Lines.

One owner for the checks a person's file meets (missing, a folder, binary, not UTF-8, invalid JSON, a row with
the wrong number of fields), so the task data reader and the unlabelled-text reader refuse the same bad input
with the same message, naming the file and line. Plain Python: no torch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgedistill.core.errors import DataError


def decode_lines(path: Path) -> list[str]:
    """The file's lines as text (a UTF-8 BOM dropped); a :class:`DataError` naming the file, line and byte
    when it is missing, a folder, binary or not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, expected a text file") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror})") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path} is not a text file (a NUL byte at offset {nul})")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}, line {number}: not valid UTF-8 (byte {line[exc.start]:#04x} at column "
                f"{exc.start + 1}); re-save the file as UTF-8"
            ) from None
    if decoded and decoded[-1] == "":
        decoded.pop()
    return decoded


def column_index(path: Path, header: list[str], column: str, option: str) -> int:
    """Where ``column`` is in a file's header; a :class:`DataError` naming the option that sets it otherwise."""
    if column not in header:
        raise DataError(
            f"{path}: no column {column!r} (set it with {option}); the columns are: {', '.join(header)}"
        )
    return header.index(column)


def delimited_records(path: Path, delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header of a TSV / CSV file and its records as ``(line number, fields)``, blank lines skipped; a
    record whose field count is not the header's is a :class:`DataError` naming the file and line.

    TSV is read as GLUE ships it: quote characters are part of the text, never quoting. CSV follows the
    ``csv`` module (quoted fields may hold the delimiter).
    """
    lines = decode_lines(path)
    if not lines:
        raise DataError(f"{path} is empty")
    if delimiter == "\t":
        records: Iterator[tuple[int, list[str]]] = ((n, line.split("\t")) for n, line in enumerate(lines, start=1))
    else:
        reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
        records = ((reader.line_num, row) for row in reader)
    _, header = next(records)
    header = [name.strip() for name in header]

    def checked() -> Iterator[tuple[int, list[str]]]:
        for number, fields in records:
            if not any(f.strip() for f in fields):
                continue  # blank line
            if len(fields) != len(header):
                raise DataError(f"{path}, line {number}: expected {len(header)} fields ({', '.join(header)}), "
                                f"found {len(fields)}")
            yield number, fields

    return header, checked()


def json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file; a :class:`DataError` naming the
    file and line for invalid JSON or a value that is not an object."""
    for number, line in enumerate(decode_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record
