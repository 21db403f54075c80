"""Logging in: passwords, keys with passphrases, host keys as OpenSSH checks them, and a
non-root user whose sudo password, paths and URL carry spaces and quotes."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.support.ssh_client import Client, bootstrap
from tests.support.ssh_hosts import Host, Lab, keygen

PKG = ["--version", "v1.30.4"]


def init(client: Client, master: Host, *extra: str, pkg: Path | None = None) -> list[str]:
    return ["init", "--master", master.addr, "--pkg-url", str(pkg or client.package), *PKG, *extra]


def test_password_from_flag_or_env_and_never_stored(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    client.trust(m0)
    pw = lab_.root_password
    out = bootstrap(*init(client, m0, "--passwd", pw))
    assert out.exit_code == 0, out.output
    out = bootstrap(*init(client, m0), env={"LVSCARE_SSH_PASSWORD": pw})
    assert out.exit_code == 0, out.output
    assert pw not in out.output
    for path in client.cluster_file.parent.rglob("*"):
        if path.is_file():
            assert pw not in path.read_text(), path
    assert m0.argvs()[-1][:2] == ["kubeadm", "init"]


def test_wrong_password_fails_the_host_with_exit_1(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    client.trust(m0)
    out = bootstrap(*init(client, m0, "--passwd", "not it"))
    assert out.exit_code == 1
    assert "authentication failed for user root" in out.output
    assert "not it" not in out.output
    assert m0.calls() == []


def test_key_with_a_passphrase(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    key = client.home / "id_rsa_pp"
    pub = keygen(key, "rsa", "key pass phrase")
    m0 = lab_.host("m0", setup=f"echo {shlex.quote(pub)} >> /root/.ssh/authorized_keys")
    client.trust(m0)
    out = bootstrap(*init(client, m0, "--pk", str(key)))
    assert out.exit_code == 2
    assert "has a passphrase" in out.output
    out = bootstrap(*init(client, m0, "--pk", str(key), "--pk-passwd", "wrong"))
    assert out.exit_code == 2
    out = bootstrap(*init(client, m0, "--pk", str(key), "--pk-passwd", "key pass phrase"))
    assert out.exit_code == 0, out.output
    assert m0.argvs()[-1][:2] == ["kubeadm", "init"]


def test_unknown_host_key_refused_then_accepted_and_recorded_with_port(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0", port=2222)
    args = init(client, m0, "--pk", str(client.key))
    out = bootstrap(*args)
    assert out.exit_code == 1
    assert "unknown host key (ssh-ed25519 SHA256:" in out.output
    assert m0.calls() == []
    out = bootstrap(*args, "--accept-new-host-keys")
    assert out.exit_code == 0, out.output
    assert client.known_hosts.read_text().splitlines() == [m0.known_hosts_line]
    assert m0.known_hosts_line.startswith(f"[{m0.ip}]:2222 ssh-ed25519 ")
    out = bootstrap(*args)  # known now
    assert out.exit_code == 0, out.output


def test_changed_host_key_is_refused_even_with_accept_new(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    client.trust(m0)
    m0.rekey()
    out = bootstrap(*init(client, m0, "--pk", str(client.key), "--accept-new-host-keys"))
    assert out.exit_code == 1
    assert "host key changed" in out.output and "refused" in out.output
    assert m0.calls() == []


SUDO_PW = """it's a "quoted" pass; word $(touch /tmp/pwned) `id`"""


def test_non_root_user_with_sudo_and_quotes_in_password_paths_and_url(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    user = (
        "useradd -m -s /bin/sh ops && "
        f"printf '%s\\n' {shlex.quote('ops:' + SUDO_PW)} | chpasswd && "
        "echo 'ops ALL=(ALL:ALL) ALL' > /etc/sudoers.d/ops && chmod 440 /etc/sudoers.d/ops"
    )
    m0 = lab_.host("m0", setup=user)
    n1 = lab_.host("n1", setup=user)
    client.trust(m0, n1)
    odd = tmp_path / "a dir with 'quotes' and \"more\"" / "kube 'v1.30.4'.tar.gz"
    odd.parent.mkdir()
    odd.write_bytes(client.package.read_bytes())
    template = tmp_path / "my kubeadm 'config'.tmpl"
    template.write_text(bootstrap("config", "--version", "v1.30.4").output)
    out = bootstrap(
        "init",
        "--master",
        m0.addr,
        "--node",
        n1.addr,
        "--user",
        "ops",
        "--passwd",
        SUDO_PW,
        "--pkg-url",
        str(odd),
        *PKG,
        "--kubeadm-config",
        str(template),
    )
    assert out.exit_code == 0, out.output
    (init_call,) = [c for c in m0.calls() if c["argv"][:2] == ["kubeadm", "init"]]
    assert init_call["config"].startswith("# kubeadm configuration")
    assert m0.path("/opt/lvscare-py/kubeadm.tmpl").read_text() == template.read_text()
    assert m0.path("/opt/lvscare-py/package.tar.gz").stat().st_uid == 0
    assert n1.argvs()[-1][:2] == ["kubeadm", "join"]
    for h in (m0, n1):
        assert not h.exists("/tmp/pwned")
    assert SUDO_PW not in out.output
    out = bootstrap("clean", "--all", "--passwd", SUDO_PW)
    assert out.exit_code == 0, out.output
    assert not m0.exists("/opt/lvscare-py") and not n1.exists("/usr/local/bin/kubeadm")
