"""Sign-in: azure-identity's DefaultAzureCredential for both SDKs, never a browser.

A fake Instance Metadata Service (IMDS) on 127.0.0.1 stands in for a plain Azure VM's managed
identity endpoint: azure-identity and msal read its address from
AZURE_POD_IDENTITY_AUTHORITY_HOST (azure/identity/_credentials/imds.py, _get_request;
msal/managed_identity.py, _obtain_token_on_azure_vm), and such a VM sets no other variable.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.boundary import V1_DEPRECATED
from submit.cli import cli
from submit.errors import LOGIN_HINT, SubmitError
from submit.workspace import WorkspaceRef, credential
from tests.submit.fakes import WS, QuietHandler, serve

with quiet_sdk_import():
    from azure.identity import DefaultAzureCredential
    from azureml.core.authentication import TokenAuthentication

    from submit import sdk_v1, sdk_v2

REF = WorkspaceRef("sub-1", "rg-1", "ws-1", source="options")
ARM_V1 = "https://management.core.windows.net/"  # what azureml-core asks for (ARM's resource)


class ImdsHandler(QuietHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.requests.append({"path": url.path, "metadata": self.headers["Metadata"], **query})
        body = json.dumps(
            {
                "access_token": f"token-for-{query.get('client_id', 'system')}",
                "expires_in": "3599",
                "expires_on": str(int(time.time()) + 3599),
                "resource": query["resource"],
                "token_type": "Bearer",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A VM's managed identity endpoint, answering every token request; yields the requests."""
    ImdsHandler.requests = []
    with serve(ImdsHandler) as url:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url)
        # azureml-core otherwise asks ARM which clouds exist before it names ARM's resource.
        monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")
        yield ImdsHandler.requests


def test_the_chain_is_default_azure_credential_without_a_browser() -> None:
    chain = credential()
    assert isinstance(chain, DefaultAzureCredential)
    names = [type(c).__name__ for c in chain.credentials]
    assert "InteractiveBrowserCredential" not in names
    # A service principal first, then the managed identity, then the developer sign-ins.
    assert names.index("EnvironmentCredential") < names.index("ManagedIdentityCredential")
    assert names.index("ManagedIdentityCredential") < names.index("AzureCliCredential")
    # With no variable set at all (a plain VM), the managed identity is the VM's IMDS endpoint:
    # the hand-written chain this replaces only looked for IDENTITY_ENDPOINT/MSI_ENDPOINT.
    managed = chain.credentials[names.index("ManagedIdentityCredential")]
    assert type(managed._credential).__name__ == "ImdsCredential"


def test_v2_signs_in_with_a_user_assigned_identity_on_a_plain_vm(
    imds: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", "user-assigned-id")
    backend = sdk_v2.make_backend(lambda: REF)
    used = backend.client._credential  # type: ignore[attr-defined]  # the MLClient's credential
    assert isinstance(used, DefaultAzureCredential)
    token = used.get_token("https://management.azure.com/.default")
    assert token.token == "token-for-user-assigned-id"
    assert imds == [
        {
            "path": "/metadata/identity/oauth2/token",
            "metadata": "true",
            "api-version": "2018-02-01",
            "resource": "https://management.azure.com",
            "client_id": "user-assigned-id",
        }
    ]


def test_v1_signs_in_through_the_same_chain(
    imds: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", "user-assigned-id")
    seen: dict[str, Any] = {}

    def workspace(subscription_id: str, resource_group: str, name: str, auth: Any) -> Any:
        seen.update(ref=(subscription_id, resource_group, name), auth=auth)
        return SimpleNamespace()

    monkeypatch.setattr(sdk_v1, "Workspace", workspace)
    assert sdk_v1.make_backend(lambda: REF).ws is not None  # type: ignore[attr-defined]
    auth = seen["auth"]
    assert seen["ref"] == ("sub-1", "rg-1", "ws-1")
    assert isinstance(auth, TokenAuthentication)
    assert isinstance(auth._get_token_for_audience.credential, DefaultAzureCredential)
    # What azureml-core sends with each request: ARM's token, from the managed identity.
    assert auth.get_authentication_header() == {
        "Authorization": "Bearer token-for-user-assigned-id"
    }
    assert [(r["resource"], r["client_id"]) for r in imds] == [
        (ARM_V1.rstrip("/"), "user-assigned-id")
    ]


def test_v1_keeps_each_token_until_shortly_before_it_expires() -> None:
    asked: list[str] = []
    lifetime = {"seconds": 3600}

    class Credential:  # as the Azure CLI's, which caches nothing
        def get_token(self, scope: str) -> Any:
            asked.append(scope)
            return SimpleNamespace(
                token=f"t{len(asked)}", expires_on=int(time.time()) + lifetime["seconds"]
            )

    tokens = sdk_v1.AudienceTokens(Credential())
    assert [tokens(ARM_V1), tokens(ARM_V1), tokens("https://ml.azure.com")] == ["t1", "t1", "t2"]
    assert asked == [
        "https://management.core.windows.net/.default",
        "https://ml.azure.com/.default",
    ]
    lifetime["seconds"] = 60  # the next token is nearly expired when it arrives: asked each time
    tokens = sdk_v1.AudienceTokens(Credential())
    assert [tokens(ARM_V1), tokens(ARM_V1)] == ["t3", "t4"]


class NoIdentityHandler(ImdsHandler):
    def do_GET(self) -> None:  # IMDS's answer on a VM without a managed identity
        self.requests.append({"path": urllib.parse.urlsplit(self.path).path})
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "invalid_request", "error_description": "Identity not found"}')


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_no_sign_in_anywhere_is_one_login_line(
    sdk: str, imds: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImdsHandler, "do_GET", NoIdentityHandler.do_GET)
    result = CliRunner().invoke(cli, ["run", "--sdk", sdk, *WS])
    warning = f"{V1_DEPRECATED}\n" if sdk == "v1" else ""
    assert result.output == (
        f"{warning}Signing in to Azure ML workspace ws-1 (SDK {sdk}) ...\n"
        f"Error: Azure login failed or expired: {LOGIN_HINT}\n"
    )
    assert result.exit_code == 1
    assert imds == [{"path": "/metadata/identity/oauth2/token"}]  # asked, and said no


def test_without_azure_identity_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # azureml-core alone does not bring azure-identity; the submit extras do.
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(SubmitError) as raised:
        credential()
    assert raised.value.message == (
        "signing in needs azure-identity, which is not installed: "
        "pip install 'keras-mnist-trainer[submit]'"
    )
