"""A bounded YAML loader: every YAML document edgesift reads goes through load_yaml().

PyYAML's SafeLoader is safe from code execution, not from size: a few hundred bytes of nested aliases ("billion
laughs") expand into gigabytes in whatever walks the result, deep nesting ends in a RecursionError, a
5000-digit integer raises ValueError from int() (Python's digit limit), and a repeated key silently replaces
the first (a second `spool:` block erasing `spool.path`). Each of these is refused here with a YAMLError that
carries the line, so callers report it like any other syntax error.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIASES = 32  # anchors are handy for a few repeated blocks; more is an expansion attack
MAX_DEPTH = 32  # the deepest edgesift config is 4-5 levels
MAX_SCALAR_CHARS = 65_536
MAX_INT_DIGITS = 40  # well above any 64-bit value or byte count


class BoundedYAMLError(yaml.MarkedYAMLError):
    """A document refused by a bound; `problem` says which, `problem_mark` where."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise BoundedYAMLError(f"more than {MAX_ALIASES} aliases (*name)", event.start_mark)
        elif isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR_CHARS:
            raise BoundedYAMLError(f"a value longer than {MAX_SCALAR_CHARS} characters", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise BoundedYAMLError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    first = seen[key].start_mark.line + 1
                    raise BoundedYAMLError(f"duplicate key {key_node.value[:64]!r} (first on line {first})",
                                           key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(ch.isalnum() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise BoundedYAMLError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark)
        return super().construct_yaml_int(node)  # type: ignore[no-any-return]


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
BoundedLoader.add_constructor("tag:yaml.org,2002:map", BoundedLoader.construct_yaml_map)


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """(the node tree, for line numbers; the Python value) of one document. Raises yaml.YAMLError."""
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def load_yaml(text: str) -> Any:
    """yaml.safe_load with the bounds above. Raises yaml.YAMLError (BoundedYAMLError for a bound)."""
    return compose_and_load(text)[1]
