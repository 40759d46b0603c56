"""YAML loading that remembers line numbers, so errors can say ``file:line: problem``."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import yaml


class YamlProblem(ValueError):
    """A problem in a YAML file, located by file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(self.render())

    def render(self) -> str:
        """``file:line: problem`` as compilers print it."""
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.problem}"


class LineDict(dict[str, Any]):
    """A mapping that knows the line of each key (1-based) and its own line."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """Line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence that knows the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        """Line of item ``index``."""
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def unknown_keys(node: LineDict, allowed: Collection[str], where: str = "") -> Iterator[tuple[int, str]]:
    """(line, problem) for every key of ``node`` that is not in ``allowed``."""
    prefix = f"{where}: " if where else ""
    for key in node:
        if key not in allowed:
            yield node.line_of(key), f"{prefix}unknown key {key!r} (expected one of {', '.join(sorted(allowed))})"


class _Loader(yaml.SafeLoader):
    """SafeLoader that records lines and refuses duplicate keys (PyYAML keeps the last)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool) or key is None:
            raise yaml.MarkedYAMLError(problem="a key must be a plain word", problem_mark=key_node.start_mark)
        key = str(key)
        if key in result:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r} (first on line {result.key_lines[key]})",
                problem_mark=key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # PyYAML raises a bare ValueError for 2021-13-01: give it a line like any other problem.
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.MarkedYAMLError(problem=f"{node.value!r} is not a valid date ({exc})",
                                   problem_mark=node.start_mark) from None


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load(path: str | Path, text: str | None = None) -> Any:
    """Parse a YAML file into ``LineDict``/``LineList``; syntax errors become ``YamlProblem``."""
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise YamlProblem(path, None, f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise YamlProblem(path, None, f"not UTF-8 text: {exc.reason}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise YamlProblem(path, line, problem or "invalid YAML") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(path, None, str(exc)) from None
