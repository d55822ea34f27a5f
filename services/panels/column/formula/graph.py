"""Dependency cycles among calculated columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_ON_PATH = 1
_DONE = 2


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle of `graph` as a path that ends where it starts, or None.

    `graph` maps each calculated column to the names it reads; names match case-insensitively
    and a name that is not a key is a leaf. The search is an iterative depth-first search from
    each key in order, so the first cycle reachable from the first key is the one reported.
    """
    spelling = {name.lower(): name for name in graph}
    edges = {name.lower(): deps for name, deps in graph.items()}
    state: dict[str, int] = {}
    for root in edges:
        if root in state:
            continue
        state[root] = _ON_PATH
        path = [root]
        # One iterator per node on the path: where its own search continues when it is resumed.
        unexplored = [iter(edges[root])]
        while unexplored:
            for dependency in unexplored[-1]:
                key = dependency.lower()
                if key not in edges or state.get(key) == _DONE:
                    continue
                if state.get(key) == _ON_PATH:
                    cycle = [*path[path.index(key) :], key]
                    return [spelling[name] for name in cycle]
                state[key] = _ON_PATH
                path.append(key)
                unexplored.append(iter(edges[key]))
                break
            else:
                state[path.pop()] = _DONE
                unexplored.pop()
    return None
