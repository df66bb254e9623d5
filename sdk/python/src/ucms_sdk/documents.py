"""JSON documents in the plugin's own collections (``[capabilities.documents]``)."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass

from .errors import host_call


def _docs():
    from wit_world.imports import documents

    return documents


@dataclass
class Doc:
    id: str
    revision: int
    created_at_ms: int
    updated_at_ms: int
    data: dict


def _doc(raw) -> Doc:
    return Doc(raw.id, raw.revision, raw.created_at_ms, raw.updated_at_ms, _json.loads(raw.data))


def _call(f):
    return host_call("documents", f)


# Filters are tuples: ("eq", path, value), ("exists", path), ("and", [f, ...]), ("not", f).
def eq(path, value):
    return ("eq", path, value)


def ne(path, value):
    return ("ne", path, value)


def lt(path, value):
    return ("lt", path, value)


def gt(path, value):
    return ("gt", path, value)


def contains(path, value):
    return ("contains", path, value)


def and_(*filters):
    return ("and", list(filters))


def or_(*filters):
    return ("or", list(filters))


def not_(f):
    return ("not", f)


_COMPARISONS = {
    "eq": "Eq", "ne": "Ne", "lt": "Lt", "lte": "Lte", "gt": "Gt", "gte": "Gte",
    "in": "InList", "not_in": "NotIn", "contains": "Contains", "starts_with": "StartsWith",
}


def flatten(filter_):
    """The host's flattened filter: children before parents, the root last."""
    d = _docs()
    nodes = []

    def visit(f) -> int:
        op = f[0]
        if op in ("and", "or"):
            children = [visit(c) for c in f[1]]
            nodes.append(getattr(d, f"FilterNode_{op.capitalize()}")(children))
        elif op == "not":
            nodes.append(d.FilterNode_Not(visit(f[1])))
        elif op in ("exists", "is_null"):
            nodes.append(getattr(d, "FilterNode_Exists" if op == "exists" else "FilterNode_IsNull")(f[1]))
        else:
            comparison = d.Comparison(path=f[1], value=_json.dumps(f[2]))
            nodes.append(getattr(d, f"FilterNode_{_COMPARISONS[op]}")(comparison))
        return len(nodes) - 1

    root = visit(filter_)
    return d.Filter(nodes=nodes, root=root)


class Collection:
    """A named collection of JSON documents (created by its first write)."""

    def __init__(self, name: str):
        self.name = name

    def insert(self, value: dict, id: str | None = None) -> Doc:
        return _doc(_call(lambda: _docs().insert(self.name, id, _json.dumps(value))))

    def get(self, id: str) -> Doc | None:
        raw = _call(lambda: _docs().get(self.name, id))
        return None if raw is None else _doc(raw)

    def replace(self, id: str, value: dict, expected_revision: int | None = None) -> Doc:
        return _doc(_call(lambda: _docs().replace(self.name, id, _json.dumps(value), expected_revision)))

    def patch(self, id: str, patch: dict, expected_revision: int | None = None) -> Doc:
        return _doc(_call(lambda: _docs().patch(self.name, id, _json.dumps(patch), expected_revision)))

    def delete(self, id: str, expected_revision: int | None = None) -> bool:
        return _call(lambda: _docs().delete(self.name, id, expected_revision))

    def count(self, filter_=None) -> int:
        return _call(lambda: _docs().count(self.name, None if filter_ is None else flatten(filter_)))

    def query(self, filter_=None, sort=(), limit: int = 0, after: str | None = None, with_total: bool = False):
        """A page: ``(documents, next_cursor, total)``; ``-path`` sorts descending."""
        d = _docs()
        keys = [d.SortKey(path=s.lstrip("-"), descending=s.startswith("-")) for s in sort]
        spec = d.QuerySpec(
            filter=None if filter_ is None else flatten(filter_),
            sort=keys, limit=limit, offset=0, cursor=after, fields=None, with_total=with_total,
        )
        page = _call(lambda: d.query(self.name, spec))
        return [_doc(x) for x in page.documents], page.next_cursor, page.total


def collection(name: str) -> Collection:
    return Collection(name)
