"""SSH key material leapfrog makes itself: key pairs and ``known_hosts`` lines.

A bottom-layer module: the VM disk builder (``harness.images.vm_disk``) and
the SSH backends both use it, and it imports nothing of leapfrog.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def generate_ed25519(comment: str = "leapfrog") -> tuple[bytes, str]:
    """A new ed25519 key pair: (OpenSSH private key, "ssh-ed25519 AAAA... comment\\n")."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode('ascii')} {comment}\n"


def known_hosts_name(host: str, port: int) -> str:
    """How ``known_hosts`` names ``host``: bare on port 22, ``[host]:port`` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"
