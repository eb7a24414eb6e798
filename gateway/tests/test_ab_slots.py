"""A/B slots without the daemon: the artifact checks, the slot store's install steps, the
launcher's decisions, a full disk, and a power cut (the process killed) after every step
of an update — the gateway always comes back on a working version and says which.

The artifacts are real releases of this checkout (``pack``, as scripts/build-release.py
builds them); the "power cut" is ``os._exit`` in a child process right after a step is
durable, then the launcher decides on what is on disk.
"""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from contracts.release import generate_key, sign
from gateway import launch
from gateway.adapters.upgrade import SignedRelease, SlotStore, UpgradeError, check_importable, pack, running_slot
from gateway.adapters.upgrade import _ab, _bundle
from gateway.testing.supervisor import seed_factory

ROOT = Path(__file__).resolve().parents[2]
_BUILDS: dict[str, bytes] = {}


def build(version: str) -> bytes:
    if version not in _BUILDS:
        _BUILDS[version] = pack(ROOT, version)
    return _BUILDS[version]


@pytest.fixture(scope="module")
def key():
    return generate_key()[0]


def signed(key: bytes, blob: bytes, version: str = "0.2.0") -> SignedRelease:
    return SignedRelease.from_obj(sign(blob, f"gateway-{version}.tar.gz", "gateway", version, key).as_obj())


