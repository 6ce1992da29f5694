"""OpenAlgo's secret schemes, from their public algorithms.

- Fernet key: PBKDF2-HMAC-SHA256 over the UTF-8 pepper, 100 000 iterations, 32 bytes, salt =
  `bytes.fromhex(FERNET_SALT)` when that is at least 32 valid hex characters, else the legacy
  literal salt; urlsafe-base64 of the result is the Fernet key.
- Ciphertexts: Fernet tokens stored as ASCII text, no TTL; "" stands for an empty value.
- API key hashes: Argon2id PHC strings of `key + pepper` (parameters travel inside the string).
"""

from __future__ import annotations

import base64
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

log = logging.getLogger(__name__)

LEGACY_SALT = b"openalgo_static_salt"
PBKDF2_ITERATIONS = 100_000
MIN_SALT_HEX = 32


class DecryptError(Exception):
    """A ciphertext that this key cannot open (wrong pepper or salt, or damaged)."""


def salt_bytes(fernet_salt: str) -> bytes:
    """The PBKDF2 salt OpenAlgo uses for this FERNET_SALT value (legacy literal as its fallback)."""
    text = fernet_salt.strip()
    if len(text) >= MIN_SALT_HEX:
        try:
            return bytes.fromhex(text)
        except ValueError:
            log.warning("FERNET_SALT is not valid hex: using the legacy static salt, as OpenAlgo does")
    elif text:
        log.warning("FERNET_SALT is shorter than %d characters: using the legacy static salt", MIN_SALT_HEX)
    return LEGACY_SALT


def fernet_for(pepper: str, fernet_salt: str) -> Fernet:
    """One PBKDF2 run (tens of ms): derive once per process."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt_bytes(fernet_salt), iterations=PBKDF2_ITERATIONS)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(pepper.encode("utf-8"))))


def decrypt(fernet: Fernet, token: str | None) -> str:
    if not token:
        return ""
    try:
        return fernet.decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, InvalidSignature, UnicodeError, ValueError) as exc:
        raise DecryptError("ciphertext does not open with this pepper and salt") from exc


def encrypt(fernet: Fernet, plaintext: str) -> str:
    """The inverse of decrypt (test fixtures build an installation with it)."""
    return fernet.encrypt(plaintext.encode("utf-8")).decode("ascii") if plaintext else ""


_hasher = PasswordHasher()


def verify_key_hash(phc: str, api_key: str, pepper: str) -> bool:
    """Argon2 verification of `api_key + pepper` against a PHC string: slow (64 MiB, tens of ms); run
    it off the event loop, once per stored hash."""
    try:
        return _hasher.verify(phc, api_key + pepper)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_key(api_key: str, pepper: str) -> str:
    """A PHC string as OpenAlgo stores it (argon2-cffi defaults: Argon2id, t=3, m=64 MiB, p=4)."""
    return _hasher.hash(api_key + pepper)
