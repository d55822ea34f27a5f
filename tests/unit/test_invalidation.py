"""The change-to-invalidation table covers every change type."""

from __future__ import annotations

from typing import get_args

from panels.change.invalidation import INVALIDATES, scopes_to_bump
from panels.change.schemas import ChangeType


def test_every_change_type_has_a_row() -> None:
    assert set(INVALIDATES) == set(get_args(ChangeType))


def test_changes_to_who_may_read_a_panel_invalidate_the_panel_and_its_lists() -> None:
    for change_type in ("panel_updated", "view_published", "view_unpublished", "view_deleted"):
        assert {"7", "all"} <= set(scopes_to_bump(change_type, 7)), change_type
