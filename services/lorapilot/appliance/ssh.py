"""Optional SSH into the appliance: sshd, key-only, with the key(s) RunPod-style templates pass in PUBLIC_KEY.

The `sshd` supervisord program starts only when PUBLIC_KEY is set (docker/entrypoint.sh asks
`lorapilot-appliance sshd --wanted`). Each start writes the user's `~/.ssh/authorized_keys` from
PUBLIC_KEY (0600) and the server's own `sshd_config`: public keys only, no passwords, root by key
only. The host key lives in the workspace (`config/ssh/`, 0600), so the fingerprint a client
remembers survives a new container on the same volume.
"""

from __future__ import annotations

import base64
import binascii
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lorapilot.atomic_files import write_atomic
from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace

PUBLIC_KEY_ENV = "PUBLIC_KEY"
DEFAULT_PORT = 22
PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # compiled into Debian's and Ubuntu's sshd
SSHD_SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/sbin"
# Key types OpenSSH accepts in authorized_keys (ssh-dss is gone from current OpenSSH).
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# Session environment: where the appliance's commands are; never a secret (HF_TOKEN, the password).
SESSION_ENV = ("PATH", "VIRTUAL_ENV", "LORAPILOT_WORKSPACE", "HF_HOME")
SSHD_OPTIONS = """\
# Written by `lorapilot-appliance sshd` at each start of the sshd program; edits here are lost.
Port {port}
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin prohibit-password
UsePAM no
StrictModes yes
PidFile none
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
"""


class SshError(LoraPilotError):
    """SSH cannot start as set up; the message names the variable or file and the fix."""


@dataclass(frozen=True)
class SshdFiles:
    config: Path
    authorized_keys: Path
    host_key: Path


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """The entrypoint's question: start the sshd program? Yes when PUBLIC_KEY holds anything."""
    return bool((os.environ if environ is None else environ).get(PUBLIC_KEY_ENV, "").strip())


def authorized_keys(public_key: str) -> str:
    """PUBLIC_KEY as an authorized_keys file: one OpenSSH public key a line, each checked."""
    keys = []
    for number, line in enumerate(public_key.replace("\\n", "\n").splitlines(), start=1):
        if line.strip():
            keys.append(_checked_key(line.strip(), number))
    if not keys:
        raise SshError(
            f"{PUBLIC_KEY_ENV} is empty; set it to your public key (the line in ~/.ssh/id_ed25519.pub)"
        )
    return "\n".join(keys) + "\n"


def _checked_key(line: str, number: int) -> str:
    fields = line.split()
    where = f"{PUBLIC_KEY_ENV} line {number}"
    fix = "paste the whole line of your .pub file, e.g. 'ssh-ed25519 AAAAC3Nza… you@laptop'"
    if fields[0] not in KEY_TYPES:
        raise SshError(f"{where} starts with {fields[0][:40]!r}, not an SSH key type; {fix}")
    if len(fields) < 2:
        raise SshError(f"{where} has the key type but not the key; {fix}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise SshError(f"{where}: the key is not base64 (cut short or wrapped?); {fix}") from None
    named = blob[4 : 4 + int.from_bytes(blob[:4], "big")] if len(blob) > 4 else b""
    if named != fields[0].encode():
        raise SshError(f"{where}: the key data is not a {fields[0]} key (cut short or mixed up?); {fix}")
    return line


def default_authorized_keys(environ: Mapping[str, str]) -> Path:
    """~/.ssh/authorized_keys of the user sshd runs as (root in the container; HOME, else passwd)."""
    home = environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    return Path(home) / ".ssh" / "authorized_keys"


def prepare(
    workspace: Workspace,
    environ: Mapping[str, str] | None = None,
    *,
    port: int = DEFAULT_PORT,
    keys_file: Path | None = None,
) -> SshdFiles:
    """Write authorized_keys, the host key (once) and sshd_config for sshd to run on."""
    environ = os.environ if environ is None else environ
    keys = authorized_keys(environ.get(PUBLIC_KEY_ENV, ""))
    keys_file = keys_file or default_authorized_keys(environ)
    _private_dir(keys_file.parent)
    write_atomic(keys_file, keys.encode("ascii"), mode=0o600)
    folder = _private_dir(workspace.ssh)
    host_key = folder / "ssh_host_ed25519_key"
    if not host_key.exists():
        _generate_host_key(host_key)
    host_key.chmod(0o600)
    config = folder / "sshd_config"
    user = pwd.getpwuid(os.getuid()).pw_name
    options = SSHD_OPTIONS.format(port=port, host_key=host_key, authorized_keys=keys_file, user=user)
    text = options + _session_env(environ)
    write_atomic(config, text.encode("utf-8"), mode=0o600)
    return SshdFiles(config, keys_file, host_key)


def run(workspace: Workspace, port: int = DEFAULT_PORT) -> int:
    """Prepare, then become sshd (supervisord then signals sshd itself); its log is the program's."""
    sshd = _sshd()  # before anything is written
    argv = [sshd, *sshd_arguments(prepare(workspace, port=port).config)]
    PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)
    print(f"[sshd] key-only SSH on port {port} for the key(s) in {PUBLIC_KEY_ENV}", flush=True)
    os.execv(argv[0], argv)
    return 1  # not reached


def sshd_arguments(config: Path) -> list[str]:
    """sshd in the foreground (-D), logging to stderr (-e), on our config only."""
    return ["-D", "-e", "-f", str(config)]


def _sshd() -> str:
    found = shutil.which("sshd", path=f"{os.environ.get('PATH', '')}:{SSHD_SEARCH_PATH}")
    if found is None:
        raise SshError(
            "sshd is not installed: the image installs openssh-server; natively, install it "
            f"(apt-get install openssh-server) or unset {PUBLIC_KEY_ENV}"
        )
    return found


def _private_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def _generate_host_key(path: Path) -> None:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SshError("ssh-keygen is not installed (openssh-client); it makes the server's host key")
    tmp = path.with_name(f".{path.name}.tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".pub")):
        stale.unlink(missing_ok=True)
    done = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "lorapilot-host", "-f", str(tmp)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SshError(f"ssh-keygen could not write the host key {path}: {done.stderr.strip()}")
    tmp.with_name(tmp.name + ".pub").replace(path.with_name(path.name + ".pub"))
    tmp.replace(path)


def _session_env(environ: Mapping[str, str]) -> str:
    """SetEnv for SSH sessions, which do not inherit the container's environment."""
    pairs = [
        f"{name}={environ[name]}"
        for name in SESSION_ENV
        if environ.get(name) and not any(c.isspace() or c in "\"'\\" for c in environ[name])
    ]
    return f"SetEnv {' '.join(pairs)}\n" if pairs else ""
