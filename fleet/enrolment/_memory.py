"""In-memory EnrolmentRepo: the fake for service tests (same contract as the SQL adapter)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from fleet.enrolment._model import CodeRecord, GatewayIdentity


@dataclass
class MemoryEnrolmentRepo:
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    gateways: dict[str, GatewayIdentity] = field(default_factory=dict)
    release_keys: list[str] = field(default_factory=list)

    def add_code(self, rec: CodeRecord) -> None:
        self.codes[rec.code_hash] = rec

    def code(self, code_hash: str) -> CodeRecord | None:
        return self.codes.get(code_hash)

    def mark_used(self, code_hash: str, *, at: float, peer: str | None) -> bool:
        rec = self.codes.get(code_hash)
        if rec is None or rec.used_at is not None:
            return False
        self.codes[code_hash] = replace(rec, used_at=at, used_from=peer)
        return True

    def put_identity(self, ident: GatewayIdentity) -> bool:
        had = ident.gateway_id in self.gateways
        self.gateways[ident.gateway_id] = ident
        return had

    def identity(self, gateway_id: str) -> GatewayIdentity | None:
        return self.gateways.get(gateway_id)

    def identities(self) -> list[GatewayIdentity]:
        return [self.gateways[g] for g in sorted(self.gateways)]

    def revoke(self, gateway_id: str, *, at: float) -> bool:
        ident = self.gateways.get(gateway_id)
        if ident is None or ident.revoked_at is not None:
            return False
        self.gateways[gateway_id] = replace(ident, revoked_at=at)
        return True

    def release_keys_pem(self) -> list[str]:
        return list(self.release_keys)
