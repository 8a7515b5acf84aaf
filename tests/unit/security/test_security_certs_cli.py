from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from rustyray.certs import main
from rustyray.security.certificates import cert_matches_key, load_certificate_info


def test_count_creates_ca_and_nodes(tmp_path: Path, capsys) -> None:
    assert main(["--state-dir", str(tmp_path), "--count", "3"]) == 0
    out = capsys.readouterr().out
    assert "CA   created" in out and out.count("node created") == 3
    certs = tmp_path / "certs"
    for n in ("node1", "node2", "node3"):
        assert load_certificate_info(certs / f"{n}.pem").subject_cn == n
        assert cert_matches_key(certs / f"{n}.pem", certs / f"{n}.key")
        assert stat.S_IMODE(os.stat(certs / f"{n}.key").st_mode) == 0o600


def test_rerun_keeps_and_rotate_reissues(tmp_path: Path, capsys) -> None:
    main(["--state-dir", str(tmp_path), "--nodes", "a", "b"])
    capsys.readouterr()
    assert main(["--state-dir", str(tmp_path), "--nodes", "a", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ca"]["created"] is False and summary["nodes"][0]["created"] is False
    serial = load_certificate_info(tmp_path / "certs" / "a.pem").serial
    assert main(["--state-dir", str(tmp_path), "--nodes", "a", "--rotate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"][0]["created"] is True
    assert load_certificate_info(tmp_path / "certs" / "a.pem").serial != serial


def test_bad_node_id_fails_and_module_entry_point(tmp_path: Path) -> None:
    assert main(["--state-dir", str(tmp_path), "--nodes", "../evil"]) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "rustyray.certs", "--state-dir", str(tmp_path), "--nodes", "n1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "n1" in proc.stdout
