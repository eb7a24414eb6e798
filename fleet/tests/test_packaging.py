"""packaging/fleet: the container image definition and the systemd units, checked without a
container engine or a running systemd: the image runs as a non-root user with `fleet` as its
entry point and a `serve` command the CLI accepts; every unit's command line parses with the
real `fleet` parser (a renamed option breaks this test, not a deployment); secrets come in as
credentials, never as values; `systemd-analyze verify` accepts the units where it is installed."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packaging" / "fleet"
UNITS = ["fleet.service", "fleet-ingest@.service", "fleet-purge.service", "fleet-purge.timer"]
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|PASSWD)\s*=\s*\S", re.I)


def instructions(text: str) -> list[tuple[str, str]]:
    """Containerfile -> [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        buf += " " + s.rstrip("\\").strip() if buf else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def exec_form(arg: str) -> list[str]:
    import json

    v = json.loads(arg)
    assert isinstance(v, list) and all(isinstance(x, str) for x in v), arg
    return v


def test_container_image_runs_fleet_as_non_root():
    ins = instructions((PKG / "Containerfile").read_text())
    stages = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
    assert len(stages) == 2                                   # build stage + slim run stage
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    for i in stages:
        image = ins[i][1].split()[0]
        assert re.fullmatch(r"docker\.io/library/python:3\.11-slim-bookworm", image), image
    assert py == ">=3.11"
    final = ins[stages[-1]:]
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    uid = users[-1].split(":")[0]
    assert any(k == "RUN" and f"--uid {uid}" in a for k, a in final)      # that user is created, not uid 0
    entry = exec_form(next(a for k, a in final if k == "ENTRYPOINT"))
    cmd = exec_form(next(a for k, a in final if k == "CMD"))
    assert entry == ["fleet"]
    # the command is one the real CLI accepts, and it is `fleet serve` on the exposed port
    from fleet.cli import build_parser
    from fleet.commands.serve import cmd_serve, parse_listen

    args = build_parser().parse_args(cmd)
    assert args.func is cmd_serve and args.workers >= 1
    host, port = parse_listen(args.listen)
    assert host == "0.0.0.0" and [a for k, a in final if k == "EXPOSE"] == [str(port)]
    assert any(k == "HEALTHCHECK" and "/healthz" in a for k, a in final)
    assert any(k == "ENV" and "/opt/fleet/bin" in a for k, a in final)
    # the console script `fleet` is what the image's PATH resolves
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fleet"] == "fleet.cli:main"


def test_container_build_copies_what_the_fleet_imports_and_no_secret():
    text = (PKG / "Containerfile").read_text()
    ins = instructions(text)
    copied = {a.split()[0] for k, a in ins if k == "COPY" and not a.startswith("--from")}
    assert copied == {"pyproject.toml", "contracts", "fleet"}
    for src in ("pyproject.toml", "README.md", "contracts", "fleet"):
        assert (ROOT / src).exists(), src
    assert any(k == "RUN" and "pip install ." in a for k, a in ins)
    for k, a in ins:
        if k in ("ENV", "ARG", "LABEL"):
            assert not SECRETISH.search(a), a
    # fleet + contracts are self-contained: no runtime import of another top-level package of the repo
    others = {"gateway", "testkit", "hil_tests", "bench", "firmware", "scripts"}
    for path in (ROOT / "fleet").rglob("*.py"):
        if "tests" in path.parts:
            continue
        for m in re.finditer(r"^\s*(?:from|import)\s+(\w+)", path.read_text(), re.M):
            assert m.group(1) not in others, f"{path.relative_to(ROOT)} imports {m.group(1)}"
    # migrations ship with the package (package-data)
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert "*.sql" in data and list((ROOT / "fleet" / "store" / "migrations").glob("*.sql"))


def unit(name: str) -> dict[str, list[str]]:
    """A unit file as {Section.Key: [values]} (keys may repeat, as in systemd)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in (PKG / name).read_text().splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("["):
            section = s.strip("[]")
            continue
        k, _, v = s.partition("=")
        out.setdefault(f"{section}.{k.strip()}", []).append(v.strip())
    return out


def fleet_argv(exec_start: str, env: dict[str, str]) -> list[str]:
    """The `fleet ...` arguments of an ExecStart (directly, or inside `/bin/sh -c '... exec fleet ...'`)."""
    words = shlex.split(exec_start)
    if words[:2] == ["/bin/sh", "-c"]:
        words = shlex.split(words[2].split(" exec ", 1)[1])
    assert words[0] == "/opt/fleet/bin/fleet", words
    subst = {**env, "%H": "host1", "%i": "1"}
    out = []
    for w in words[1:]:
        for k, v in subst.items():
            w = w.replace("${" + k + "}", v) if not k.startswith("%") else w.replace(k, v)
        out.append(w)
    return out


@pytest.mark.parametrize("name,command", [("fleet.service", ("serve",)),
                                          ("fleet-ingest@.service", ("monitor", "ingest")),
                                          ("fleet-purge.service", ("privacy", "purge"))])
def test_unit_commands_parse_with_the_real_cli(name, command):
    from fleet.cli import build_parser

    u = unit(name)
    env = dict(kv.split("=", 1) for line in u.get("Service.Environment", []) for kv in shlex.split(line))
    argv = fleet_argv(u["Service.ExecStart"][0], env)
    args = build_parser().parse_args(argv)
    n = len(command)
    assert any(tuple(argv[i:i + n]) == command for i in range(len(argv))), argv
    assert args.func.__module__ == f"fleet.commands.{command[0]}"
    assert u["Service.User"] == ["fleet"] and u["Service.NoNewPrivileges"] == ["yes"]
    assert u["Service.EnvironmentFile"] == ["/etc/fleet/fleet.env"]
    creds = {c.split(":")[0] for c in u["Service.LoadCredential"]}
    assert "pgpass" in creds and "PGPASSFILE=%d/pgpass" in " ".join(u["Service.Environment"])
    if name == "fleet-ingest@.service":
        assert args.client_id == "fleet-ingest-host1-1"                 # stable per machine and instance
        assert {"mqtt-password", "ingest-token"} <= creds
        assert "FLEET_MQTT_PASSWORD_FILE=%d/mqtt-password" in " ".join(u["Service.Environment"])
    text = (PKG / name).read_text()
    assert not re.search(r"^\s*Environment=.*(PASSWORD|TOKEN)=(?!%d/)", text, re.M)    # values never inline
    assert "--broker-password " not in text and "FLEET_TOKEN=" not in text.replace('FLEET_TOKEN="$(cat', "")


def test_purge_timer_runs_the_purge_nightly_in_oslo_time():
    t = unit("fleet-purge.timer")
    assert t["Timer.Unit"] == ["fleet-purge.service"] and (PKG / "fleet-purge.service").exists()
    assert t["Timer.OnCalendar"] == ["*-*-* 02:30:00 Europe/Oslo"] and t["Timer.Persistent"] == ["true"]
    assert t["Install.WantedBy"] == ["timers.target"]
    assert unit("fleet-purge.service")["Service.Type"] == ["oneshot"]
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "calendar", t["Timer.OnCalendar"][0]], capture_output=True, text=True)
        assert r.returncode == 0 and "Next elapse" in r.stdout, r.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """`systemd-analyze verify` on copies whose ExecStart binary exists (the venv is not installed here)."""
    stub = tmp_path / "fleet"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    names = {"fleet-ingest@.service": "fleet-ingest@1.service"}
    paths = []
    for name in UNITS:
        dst = tmp_path / names.get(name, name)
        dst.write_text((PKG / name).read_text().replace("/opt/fleet/bin/fleet", str(stub)))
        paths.append(str(dst))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if str(tmp_path) in line or "fleet" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_environment_example_has_no_secret_and_names_known_settings():
    text = (PKG / "fleet.env.example").read_text()
    keys = {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert {"FLEET_DB", "FLEET_LISTEN", "FLEET_WORKERS", "FLEET_MQTT", "FLEET_MQTT_CA"} <= keys
    assert not any(SECRETISH.search(line) for line in text.splitlines() if not line.startswith("#"))
    assert "@" in next(line for line in text.splitlines() if line.startswith("FLEET_DB="))
    assert ":" not in next(line for line in text.splitlines()
                           if line.startswith("FLEET_DB=")).split("//", 1)[1].split("@", 1)[0]   # no password
