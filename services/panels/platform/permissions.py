"""What a principal may do to a resource, answered in one place.

Until per-resource grants exist, a panel's creator is its owner, an admin is owner of
everything in the tenant, and every other member of the tenant may read.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

from panels.platform.auth import Principal
from panels.platform.errors import Forbidden


class Access(IntEnum):
    NONE = 0
    VIEWER = 1
    EDITOR = 2
    OWNER = 3


class Owned(Protocol):
    @property
    def user_id(self) -> str: ...


def panel_access(principal: Principal, panel: Owned) -> Access:
    if principal.is_admin or panel.user_id == principal.user_id:
        return Access.OWNER
    return Access.VIEWER


def require(granted: Access, needed: Access, action: str) -> None:
    """403 for a caller who can see the resource but may not do `action` to it."""
    if granted < needed:
        raise Forbidden(f"You may not {action}")


def require_panel_creator(principal: Principal) -> None:
    if principal.role not in ("admin", "builder"):
        raise Forbidden("Only admins and builders may create panels")
