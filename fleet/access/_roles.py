"""Roles, permissions and the table that joins them (the only place access rules live)."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import AccessDenied


class Role(str, enum.Enum):
    TECHNICIAN = "technician"
    SUPPORT = "support"
    LOGISTICS = "logistics"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Permission(str, enum.Enum):
    STOCK_READ = "stock.read"              # items, stock levels, kits, device show
    STOCK_WRITE = "stock.write"            # receive, move, state changes, kit assembly
    CATALOG_WRITE = "catalog.write"        # device models, locations, reorder points, kit templates
    INSTALL_READ = "install.read"          # installations without personal data
    PERSONAL_READ = "install.personal"     # resident ref, checklist, consent, routing (audited)
    INSTALL_WRITE = "install.write"        # create/edit/commission/move/deinstall
    PRIVACY_PURGE = "privacy.purge"        # delete personal data after deinstallation
    CONFIG_READ = "config.read"
    CONFIG_WRITE = "config.write"
    UPGRADE_READ = "upgrade.read"
    UPGRADE_WRITE = "upgrade.write"        # releases and rollouts
    MONITOR_READ = "monitor.read"          # offline gateways, health
    STATS_READ = "stats.read"
    USER_ADMIN = "user.admin"
    AUDIT_READ = "audit.read"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TECHNICIAN: frozenset({P.STOCK_READ, P.STOCK_WRITE, P.INSTALL_READ, P.PERSONAL_READ, P.INSTALL_WRITE,
                                P.CONFIG_READ, P.UPGRADE_READ, P.MONITOR_READ}),
    Role.SUPPORT: frozenset({P.STOCK_READ, P.INSTALL_READ, P.PERSONAL_READ, P.CONFIG_READ, P.CONFIG_WRITE,
                             P.UPGRADE_READ, P.MONITOR_READ, P.STATS_READ}),
    Role.LOGISTICS: frozenset({P.STOCK_READ, P.STOCK_WRITE, P.CATALOG_WRITE, P.INSTALL_READ, P.MONITOR_READ}),
    Role.ADMIN: frozenset(Permission),
    Role.AUDITOR: frozenset({P.AUDIT_READ, P.STOCK_READ, P.INSTALL_READ, P.CONFIG_READ, P.UPGRADE_READ,
                             P.MONITOR_READ, P.STATS_READ}),
}


@dataclass(frozen=True)
class Actor:
    """Who runs a command: a user with a role, scoped to municipalities (None = all).

    ``permissions`` narrows the role (a scoped API token): the actor holds the permissions in
    both its role's row of :data:`ROLE_PERMISSIONS` and this set; None = the whole role.
    """

    name: str
    role: Role
    municipalities: frozenset[str] | None = None
    permissions: frozenset[Permission] | None = None

    @property
    def granted(self) -> frozenset[Permission]:
        role = ROLE_PERMISSIONS[self.role]
        return role if self.permissions is None else role & self.permissions

    def can(self, permission: Permission, municipality: str | None = None) -> bool:
        if permission not in self.granted:
            return False
        if municipality is None or self.municipalities is None:
            return True
        return municipality in self.municipalities

    def require(self, permission: Permission, municipality: str | None = None) -> None:
        if permission not in ROLE_PERMISSIONS[self.role]:
            raise AccessDenied(
                f"{self.name} ({self.role.value}) may not {permission.value}; ask an admin for a role that allows it",
                user=self.name, role=self.role.value, permission=permission.value,
            )
        if permission not in self.granted:
            raise AccessDenied(
                f"this token of {self.name} does not grant {permission.value}; use a token created with it",
                user=self.name, permission=permission.value,
            )
        if not self.can(permission, municipality):
            raise AccessDenied(
                f"{self.name} is not scoped to municipality {municipality}; ask an admin to add it "
                f"(fleet user scope {self.name} --add {municipality})",
                user=self.name, municipality=municipality, permission=permission.value,
            )

    def scope_sql(self, column: str) -> tuple[str, list[str]]:
        """A WHERE fragment limiting ``column`` to this actor's municipalities (for SQL adapters)."""
        from ..store._scope import in_scope

        return in_scope(column, self.municipalities)


def system_actor(service: str) -> Actor:
    """Actor for background services (monitoring workers, benches): admin, all municipalities."""
    return Actor(f"system:{service}", Role.ADMIN, None)
