"""Config service: render, version, push, record applied reports, drift, diff."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from fleet.clock import Clock
from fleet.config._codec import config_topic
from fleet.config._diff import DiffEntry, diff
from fleet.config._errors import ConfigError, ConfigValidationError
from fleet.config._merge import Scope, content_hash, effective_config, set_path
from fleet.config._model import (AppliedReport, AppliedStatus, ConfigStore, ConfigVersion, Drift,
                                 GatewayConfigStatus, Publisher)
from fleet.config._schema import validate
from fleet.control import ENV_KEY_FILE, ControlKeyMissing, ControlSigner, MemorySeq, SeqSource, TxSeq


@dataclass
class ConfigService:
    store: ConfigStore
    clock: Clock
    pending_grace_s: float = 900.0
    signer: ControlSigner | None = None     # None: the key of FLEET_CONTROL_KEY_FILE, the store's sequence
    _memory_seq: MemorySeq = field(default_factory=MemorySeq, repr=False)

    # -- templates -------------------------------------------------------------
    def set_key(self, scope: Scope, scope_id: str, key: str, value: Any, *, by: str) -> Mapping[str, Any]:
        """Set ``key`` in a template; rejects (nothing stored) if any affected gateway would become invalid."""
        body = self.store.get_template(scope, scope_id) or {}
        new_body = set_path(body, key, value)
        from fleet.devicekeys._templates import refuse_typed_keys   # keys come from the key store, never typed

        refuse_typed_keys(body, new_body, device_scope=scope is Scope.DEVICE)
        if scope is Scope.DEVICE:
            candidate = {"devices": {scope_id: new_body}}
        else:
            candidate = new_body
        # Check the template's own keys first: a clear error before any merge.
        # A single template is partial: required keys may come from another layer (checked at push).
        problems = [p for p in validate(candidate) if "required" not in p.reason and "missing" not in p.reason]
        if problems:
            raise ConfigValidationError(problems)
        self.store.put_template(scope, scope_id, new_body, at=self.clock.time(), by=by)
        return new_body

    # -- rendering and versions ------------------------------------------------
    def render(self, gateway_id: str) -> dict[str, Any]:
        return effective_config(self.store.layers_for(gateway_id))

    def commit(self, gateway_id: str) -> ConfigVersion:
        """Validate the effective config and store it as a new version if its hash changed."""
        config = self.render(gateway_id)
        problems = validate(config)
        if problems:
            raise ConfigValidationError(problems)
        h = content_hash(config)
        latest = self.store.latest_version(gateway_id)
        if latest is not None and latest.hash == h:
            return latest
        v = ConfigVersion(gateway_id, (latest.version + 1) if latest else 1, h, config, self.clock.time())
        self.store.add_version(v)
        return v

    def control_signer(self) -> ControlSigner:
        """The fleet's control signer (docs/mqtt.md "Signed control messages"): the gateway refuses
        an unsigned push. The sequence is the store's row for the gateway, in this transaction."""
        if self.signer is not None:
            return self.signer
        tx = getattr(self.store, "tx", None)
        seq: SeqSource = TxSeq(tx) if tx is not None else self._memory_seq
        try:
            return ControlSigner.from_env(seq, clock=self.clock.time)
        except ControlKeyMissing as exc:
            raise ConfigError(str(exc), key=ENV_KEY_FILE, fix=f"set {ENV_KEY_FILE} for the fleet service "
                              "(fleet control-key generate PATH; its .pub is every gateway's [trust] fleet_key)") from None

    def push(self, gateway_id: str, publisher: Publisher) -> ConfigVersion:
        """Commit and publish the desired config (retained, QoS 1), signed for this gateway only."""
        signer = self.control_signer()                 # no key: nothing versioned, nothing sent
        v = self.commit(gateway_id)
        payload = signer.config(gateway_id, version=v.version, config=v.config, hash=v.hash)
        publisher.publish(config_topic(gateway_id), payload, qos=1, retain=True)
        now = self.clock.time()
        self.store.mark_pushed(gateway_id, v.version, now)
        return replace(v, pushed_at=now)

    def record_applied(self, report: AppliedReport) -> None:
        self.store.record_applied(report)

    # -- drift -----------------------------------------------------------------
    def status(self, gateway_id: str) -> GatewayConfigStatus:
        desired = self.store.latest_version(gateway_id)
        rep = self.store.applied(gateway_id)
        running = self.store.running_version(gateway_id)
        drift = self._drift(gateway_id, desired, rep)
        # running 0 = the gateway runs no fleet layer at all (its own file only): not foreign
        if (running and drift is not Drift.FOREIGN and (rep is None or running != rep.version)
                and self.store.get_version(gateway_id, running) is None):
            drift = Drift.FOREIGN      # its health says it runs a config the fleet never issued
        return GatewayConfigStatus(
            gateway_id, drift,
            desired.version if desired else None, desired.hash if desired else None,
            rep.version if rep else None, rep.status.value if rep else None,
            rep.error if rep else None, rep.reported_at if rep else None, running)

    def _drift(self, gateway_id: str, desired: ConfigVersion | None, rep: AppliedReport | None) -> Drift:
        if rep is not None:
            issued = self.store.get_version(gateway_id, rep.version)
            if issued is None or (rep.hash is not None and rep.hash != issued.hash):
                return Drift.FOREIGN
        if desired is None or desired.pushed_at is None:
            return Drift.NOT_PUSHED
        if rep is not None and rep.version == desired.version:
            if rep.status is AppliedStatus.REJECTED:
                return Drift.REJECTED
            try:
                rendered = content_hash(self.render(gateway_id))
            except ConfigError:
                rendered = desired.hash
            return Drift.IN_SYNC if rendered == desired.hash else Drift.STALE
        if self.clock.time() - desired.pushed_at <= self.pending_grace_s:
            return Drift.PENDING
        return Drift.LAGGING

    def status_all(self) -> list[GatewayConfigStatus]:
        return [self.status(g) for g in self.store.gateway_ids()]

    # -- diff ------------------------------------------------------------------
    def diff(self, gateway_id: str, from_version: int | None = None, to_version: int | None = None) -> tuple[str, str, list[DiffEntry]]:
        """Default: applied version -> desired (rendered now). With versions: between them."""
        def load(v: int) -> Mapping[str, Any]:
            got = self.store.get_version(gateway_id, v)
            if got is None:
                raise ConfigError(f"gateway {gateway_id} has no config version {v}", key="version", value=v,
                                  fix=f"list versions with: fleet config status {gateway_id} --json")
            return got.config

        if from_version is not None or to_version is not None:
            latest = self.store.latest_version(gateway_id)
            a_v = from_version if from_version is not None else (latest.version - 1 if latest else 0)
            b_v = to_version if to_version is not None else (latest.version if latest else 0)
            return f"v{a_v}", f"v{b_v}", diff(load(a_v), load(b_v))
        rep = self.store.applied(gateway_id)
        old: Mapping[str, Any] = {}
        old_label = "applied: none"
        if rep is not None:
            got = self.store.get_version(gateway_id, rep.version)
            old = got.config if got else {}
            old_label = f"applied v{rep.version}" + ("" if got else " (unknown to fleet)")
        return old_label, "desired (rendered now)", diff(old, self.render(gateway_id))