@pytest.fixture
def slots(tmp_path) -> Path:
    """A slots directory as the launcher leaves it at first start: slot a = factory 0.1.0."""
    seed_factory(build("0.1.0"), "0.1.0", tmp_path / "factory")
    d = tmp_path / "slots"
    choice = launch.choose(d, factory=tmp_path / "factory")
    assert (choice.slot, choice.version, choice.trial) == ("a", "0.1.0", False)
    return d


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every path under ``d`` with its content (None for directories and links)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(d.rglob("*")):
        out[str(p.relative_to(d))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def file_(name: str, data: bytes = b"x = 1\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


GOOD = [file_("VERSION", b"0.2.0\n"), file_("app/gateway/__init__.py"), file_("app/gateway/__main__.py"),
        file_("app/contracts/__init__.py")]


def junk_cases() -> dict[str, tuple[bytes, str]]:
    real = build("0.2.0")
    return {
        "random 20 kB": (bytes(range(256)) * 80, "not a complete .tar.gz"),
        "truncated": (real[: len(real) // 2], "not a complete .tar.gz"),
        "traversal": (tar_gz(GOOD + [file_("app/../../etc/cron.d/x")]), "path traversal"),
        "absolute": (tar_gz(GOOD + [file_("/etc/passwd")]), "absolute path"),
        "outside app": (tar_gz(GOOD + [file_("lib/evil.py")]), "outside app/ and VERSION"),
        "symlink": (tar_gz(GOOD + [special("app/gateway/x.py", tarfile.SYMTYPE, "/etc/shadow")]), "is a symlink"),
        "hard link": (tar_gz(GOOD + [special("app/gateway/y.py", tarfile.LNKTYPE, "VERSION")]), "is a hard link"),
        "device": (tar_gz(GOOD + [special("app/dev", tarfile.CHRTYPE)]), "is a device"),
        "fifo": (tar_gz(GOOD + [special("app/fifo", tarfile.FIFOTYPE)]), "is a FIFO"),
        "duplicate": (tar_gz(GOOD + [file_("app/gateway/__init__.py")]), "appears twice"),
        "file as a directory": (tar_gz(GOOD + [file_("app/x"), file_("app/x/y.py")]), "which is a file"),
        "no entry point": (tar_gz(GOOD[:2] + GOOD[3:]), "lacks app/gateway/__main__.py"),
        "no VERSION": (tar_gz(GOOD[1:]), "no VERSION file"),
        "other VERSION": (tar_gz([file_("VERSION", b"0.3.0\n")] + GOOD[1:]), "VERSION says '0.3.0'"),
    }


@pytest.mark.parametrize("case", list(junk_cases()))
def test_bad_artifacts_are_refused_before_anything_is_written(slots, key, case):
    blob, problem = junk_cases()[case]
    before = snapshot(slots)
    store = SlotStore(slots)
    with pytest.raises(UpgradeError) as ei:
        store.install(signed(key, blob), blob, cmd_id="c1", deployment="d")
    assert ei.value.reason == "bad_artifact" and problem in str(ei.value), str(ei.value)
    assert "build it with scripts/build-release.py" in str(ei.value)
    assert snapshot(slots) == before


def test_size_caps(slots, key, monkeypatch):
    blob = tar_gz(GOOD + [file_("app/gateway/big.bin", b"\0" * 5000)])
    monkeypatch.setattr(_bundle, "MAX_FILE_BYTES", 4096)
    with pytest.raises(UpgradeError, match="big.bin' is 5000 bytes"):
        SlotStore(slots).install(signed(key, blob), blob, cmd_id="c", deployment="d")
    monkeypatch.setattr(_bundle, "MAX_FILE_BYTES", 1 << 20)
    monkeypatch.setattr(_bundle, "MAX_MEMBERS", 3)
    with pytest.raises(UpgradeError, match="more than 3 members"):
        SlotStore(slots).install(signed(key, blob), blob, cmd_id="c", deployment="d")


def test_install_places_a_checked_release_in_the_inactive_slot_and_switch_marks_it_pending(slots, key):
    blob = build("0.2.0")
    store = SlotStore(slots)
    assert store.install(signed(key, blob), blob, cmd_id="d1:gw:u", deployment="d1") == "b"
    assert (slots / "b" / "VERSION").read_text().strip() == "0.2.0"
    assert '__version__ = "0.2.0"' in (slots / "b" / "app" / "gateway" / "_version.py").read_text()
    rel = json.loads((slots / "b" / "release.json").read_text())
    assert rel["version"] == "0.2.0" and rel["cmd_id"] == "d1:gw:u"
    st = json.loads((slots / "state.json").read_text())
    assert st["installing"] is None and st["active"] == "a" and store.current == "a"
    assert oct((slots / "b" / "app" / "gateway" / "__init__.py").stat().st_mode & 0o777) == "0o644"
    assert not list(slots.glob(".*.new"))
    store.switch("b", "0.2.0", cmd_id="d1:gw:u", deployment="d1", deadline_s=90)
    assert store.current == "b" and store.pending["attempts"] == 0
    with pytest.raises(UpgradeError, match="still on trial") as ei:      # no second install while on trial
        store.install(signed(key, blob), blob, cmd_id="d2:gw:u", deployment="d2")
    assert ei.value.reason == "busy"
    # the launcher gives the trial its one start, then the daemon in it commits
    choice = launch.choose(slots)
    assert (choice.slot, choice.version, choice.trial) == ("b", "0.2.0", True)
    assert running_slot(slots, str(slots / "b" / "app" / "gateway" / "__init__.py")) == "b"
    assert running_slot(slots, str(ROOT / "gateway" / "__init__.py")) is None
    trial = SlotStore(slots)
    trial.mark_running()
    trial.commit({"phase": "committed", "version": "0.2.0"})
    st = json.loads((slots / "state.json").read_text())
    assert (st["active"], st["version"], st["previous"]) == ("b", "0.2.0", {"slot": "a", "version": "0.1.0"})
    assert st["results"]["d1:gw:u"][0] == "ok" and st["unreported"] == ["d1:gw:u"]
    assert launch.choose(slots).as_dict() == {"slot": "b", "version": "0.2.0", "trial": False,
                                              "notes": ["starting gateway 0.2.0 from slot b"]}


def test_a_release_that_does_not_import_is_refused_and_the_old_slot_b_survives(slots, key):
    store = SlotStore(slots)
    good = build("0.2.0")
    store.install(signed(key, good), good, cmd_id="c0", deployment="d")
    before = snapshot(slots / "b")
    broken = pack(ROOT, "0.3.0", replace={"app/gateway/__init__.py": b"import no_such_module_anywhere\n"})
    with pytest.raises(UpgradeError, match="does not import: ModuleNotFoundError") as ei:
        store.install(signed(key, broken, "0.3.0"), broken, cmd_id="c1", deployment="d")
    assert ei.value.reason == "broken_release"
    assert snapshot(slots / "b") == before and not (slots / ".b.new").exists()
    assert json.loads((slots / "state.json").read_text())["installing"] is None
    liar = pack(ROOT, "0.3.0", replace={"app/gateway/_version.py": b'__version__ = "9.9.9"\n'})
    with pytest.raises(UpgradeError, match="says version '9.9.9'"):
        store.install(signed(key, liar, "0.3.0"), liar, cmd_id="c2", deployment="d")


def _full_disk_opener(after_files: int):
    n = {"files": 0}

    def opener(path: Path):
        n["files"] += 1
        if n["files"] > after_files:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return _bundle._open_new(path)
    return opener


def test_full_disk_during_install_leaves_the_running_slot_and_no_temporary_copy(slots, key, tmp_path):
    """Injected ENOSPC in the middle of unpacking (the tmpfs variant below needs root)."""
    blob = build("0.2.0")
    store = SlotStore(slots)
    before = snapshot(slots / "a")
    with pytest.raises(UpgradeError) as ei:
        store.install(signed(key, blob), blob, cmd_id="c", deployment="d", opener=_full_disk_opener(40))
    assert ei.value.reason == "no_space" and "free some space" in str(ei.value)
    assert not (slots / ".b.new").exists() and not (slots / "b").exists()
    assert snapshot(slots / "a") == before
    st = json.loads((slots / "state.json").read_text())
    assert (st["installing"], st["pending"], st["active"]) == (None, None, "a")
    assert launch.choose(slots).slot == "a"


def _can_mount_tmpfs(d: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    d.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        return False
    subprocess.run(["umount", str(d)], check=True)
    return True


def test_full_disk_on_a_real_small_filesystem(tmp_path, key, monkeypatch):
    mnt = tmp_path / "small"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and tmpfs to fill a real filesystem; the injected ENOSPC test covers the path")
    seed_factory(build("0.1.0"), "0.1.0", tmp_path / "factory")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(mnt)], check=True)
    try:
        slots = mnt / "slots"
        launch.choose(slots, factory=tmp_path / "factory")         # slot a fills most of it
        before = snapshot(slots)
        blob = build("0.2.0")
        store = SlotStore(slots)
        with pytest.raises(UpgradeError, match="no space for the release") as ei:     # checked before writing
            store.install(signed(key, blob), blob, cmd_id="c", deployment="d")
        assert ei.value.reason == "no_space" and snapshot(slots) == before
        monkeypatch.setattr(_ab, "_free_bytes", lambda d: None)    # no pre-check: the kernel says ENOSPC
        with pytest.raises(UpgradeError, match="no space left") as ei:
            SlotStore(slots).install(signed(key, blob), blob, cmd_id="c", deployment="d")
        assert not (slots / ".b.new").exists() and not (slots / "b").exists()
        assert launch.choose(slots).slot == "a"
        check_importable(slots / "a" / "app", "0.1.0", slots_dir=slots)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ---------------------------------------------------------------- the launcher's decisions

def _pending(slots: Path, **over) -> None:
    seed_factory(build("0.2.0"), "0.2.0", slots / "b")
    st = json.loads((slots / "state.json").read_text())
    st["pending"] = {"slot": "b", "version": "0.2.0", "cmd_id": "d:gw:u", "deployment": "d", "deadline_s": 60,
                     "attempts": 1, "running_at": None, **over}
    launch.write_state(slots, st)


@pytest.mark.parametrize("over, now_after, reason", [
    ({}, 0, "crash_at_start"),
    ({"running_at": 1000.0}, 30, "killed_before_commit"),
    ({"running_at": 1000.0}, 500, "commit_deadline"),
])
def test_launcher_rolls_back_a_trial_that_died_and_says_why(slots, over, now_after, reason):
    _pending(slots, **over)
    choice = launch.choose(slots, now=1000.0 + now_after)
    assert (choice.slot, choice.version, choice.trial) == ("a", "0.1.0", False)
    assert choice.notes[0].startswith(f"{reason}: gateway 0.2.0 (slot b)")
    assert choice.notes[0].endswith("rolled back to gateway 0.1.0 (slot a)")
    st = json.loads((slots / "state.json").read_text())
    assert st["pending"] is None and st["last_rollback"]["reason"] == reason
    status, detail = st["results"]["d:gw:u"]
    assert status == "error" and detail["reason"] == reason and detail["rolled_back"] is True
    assert detail["deployment"] == "d" and st["unreported"] == ["d:gw:u"]
    assert os.readlink(slots / "current") == "a"


def test_launcher_when_slots_are_deleted_by_hand(slots, tmp_path):
    _pending(slots, attempts=0)
    shutil.rmtree(slots / "b")                                  # the pending slot
    choice = launch.choose(slots)
    assert choice.slot == "a" and choice.notes[0].startswith("slot_missing: slot b with gateway 0.2.0 is missing")
    # committed b, previous a: b deleted → a, "the previous known good"
    seed_factory(build("0.2.0"), "0.2.0", slots / "b")
    st = json.loads((slots / "state.json").read_text())
    st.update(active="b", version="0.2.0", previous={"slot": "a", "version": "0.1.0"})
    launch.write_state(slots, st)
    shutil.rmtree(slots / "b" / "app" / "gateway")             # incomplete counts as missing
    choice = launch.choose(slots)
    assert (choice.slot, choice.version) == ("a", "0.1.0")
    assert any("starting gateway 0.1.0 from slot a (the previous known good) instead of 0.2.0 from slot b" in n
               for n in choice.notes), choice.notes
    # both gone: the factory release comes back; no factory either: a clear error, exit 2
    shutil.rmtree(slots / "a")
    shutil.rmtree(slots / "b")
    choice = launch.choose(slots, factory=tmp_path / "factory")
    assert choice.version == "0.1.0" and any("installed the factory release 0.1.0" in n for n in choice.notes)
    shutil.rmtree(slots / choice.slot)
    r = subprocess.run([sys.executable, str(ROOT / "gateway" / "launch.py"), "--slots", str(slots),
                        "--factory", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no gateway software in" in r.stderr and "reinstall the package" in r.stderr


def test_launcher_with_a_corrupt_state_uses_the_backup_then_what_is_on_disk(slots):
    _pending(slots, attempts=0)
    assert launch.choose(slots).trial                          # state.json.bak now holds the attempts-0 state
    (slots / "state.json").write_text('{"format": 1, "active": "a", "vers')      # torn by hand / bad SD card
    choice = launch.choose(slots)
    assert choice.notes[0].startswith("state.json is corrupt") and "using the backup state.json.bak" in choice.notes[0]
    (slots / "state.json").write_bytes(b"\xff\x00")
    (slots / "state.json.bak").write_text("[]")
    os.remove(slots / "current")
    os.symlink("b", slots / "current")
    choice = launch.choose(slots)
    assert (choice.slot, choice.version) == ("b", "0.2.0")
    assert "rebuilt from the slots on disk, gateway 0.2.0 in slot b (where current pointed)" in choice.notes[0]
    assert choice.notes[-1] == "starting gateway 0.2.0 from slot b"
    assert json.loads((slots / "state.json").read_text())["active"] == "b"


def test_launcher_runs_standalone_and_reports_status(slots, tmp_path):
    """Standard library only: a copy outside the repository, with -I -S (no site-packages)."""
    alone = tmp_path / "usr-lib" / "launch.py"
    alone.parent.mkdir()
    shutil.copy(ROOT / "gateway" / "launch.py", alone)
    r = subprocess.run([sys.executable, "-I", "-S", str(alone), "--slots", str(slots), "--status", "--json"],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["state"]["active"] == "a" and doc["slot_versions"] == {"a": "0.1.0", "b": None}
    r = subprocess.run([sys.executable, "-I", "-S", str(alone), "--slots", str(slots), "--status"],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert "active      a  gateway 0.1.0" in r.stdout
    assert launch.gateway_argv("/usr/bin/python3", "/etc/wt-gateway/gateway.toml", []) == [
        "/usr/bin/python3", "-P", "-m", "gateway", "run", "--config", "/etc/wt-gateway/gateway.toml"]
    env = launch.gateway_env(slots, "a", "/usr/lib/wt-gateway/vendor", base={})
    assert env["PYTHONPATH"] == f"{(slots / 'a' / 'app').resolve()}:/usr/lib/wt-gateway/vendor"
    assert env["WT_GW__UPGRADES__SLOTS_DIR"] == str(slots.resolve())


def test_switch_to_previous_by_hand(slots, key):
    blob = build("0.2.0")
    store = SlotStore(slots)
    store.install(signed(key, blob), blob, cmd_id="c", deployment="d")
    store.switch("b", "0.2.0", cmd_id="c", deployment="d", deadline_s=60)
    launch.choose(slots)
    SlotStore(slots).commit({"phase": "committed"})
    r = subprocess.run([sys.executable, str(ROOT / "gateway" / "launch.py"), "--slots", str(slots),
                        "--switch-to-previous"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "switched to gateway 0.1.0 in slot a (was 0.2.0 in slot b)" in r.stdout
    assert launch.choose(slots).version == "0.1.0"


# ---------------------------------------------------------------- power cut after every step

STEPS = ["install.begin", "install.unpacked", "install.checked", "install.old_aside", "install.placed",
         "install.done", "switch.pending", "switch.linked", "commit.done"]

CHILD = r"""
import json, os, sys
from pathlib import Path
from gateway.adapters.upgrade import SignedRelease, SlotStore
slots, art, sig, step = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
def fault(name):
    if name == step:
        os._exit(137)                 # the power is gone: no cleanup, no finally
blob = art.read_bytes()
rel = SignedRelease.from_obj(json.loads(sig.read_text()))
store = SlotStore(slots, fault=fault)
if step == "commit.done":             # the trial process, killed right after its commit
    store.mark_running()
    store.commit({"phase": "committed", "version": "0.2.0"})
else:
    slot = store.install(rel, blob, cmd_id="d:gw:u", deployment="d")
    store.switch(slot, "0.2.0", cmd_id="d:gw:u", deployment="d", deadline_s=60)
os._exit(0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_power_cut_after_each_step_comes_back_on_a_working_version(tmp_path, key, step):
    """Slot b holds an older release (0.0.9) so the install has to move it aside too."""
    seed_factory(build("0.1.0"), "0.1.0", tmp_path / "factory")
    slots = tmp_path / "slots"
    launch.choose(slots, factory=tmp_path / "factory")
    seed_factory(build("0.0.9"), "0.0.9", slots / "b")
    st = json.loads((slots / "state.json").read_text())
    st["previous"] = {"slot": "b", "version": "0.0.9"}
    launch.write_state(slots, st)
    blob = build("0.2.0")
    (tmp_path / "art").write_bytes(blob)
    (tmp_path / "sig").write_text(json.dumps(signed(key, blob).as_obj()))
    if step == "commit.done":                       # get to the trial start first, without faults
        store = SlotStore(slots)
        store.switch(store.install(signed(key, blob), blob, cmd_id="d:gw:u", deployment="d"), "0.2.0",
                     cmd_id="d:gw:u", deployment="d", deadline_s=60)
        assert launch.choose(slots).trial
    r = subprocess.run([sys.executable, "-c", CHILD, str(slots), str(tmp_path / "art"), str(tmp_path / "sig"), step],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 137, r.stderr

    choice = launch.choose(slots)                   # the next start
    check_importable(slots / choice.slot / "app", choice.version, slots_dir=slots)   # it runs, and says which
    assert choice.notes[-1].startswith(f"starting gateway {choice.version} from slot {choice.slot}")
    expect = {"switch.pending": ("b", "0.2.0", True), "switch.linked": ("b", "0.2.0", True),
              "commit.done": ("b", "0.2.0", False)}.get(step, ("a", "0.1.0", False))
    assert (choice.slot, choice.version, choice.trial) == expect, choice.notes
    if choice.trial:                                # the trial dies too before committing: back to a
        again = launch.choose(slots)
        assert (again.slot, again.version) == ("a", "0.1.0") and again.notes[0].startswith("crash_at_start")
    else:
        daemon = SlotStore(slots)                   # what the daemon does at start after an interrupted install
        daemon.cleanup()
        interrupted = daemon.interrupted_install()
        if step.startswith("install.") and step != "install.done":
            assert interrupted is not None and interrupted["reason"] == "interrupted"
            assert "nothing was switched, 0.1.0 keeps running" in interrupted["error"]
        assert not list(slots.glob(".*.new")) and not list(slots.glob(".*.old"))
