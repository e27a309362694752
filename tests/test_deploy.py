"""`server/deploy/`: each file checked by a real tool, and the nginx site used for real.

- the nginx site (TLS server block, with a throwaway self-signed certificate made here) passes
  `nginx -t` inside a minimal nginx.conf;
- the systemd unit passes `systemd-analyze verify` with no warning (its ExecStart pointed at
  this checkout's `ferry-server`, since /opt/ferry does not exist here);
- the compose file is parsed and validated by Debian's `docker-compose config` (it needs no
  engine), with the values of `.env.example`, and refused without the secrets; the
  Dockerfile is checked for what the deployment relies on (no engine here can build it);
- real nginx on a loopback port, using the site's upstream/map blocks and its locations file,
  in front of two real `python -m server` workers on PostgreSQL: desktop devices (the
  real local app and sync engine, `tests.syncworld`) sync through it, hear each other's
  changes over the proxied WebSocket within seconds (their scheduled sync is 30 s away), a
  push bigger than nginx's default 1 MiB body limit goes through, and the server sees the
  client address nginx forwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from server.settings import Settings
from sync.hlc import HybridClock, new_node_id
from sync.ids import new_id
from tests.servers import ROOT, ferry_server_process, free_port
from tests.syncworld import sync_world, wait_for

DEPLOY = ROOT / "server" / "deploy"
SITE = DEPLOY / "nginx" / "ferry.conf"
LOCATIONS = DEPLOY / "nginx" / "ferry-locations.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (./ferry.sh test installs it)")


def _site_with(text: str, upstreams: list[str], prefix: Path) -> str:
    """The site with its upstream pointed at `upstreams` and its include made absolute."""
    servers = "".join(f"    server {u};\n" for u in upstreams)
    text, count = re.subn(r"(upstream ferry_server \{\n)(?:\s*server [^\n]*\n)+", lambda m: m.group(1) + servers, text)
    assert count == 1, "the site has no `upstream ferry_server` block"
    return text.replace("/etc/nginx/ferry-locations.conf", str(prefix / "ferry-locations.conf"))


def _nginx_conf(prefix: Path, http_body: str) -> Path:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(LOCATIONS, prefix / "ferry-locations.conf")
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log info;\nevents {{ worker_connections 512; }}\n"
        f"http {{\n  access_log {prefix}/access.log;\n"
        f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n"
        f"{http_body}\n}}\n"
    )
    return conf


def _nginx(*args: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    assert NGINX is not None
    return subprocess.run(
        [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


# -- static checks ---------------------------------------------------------------------------


@needs_nginx
def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ferry.example.com",
         "-keyout", str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    site = _site_with(SITE.read_text(), ["127.0.0.1:8000"], tmp_path).replace("/etc/nginx/tls", str(tls))
    (tmp_path / "ferry.conf").write_text(site)
    conf = _nginx_conf(tmp_path, f"  include {tmp_path}/ferry.conf;")
    result = _nginx("-t", "-c", str(conf), prefix=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr

    # The check can fail: a broken site is refused.
    (tmp_path / "ferry.conf").write_text(site.replace("keepalive 32;", "keepalive;", 1))
    assert _nginx("-t", "-c", str(conf), prefix=tmp_path).returncode != 0


def test_nginx_site_essentials() -> None:
    site, locations = SITE.read_text(), LOCATIONS.read_text()
    assert "ssl_certificate " in site and "ssl_certificate_key " in site
    assert "return 301 https://" in site  # plain HTTP only redirects
    ws = locations[locations.index("location /ws") :]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $ferry_connection;" in ws
    # Matches the server's push limit (Settings.max_push_bytes).
    limit = int(re.search(r"client_max_body_size (\d+)m;", locations).group(1))  # type: ignore[union-attr]
    assert limit * 1024 * 1024 == Settings.model_fields["max_push_bytes"].default
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme", "Host $host"):
        assert f"proxy_set_header {header};" in locations


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "ferry-server.service").read_text()
    assert "ExecStart=/opt/ferry/bin/ferry-server\n" in unit
    here = ROOT / ".venv" / "bin" / "ferry-server"
    if not here.exists():
        pytest.skip("no .venv/bin/ferry-server to point ExecStart at")
    path = tmp_path / "ferry-server.service"
    good = unit.replace("/opt/ferry/bin/ferry-server", str(here))
    path.write_text(good)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify only warns about unknown keys, so any output about the unit is a failure too.
    assert result.returncode == 0, result.stderr
    assert "ferry-server.service" not in result.stderr, result.stderr
    path.write_text(good.replace("Restart=on-failure", "Restart=sometimes"))  # the check can fail
    bad = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert "ferry-server.service:" in bad.stderr and "sometimes" in bad.stderr, bad.stderr


def test_dockerfile_and_compose_essentials() -> None:
    docker = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", docker, re.M)) == 2 and " AS build" in docker  # multi-stage
    assert re.search(r"^USER ferry$", docker, re.M)
    assert "HEALTHCHECK" in docker and "/api/health" in docker
    assert 'ENTRYPOINT ["ferry-server"]' in docker
    for path in re.findall(r"^COPY (\S+) ", docker, re.M):
        if not path.startswith("--"):
            assert (ROOT / path).exists(), path


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: ./ferry.sh test installs it (apt-get install docker-compose)"
    return subprocess.run(
        [tool, "--project-directory", str(DEPLOY), "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        # Only what the file asks for: none of this machine's own settings.
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        cwd=DEPLOY,
    )


def test_compose_file_is_valid_and_needs_its_secrets() -> None:
    import yaml

    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    result = _compose_config(example)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"db", "server", "nginx"}
    server, nginx = services["server"], services["nginx"]
    assert server["environment"]["FERRY_DATABASE_URL"] == (
        f"postgresql+psycopg://ferry:{example['POSTGRES_PASSWORD']}@db:5432/ferry"
    )
    assert server["command"] == ["--workers", example["FERRY_WORKERS"]]
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    assert nginx["depends_on"]["server"]["condition"] == "service_healthy"
    assert "ports" not in server and "ports" not in services["db"]  # reachable only through nginx
    for volume in nginx["volumes"]:
        source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
        if not source.endswith("/tls"):
            assert Path(source).exists(), source

    for secret in ("POSTGRES_PASSWORD", "FERRY_SECRET_KEY"):
        missing = _compose_config({k: v for k, v in example.items() if k != secret})
        assert missing.returncode != 0 and secret in missing.stderr, missing.stderr


# -- real nginx in front of real workers -----------------------------------------------------


@contextmanager
def nginx_in_front_of(prefix: Path, upstreams: list[str]) -> Iterator[str]:
    site = _site_with(SITE.read_text(), upstreams, prefix)
    head = site[: site.index("\nserver {")]  # the upstream and map blocks, as written
    port = free_port()
    conf = _nginx_conf(
        prefix, f"{head}\nserver {{\n  listen 127.0.0.1:{port};\n  include {prefix}/ferry-locations.conf;\n}}"
    )
    checked = _nginx("-t", "-c", str(conf), prefix=prefix)
    assert checked.returncode == 0, checked.stderr
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (prefix / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: nginx's master stops its worker
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@needs_nginx
@pytest.mark.postgres
def test_devices_sync_through_nginx_in_front_of_two_workers(tmp_path: Path, pg_url: str) -> None:
    env = {"FERRY_SECRET_KEY": "n" * 64, "FERRY_TRUSTED_PROXIES": "127.0.0.1"}
    with ExitStack() as stack:
        workers = [
            stack.enter_context(ferry_server_process(tmp_path / f"w{i}", "--database-url", pg_url, env=env))
            for i in range(2)
        ]
        url = stack.enter_context(nginx_in_front_of(tmp_path / "nginx", [w.url.split("//")[1] for w in workers]))
        settings = Settings(mode="server", database_url=pg_url, data_dir=tmp_path / "w0", secret_key="n" * 64)
        world = stack.enter_context(
            sync_world(tmp_path / "world", devices=2, server_url=url, server_settings_=settings)
        )
        a, b = world.devices
        world.sign_in_all("alice")
        world.settle()

        # Notifications through nginx's WebSocket proxy (and across workers): b hears of each
        # of a's edits and pulls it long before its 30-second scheduled sync.
        for i in range(4):
            task = a.create("task", title=f"through nginx {i}")
            started = time.monotonic()
            wait_for(lambda task=task: b.get("task", task["id"]) is not None, 5, f"b to get task {i}")
            assert time.monotonic() - started < 5

        # A push over nginx's default 1 MiB body limit goes through (client_max_body_size).
        token = world.account("alice").access_token
        clock = HybridClock(new_node_id())
        big = [
            {"id": new_id(), "kind": "note", "record_id": new_id(),
             "fields": {"title": f"big {k}", "body": "x" * 20_000},
             "stamps": {"title": clock.now(), "body": clock.now()}}
            for k in range(100)
        ]  # fmt: skip
        pushed = httpx.post(
            f"{url}/api/sync/push",
            json={"node": clock.node, "changes": big},
            headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "198.51.100.7"},
            timeout=60,
        )
        assert pushed.status_code == 200, pushed.text
        world.settle()
        world.assert_converged("alice")
        assert len(b.list("note")) == 100

    # Both workers served requests, and they logged the address nginx forwarded (the client
    # claimed 198.51.100.7; nginx appended the real peer, 127.0.0.1, which is trusted, so
    # the rightmost untrusted entry is the claimed one: what the proxy saw as its client).
    logs = [w.log.read_text() for w in workers]
    assert all("/api/sync/pull" in log or "/api/sync/push" in log for log in logs), "a worker got no sync traffic"
    assert any("198.51.100.7 POST /api/sync/push 200" in log for log in logs)
