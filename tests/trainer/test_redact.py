"""The masker's forms: what ``trainer.redact`` masks, for mnist-train and
mnist-submit alike (submit/errors.py masks through it)."""

from __future__ import annotations

import base64

import pytest

from trainer.redact import MASK, redact

# e. Secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["s3cr\udcffet-pw", "\ud800lone-high", "pw-\udcc3\udca9-utf8-as-bytes"],
    ids=["surrogate-escape", "lone-high-surrogate", "escaped-utf8"],
)
def test_a_secret_that_is_not_utf8_is_masked_not_a_crash(secret: str) -> None:
    """Was: urllib.parse.quote raised UnicodeEncodeError inside the masker itself."""
    assert redact(f"login failed for {secret}", [secret]) == f"login failed for {MASK}"


@pytest.mark.parametrize("secret", ["it's-a\"pw", "back\\slash-pw", "both'\"\\-pw"])
def test_the_repr_of_a_password_with_quotes_or_backslashes_is_masked(secret: str) -> None:
    text = f"Credential(password={secret!r})"
    shown = redact(text, [secret])
    assert repr(secret)[1:-1] not in shown
    assert MASK in shown


def test_http_basic_and_bearer_credentials_are_masked() -> None:
    token = base64.b64encode(b"mnist:s3cret-pw").decode()
    shown = redact(f"401 for Authorization: Basic {token}; then Bearer eyJhbGciOi.x.y")
    assert token not in shown
    assert "eyJhbGciOi" not in shown
    assert shown == f"401 for Authorization: Basic {MASK}; then Bearer {MASK}"


def test_a_known_secret_in_base64_is_masked() -> None:
    encoded = base64.b64encode(b"s3cret-pw").decode().rstrip("=")
    assert redact(f"header {encoded}", ["s3cret-pw"]) == f"header {MASK}"


def test_azure_storage_connection_strings_are_masked() -> None:
    text = (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zm9vYmFy+/==;"
        "EndpointSuffix=core.windows.net and BlobEndpoint=https://a.blob;"
        "SharedAccessSignature=sv=2024&sig=abc%2F"
    )
    shown = redact(text)
    assert "Zm9vYmFy" not in shown
    assert "sv=2024" not in shown
    assert "abc%2F" not in shown
    assert f"AccountKey={MASK};EndpointSuffix=core.windows.net" in shown
    assert f"SharedAccessSignature={MASK}" in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:p@ss@host.io/v2", f"https://{MASK}@host.io/v2"),
        ("user:s3cret@myreg.azurecr.io/img:1", f"user:{MASK}@myreg.azurecr.io/img:1"),
        ("user:p@ss@myreg.azurecr.io/img", f"user:{MASK}@myreg.azurecr.io/img"),
        # Not credentials: a digest, a port.
        ("myreg.azurecr.io/img@sha256:0123abcd", "myreg.azurecr.io/img@sha256:0123abcd"),
        ("localhost:5000/img:1", "localhost:5000/img:1"),
    ],
)
def test_registry_credentials_with_or_without_a_scheme_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected
