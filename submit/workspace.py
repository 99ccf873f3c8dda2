"""Which workspace, and how to sign in to it, without asking anyone anything.

A workspace comes from --subscription-id/--resource-group/--workspace-name (or their environment
variables), else from a config file found the way both SDKs' ``from_config`` find it
(``find_config``).

Sign-in is azure-identity's own chain, DefaultAzureCredential, for both SDKs: a service principal
from AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, workload identity, a managed identity
(the VM's IMDS endpoint needs no environment variable; AZURE_CLIENT_ID names a user-assigned
identity), then the sign-ins of VS Code, the Azure CLI (`az login`), Azure PowerShell and the
Azure Developer CLI. It never prompts, so a job in CI fails with a clear message instead of
hanging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from submit.errors import SubmitError
from trainer import jsonio

if TYPE_CHECKING:  # azure-identity is imported when a command signs in, not for --help
    from azure.identity import DefaultAzureCredential

ENV_SUBSCRIPTION = "AZURE_SUBSCRIPTION_ID"
ENV_RESOURCE_GROUP = "AZURE_RESOURCE_GROUP"
ENV_WORKSPACE = "AZUREML_WORKSPACE_NAME"
# azure-identity's name for the client id of a service principal or a user-assigned identity.
ENV_CLIENT_ID = "AZURE_CLIENT_ID"
# The SDKs' search, in their order (azure-ai-ml 1.35, azure/ai/ml/_ml_client.py, from_config:
# product([".azureml", "aml_config", None], ["config.json", "project.json"]), each name looked for
# by traverse_up_path_and_find_file(num_levels=20): this folder, then up to 20 above, before the
# next name; azureml-core 1.61's Workspace.from_config loops the same names in the same order,
# with no level limit). So a .azureml/config.json anywhere above wins over a stray plain
# config.json here.
CONFIG_NAMES = tuple(
    f"{folder}/{name}" if folder else name
    for folder in (".azureml", "aml_config", None)
    for name in ("config.json", "project.json")
)
CONFIG_LEVELS = 20


@dataclass(frozen=True)
class WorkspaceRef:
    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str  # where it came from, for messages: "options" or a config.json path


@dataclass(frozen=True)
class Common:
    """The SDK and workspace options every command that talks to Azure takes
    (``submit.options.common_options``); the workspace is resolved only when asked for."""

    sdk: str
    subscription_id: str | None
    resource_group: str | None
    workspace_name: str | None
    config: Path | None

    def workspace(self) -> WorkspaceRef:
        return resolve_workspace(
            self.subscription_id, self.resource_group, self.workspace_name, self.config
        )


def find_config(start: Path) -> Path | None:
    """The config file the SDKs' ``from_config`` would read, searching from ``start``: each of
    ``CONFIG_NAMES`` in turn, in ``start`` and up to ``CONFIG_LEVELS`` folders above it."""
    start = start.resolve()
    folders = (start, *start.parents[:CONFIG_LEVELS])
    for name in CONFIG_NAMES:
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
    return None


def _scope(data: dict[str, object]) -> dict[str, object]:
    """A Scope-style file ("Scope": "/subscriptions/S/resourceGroups/R/providers/
    Microsoft.MachineLearningServices/workspaces/W") as the three keys; the SDKs read pieces 2,
    4 and 8 of it (azureml/_project/project_info.py, MLClient._get_workspace_info)."""
    scope = data.get("Scope")
    if not isinstance(scope, str) or not scope:
        return data
    pieces = scope.split("/")
    if len(pieces) < 9:
        return {}
    return {"subscription_id": pieces[2], "resource_group": pieces[4], "workspace_name": pieces[8]}


def _read_config(path: Path) -> WorkspaceRef:
    try:
        data = jsonio.loads(path.read_bytes(), what="the file")
    except (OSError, ValueError) as exc:
        raise SubmitError(f"cannot read workspace config {path}: {exc}") from None
    if isinstance(data, dict):
        data = _scope(data)
    keys = ("subscription_id", "resource_group", "workspace_name")
    missing = [key for key in keys if not isinstance(data, dict) or not data.get(key)]
    if missing:
        raise SubmitError(
            f"workspace config {path} lacks {', '.join(missing)}: download config.json again "
            "from the workspace's overview page in the Azure portal"
        )
    return WorkspaceRef(
        subscription_id=str(data["subscription_id"]),
        resource_group=str(data["resource_group"]),
        workspace_name=str(data["workspace_name"]),
        source=str(path),
    )


def resolve_workspace(
    subscription_id: str | None,
    resource_group: str | None,
    workspace_name: str | None,
    config: Path | None,
    cwd: Path | None = None,
) -> WorkspaceRef:
    """The workspace the options name, else the one ``config.json`` names."""
    given = (subscription_id, resource_group, workspace_name)
    if subscription_id and resource_group and workspace_name:
        return WorkspaceRef(subscription_id, resource_group, workspace_name, source="options")
    if config is not None:
        path = config / "config.json" if config.is_dir() else config
        if not path.is_file():
            raise SubmitError(
                f"workspace config {config} does not exist: pass an existing config.json"
            )
        return _read_config(path)
    found = find_config(cwd or Path.cwd())
    if found is None:
        if any(given):
            names = ("--subscription-id", "--resource-group", "--workspace-name")
            missing = ", ".join(n for n, v in zip(names, given, strict=True) if not v)
            raise SubmitError(f"incomplete workspace: also pass {missing} (or use a config.json)")
        raise SubmitError(
            "no workspace config found: put the workspace's config.json (Azure portal, "
            "workspace overview, 'Download config.json') in this folder or a parent, or pass "
            "--subscription-id, --resource-group and --workspace-name"
        )
    ref = _read_config(found)
    # Options still win over the file, one by one, as users expect from a CLI.
    return WorkspaceRef(
        subscription_id or ref.subscription_id,
        resource_group or ref.resource_group,
        workspace_name or ref.workspace_name,
        source=ref.source,
    )


def credential() -> DefaultAzureCredential:
    """azure-identity's DefaultAzureCredential, set up never to prompt; both SDKs sign in with it."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise SubmitError(
            "signing in needs azure-identity, which is not installed: "
            "pip install 'keras-mnist-trainer[submit]'"
        ) from None
    from submit.network import azure_core_options

    return DefaultAzureCredential(
        # Already the default in azure-identity 1.27 (azure/identity/_credentials/default.py,
        # "interactive_browser": "default_exclude": True); said here so that no setting can add
        # it: an explicit flag wins over AZURE_TOKEN_CREDENTIALS (_internal/utils.py,
        # process_credential_exclusions). The broker credential that remains is silent
        # (_credentials/broker.py: disable_interactive_fallback=True).
        exclude_interactive_browser_credential=True,
        # A user-assigned managed identity is chosen by its client id, which the chain hands to
        # ManagedIdentityCredential(client_id=...) (default.py); unset means system-assigned.
        managed_identity_client_id=os.environ.get(ENV_CLIENT_ID),
        # Passed on to each credential that signs in over the network, and to its pipeline
        # (default.py, **kwargs into EnvironmentCredential, ManagedIdentityCredential, ...).
        **azure_core_options(),
    )
