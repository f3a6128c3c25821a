"""Optional SSH: PUBLIC_KEY becomes an owner-only authorized_keys, sshd gets a key-only config and a
host key kept in the workspace, and a key that is not one is refused with the line and the fix."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lorapilot.appliance.ssh import SSHD_SEARCH_PATH, SshError, authorized_keys, prepare, wanted
from lorapilot.workspace import Workspace

BIN = Path(sys.executable).parent
KEYGEN = shutil.which("ssh-keygen")
needs_keygen = pytest.mark.skipif(KEYGEN is None, reason="ssh-keygen (openssh-client) is not installed")


def a_public_key(folder: Path, name: str = "id") -> str:
    command = [KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop", "-f", str(folder / name)]
    subprocess.run(command, check=True)
    return (folder / f"{name}.pub").read_text().strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@needs_keygen
def test_prepare_writes_owner_only_keys_a_key_only_config_and_keeps_the_host_key(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    first, second = a_public_key(tmp_path, "first"), a_public_key(tmp_path, "second")
    keys_file = tmp_path / "home" / ".ssh" / "authorized_keys"
    environ = {
        "PUBLIC_KEY": f"{first}\n{second}\n",
        "PATH": "/opt/venv/bin:/usr/bin",
        "HF_TOKEN": "hf_secret",
    }
    files = prepare(ws, environ, port=2222, keys_file=keys_file)
    assert files.authorized_keys == keys_file and files.config == ws.ssh / "sshd_config"
    assert keys_file.read_text() == f"{first}\n{second}\n"
    assert mode(keys_file) == 0o600 and mode(keys_file.parent) == 0o700
    listed = subprocess.run([KEYGEN, "-l", "-f", str(keys_file)], capture_output=True, text=True, check=True)
    assert "first@laptop" in listed.stdout and "second@laptop" in listed.stdout

    config = (ws.ssh / "sshd_config").read_text()
    options = dict(line.split(" ", 1) for line in config.splitlines() if line and not line.startswith("#"))
    assert options["PasswordAuthentication"] == "no" and options["KbdInteractiveAuthentication"] == "no"
    assert (
        options["PermitRootLogin"] == "prohibit-password" and options["AuthenticationMethods"] == "publickey"
    )
    assert options["PermitEmptyPasswords"] == "no" and options["PubkeyAuthentication"] == "yes"
    assert options["AuthorizedKeysFile"] == str(keys_file) and options["Port"] == "2222"
    assert options["AllowUsers"] == pwd.getpwuid(os.getuid()).pw_name  # the keys are this user's only
    assert options["SetEnv"] == "PATH=/opt/venv/bin:/usr/bin" and "hf_secret" not in config
    host_key = ws.ssh / "ssh_host_ed25519_key"
    assert options["HostKey"] == str(host_key) and mode(host_key) == 0o600
    assert mode(ws.ssh / "sshd_config") == 0o600 and mode(ws.ssh) == 0o700

    fingerprint = host_key.with_name(host_key.name + ".pub").read_text()
    prepare(ws, {"PUBLIC_KEY": first}, keys_file=keys_file)
    assert keys_file.read_text() == f"{first}\n"  # rewritten from PUBLIC_KEY at each start
    assert host_key.with_name(host_key.name + ".pub").read_text() == fingerprint  # the same server key


@pytest.mark.parametrize(
    ("public_key", "message"),
    [
        (
            "AAAAC3NzaC1lZDI1NTE5AAAAIGb",
            "PUBLIC_KEY line 1 starts with 'AAAAC3NzaC1lZDI1NTE5AAAAIGb', not an SSH",
        ),
        ("ssh-ed25519", "line 1 has the key type but not the key"),
        ("ssh-ed25519 not*base64 me@x", "line 1: the key is not base64"),
        ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGbm3 me@x", "line 1: the key is not base64"),
        ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGbm me@x", "line 1: the key data is not a ssh-rsa key"),
        ("\n\n  \n", "PUBLIC_KEY is empty"),
    ],
)
def test_a_public_key_that_is_not_one_is_refused_naming_the_line(public_key, message):
    with pytest.raises(SshError, match="PUBLIC_KEY") as caught:
        authorized_keys(public_key)
    assert message in str(caught.value)


def test_sshd_is_wanted_only_when_public_key_is_set(tmp_path):
    assert wanted({"PUBLIC_KEY": "ssh-ed25519 AAAA"}) and not wanted({}) and not wanted({"PUBLIC_KEY": " "})
    env = {k: v for k, v in os.environ.items() if k != "PUBLIC_KEY"}
    answer = subprocess.run(
        [str(BIN / "lorapilot-appliance"), "sshd", "--wanted"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (answer.returncode, answer.stdout) == (1, "false\n")
    env["PUBLIC_KEY"] = "ssh-ed25519 AAAA"
    answer = subprocess.run(
        [str(BIN / "lorapilot-appliance"), "sshd", "--wanted"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (answer.returncode, answer.stdout) == (0, "true\n")


SSHD_HERE = shutil.which("sshd", path=f"{os.environ.get('PATH', '')}:{SSHD_SEARCH_PATH}")


@pytest.mark.skipif(SSHD_HERE is not None, reason="sshd is installed here")
def test_without_sshd_installed_the_program_ends_saying_what_to_install(tmp_path):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbE4Uo1aYy5Cd6f0k0ERmYu4HGc2r2Kk3Nq7H1eWpGx me@laptop"
    env = {**os.environ, "PUBLIC_KEY": key, "HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(BIN / "lorapilot-appliance"), "sshd", "--workspace", str(tmp_path / "ws")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "lorapilot-appliance: sshd is not installed" in done.stderr and "openssh-server" in done.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "ws").exists()  # nothing half-written
