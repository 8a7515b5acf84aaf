"""``ray up`` for real, over SSH, onto the three namespace hosts of the bed (issue 12, part 5).

Run as root: ``scripts/ray_up_bed.sh`` (about two minutes). It builds the bed's network (``netns_bed``), makes
an unprivileged user ``rrbed`` with a fresh SSH key, starts one ``sshd`` per host inside its network namespace
and a private mount namespace (its own state directory and Ray temp directory), then runs, from the root
namespace, what an operator runs against real machines:

    ray up -y tests/multihost/ray_up_bed.yaml      # head on 198.18.0.1, workers 198.18.0.2-3 over SSH
    ray exec tests/multihost/ray_up_bed.yaml ...   # the Ray node table, and the RustyRay API's node list
    ray down -y tests/multihost/ray_up_bed.yaml

Why not in CI: ``ray down`` runs ``ray stop`` on every host, and ``ray stop`` finds Ray by process name on the
whole machine. As the unprivileged ``rrbed`` it cannot signal root's processes, so other Ray instances survive,
but the run is still too slow and too machine-wide for the per-commit suite; its transcript is in the issue's
closing note. Everything it made (sshd, namespaces, the user, /tmp/rrbed) is removed at the end, also on error.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import netns_bed as nb

USER = "rrbed"
HOME = nb.ROOT / "home"
SSH_DIR = nb.ROOT / "ssh"
KEY = HOME / ".ssh" / "id_ed25519"
CONFIG = Path(__file__).resolve().with_name("ray_up_bed.yaml")
RAY_TMP = "/tmp/ray-bed"
"""Ray's temp dir inside each host (a private bind mount of /tmp/rrbed/hN/ray): three Ray nodes on one
filesystem must not share a session directory."""


def _run(argv: list[str], *, check: bool = True, timeout: float = 600.0, env: dict[str, str] | None = None) \
        -> subprocess.CompletedProcess[str]:
    nb._say("$ " + " ".join(argv))
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    out = (res.stdout + res.stderr).strip()
    if out:
        print("\n".join("    " + line for line in out.splitlines()[-60:]), flush=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed with {res.returncode}")
    return res


def _make_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--home-dir", str(HOME), "--shell", "/bin/bash", "--no-create-home",
                        "--password", "*", USER], check=True)
    (HOME / ".ssh").mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(KEY)], check=True)
    (HOME / ".ssh" / "authorized_keys").write_text(KEY.with_suffix(".pub").read_text())
    token = nb._env()["RAY_AUTH_TOKEN"]
    # what a real deployment puts in the login environment: the Python with Ray and RustyRay, Ray's token
    (HOME / ".bashrc").write_text(
        f"export PATH={nb.VENV_BIN}:$PATH\nexport RAY_AUTH_MODE=token\nexport RAY_AUTH_TOKEN={token}\n"
        "export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1\n")
    (HOME / ".profile").write_text(". ~/.bashrc\n")
    for h in nb.Bed().hosts:
        for d in (h.state_dir, h.dir / "ray", h.dir / "tmpray"):
            d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(HOME), *[str(h.dir) for h in nb.Bed().hosts]], check=True)
    os.chmod(HOME, 0o700)


def _start_sshd(bed: nb.Bed) -> list[subprocess.Popen[bytes]]:
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(exist_ok=True)
    hostkey = SSH_DIR / "host_ed25519"
    if not hostkey.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
    procs = []
    for h in bed.hosts:
        cfg = SSH_DIR / f"sshd_{h.name}.conf"
        cfg.write_text("\n".join([
            f"ListenAddress {h.address}", "Port 22", f"HostKey {hostkey}", f"PidFile {h.dir}/sshd.pid",
            f"AllowUsers {USER}", "PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", f"AuthorizedKeysFile {HOME}/.ssh/authorized_keys", "StrictModes no",
            "UsePAM no", "X11Forwarding no", "PrintMotd no", "MaxStartups 50", "MaxSessions 50", ""]))
        # private per host: the state directory, Ray's temp dir, and /tmp/ray (the on-prem provider's state
        # and lock files: the machine's own /tmp/ray belongs to root)
        script = (f"mount --bind {h.state_dir} {nb.STATE_PATH} && mkdir -p {RAY_TMP} /tmp/ray && "
                  f"mount --bind {h.dir / 'ray'} {RAY_TMP} && mount --bind {h.dir / 'tmpray'} /tmp/ray && "
                  f"exec /usr/sbin/sshd -D -e -f {cfg}")
        argv = ["ip", "netns", "exec", h.netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        procs.append(subprocess.Popen(argv, stdout=(h.dir / "sshd.log").open("wb"), stderr=subprocess.STDOUT))
        nb._say(f"{h.name}: sshd on {h.address}:22 (user {USER}, key {KEY.name})")
    for h in bed.hosts:
        if procs[h.index - 1].poll() is not None:
            raise RuntimeError(f"sshd on {h.name} exited: {(h.dir / 'sshd.log').read_text()[-2000:]}")
        nb.wait_for(lambda h=h: subprocess.run(
            ["ssh", "-i", str(KEY), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", f"{USER}@{h.address}", "true"],
            capture_output=True).returncode == 0, 30, f"ssh {USER}@{h.address}")
    return procs


def _ray_env() -> dict[str, str]:
    env = nb._env()
    env.pop("RAY_ADDRESS", None)
    return env


def main() -> int:
    if os.geteuid() != 0:
        print("ray_up_bed needs root (namespaces, a user, sshd)", file=sys.stderr)
        return 2
    bed = nb.Bed()
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    ray = str(nb.VENV_BIN / "ray")
    # the venv's interpreter may live under a root-only home (pyenv in /root): let the user traverse to it
    # (search permission only, no listing) for the run, and put the mode back afterwards
    python_home = Path(os.path.realpath(nb.VENV_BIN / "python")).parents
    opened = [(d, d.stat().st_mode) for d in python_home if d != Path("/") and not d.stat().st_mode & 0o001]
    try:
        for d, mode in opened:
            os.chmod(d, mode | 0o001)
        nb.sweep()
        bed.make_network()
        _make_user()
        procs = _start_sshd(bed)
        t_up = time.monotonic()
        _run([ray, "up", "-y", "--no-config-cache", str(CONFIG)], env=_ray_env(), timeout=900)
        nb._say(f"ray up returned after {time.monotonic() - t_up:.0f}s")
        (HOME / "ray_nodes.py").write_text(
            f"import ray\nray.init(address='{bed.head.address}:{nb.RAY_PORT}', log_to_driver=False)\n"
            "for n in ray.nodes():\n"
            "    print(f\"{n['NodeManagerAddress']:14} alive={n['Alive']} cpu={n['Resources'].get('CPU', 0)}\")\n")
        deadline = time.monotonic() + 180
        while True:  # the head's autoscaler starts the workers over SSH after ray up returns
            res = _run([ray, "exec", str(CONFIG), "python ~/ray_nodes.py"], env=_ray_env(), check=False)
            if res.stdout.count("alive=True") >= 3 or time.monotonic() > deadline:
                break
            time.sleep(10)
        _run([ray, "exec", str(CONFIG),
              f"python -m rustyray.launch --address {bed.head.address}:{nb.RAY_PORT} --host auto --nodes 3 "
              f"--state-dir {nb.STATE_PATH} --http-host 0.0.0.0 --http-port {nb.HTTP_PORT} --no-dashboard "
              "--exit-after-start"], env=_ray_env(), timeout=400)
        token = (bed.head.state_dir / "api-token").read_text().strip()
        _run([ray, "exec", str(CONFIG),
              f"curl -s -H 'Authorization: Bearer {token}' http://{bed.head.address}:{nb.HTTP_PORT}"
              "/api/v1/network/nodes"], env=_ray_env(), check=False)
        nodes = bed.api("/nodes")["nodes"]
        hosts = sorted({n["address"].rsplit(":", 1)[0] for n in nodes})
        nb._say(f"RustyRay nodes: {[(n['node_id'], n['address'], n['state']) for n in nodes]} on hosts {hosts}")
        ok = res.stdout.count("alive=True") >= 3 and len(hosts) == 3 and all(n["state"] == "Alive" for n in nodes)
        _run([ray, "down", "-y", str(CONFIG)], env=_ray_env(), timeout=300)
        nb._say(f"ray up -> exec -> down: {'OK' if ok else 'INCOMPLETE'} in {time.monotonic() - t0:.0f}s")
        return 0 if ok else 1
    except Exception:
        for h in bed.hosts[1:]:  # why a worker did not come up
            for log in sorted((h.dir / "ray").glob("session_*/logs/raylet.out"))[-1:]:
                print(f"--- {h.name} {log.name}:\n" + log.read_text(errors="replace")[-1500:], flush=True)
        raise
    finally:
        for p in procs:
            p.terminate()
        for h in bed.hosts:
            nb.kill_namespace_processes(h.netns)
        bed.down()
        subprocess.run(["userdel", USER], capture_output=True)
        shutil.rmtree(nb.ROOT, ignore_errors=True)
        for d, mode in opened:
            os.chmod(d, mode)


if __name__ == "__main__":
    raise SystemExit(main())
