"""YAML a person wrote (a sweep spec, a `--set` value), read strictly: each mistake one line.

- A key written twice in one mapping is an error naming the key and both lines (plain PyYAML
  keeps the last one silently).
- A syntax error names its line and column.
- A file that is not UTF-8 names the byte, its offset and its line.
- Numbers in exponent form without a dot (`1e3`, `1e-4`) are numbers, as in YAML 1.2
  (PyYAML follows YAML 1.1 and reads them as strings).

Safe loading only: no Python objects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dipddpm.errors import ConfigError

# YAML 1.2's float forms (core schema) that YAML 1.1 lacks: a mantissa without a dot
FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)$")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads YAML 1.2 exponent floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, str] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then a key of the base: an override YAML allows
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable keys: the base class names them
            mark = key_node.start_mark
            at = f"{mark.line + 1}:{mark.column + 1}"
            if key in seen:
                raise ConfigError(f"{_where(key_node)}: key {key!r} is written twice in one "
                                  f"mapping (at {seen[key]} and {at}, line:column); keep one")
            seen[key] = at
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_12, list("-+0123456789."))


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"{mark.name}:{mark.line + 1}" if mark.name and mark.name != "<unicode string>" \
        else f"line {mark.line + 1}"


def load_text(text: str, source: str = "<text>") -> Any:
    """Parse YAML text; a syntax error or a duplicate key is a ConfigError naming `source`,
    the line and the column."""
    loader = StrictLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(str(e.problem or e.context or "syntax error").split())
        if e.context and e.context_mark and e.problem_mark:  # e.g. an unclosed { or [
            ctx = e.context_mark
            what += f" ({e.context} opened at {ctx.line + 1}:{ctx.column + 1})"
        raise ConfigError(f"{where}: not valid YAML: {what}; check the quoting and "
                          f"indentation there") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file: not UTF-8 is one error naming the byte, offset and line."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text: byte 0x{data[e.start]:02x} at offset "
                          f"{e.start} (line {line}) is {e.reason}; save the file as UTF-8 "
                          f"(e.g. iconv -f latin1 -t utf-8)") from None
    return load_text(text, str(path))


def load_value(raw: str, where: str) -> Any:
    """One command-line value read as YAML (`--set key=VALUE`): 1e-3, true, [1, 2], null;
    an empty value is the empty string. `where` names the option in the error."""
    if not raw.strip():
        return ""
    try:
        return load_text(raw, where)
    except ConfigError as e:
        raise ConfigError(f"{where}: the value {raw!r} is not valid YAML "
                          f"({str(e).split('not valid YAML: ', 1)[-1].split(';')[0]}); "
                          f"close the bracket, or quote a plain string") from None
