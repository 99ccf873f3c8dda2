"""SDK v1 `compute create`: azureml-core's own ComputeTarget and AmlCompute over a fake ARM.

Only the HTTP session is replaced (``FakeArm``), so the get-or-create and every error message
are the SDK's own, as a real workspace would produce them.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result

from submit.backend import quiet_sdk_import
from submit.boundary import V1_DEPRECATED
from submit.cli import cli
from tests.submit.fakes import WS, FakeArm, cluster_payload, v1_with, v1_workspace

with quiet_sdk_import():
    import azureml.core.compute.amlcompute
    import azureml.core.compute.compute


T4 = "Standard_NC4as_T4_v3"
QUOTA = (
    "Operation could not be completed as it results in exceeding approved standardNCASv3_T4 "
    "Family Cores quota. Additional details - Current Limit: 0, Additional Required: 4."
)

PROVISIONING = "provisioning takes a few minutes ..."

pytestmark = pytest.mark.usefixtures("quiet_sdk")


def create(arm: FakeArm, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    for module in (azureml.core.compute.compute, azureml.core.compute.amlcompute):
        monkeypatch.setattr(module, "get_requests_session", lambda: arm)
    args = ("compute", "create", "--sdk", "v1", *WS, *args)
    return CliRunner().invoke(cli, args, obj=v1_with(v1_workspace()))


def calls(arm: FakeArm) -> list[str]:
    return [method for method, _, _ in arm.log]


def test_a_missing_cluster_is_created(monkeypatch: pytest.MonkeyPatch) -> None:
    arm = FakeArm()
    result = create(arm, monkeypatch, "--max-nodes", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("Compute gpu-cluster ready (SDK v1)\n")
    # Look up (404), create, then poll the operation and the cluster.
    assert calls(arm)[:2] == ["GET", "PUT"]
    assert set(calls(arm)[2:]) == {"GET"}
    _, url, body = arm.log[1]
    assert url.endswith("/workspaces/ws-1/computes/gpu-cluster")
    assert body["properties"]["properties"]["vmSize"] == T4
    assert body["properties"]["properties"]["scaleSettings"] == {
        "minNodeCount": 0,
        "maxNodeCount": 2,
        "nodeIdleTimeBeforeScaleDown": "PT180S",
    }


def test_an_existing_cluster_is_reused_with_the_new_scale_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm = FakeArm(clusters={"gpu-cluster": cluster_payload("gpu-cluster", T4.upper())})
    result = create(arm, monkeypatch, "--max-nodes", "6")
    assert (result.exit_code, result.stdout) == (0, "Compute gpu-cluster ready (SDK v1)\n")
    assert "PUT" not in calls(arm)  # never created again
    method, _, body = arm.log[-1]
    assert method == "PATCH"
    assert body["properties"]["properties"]["scaleSettings"] == {
        "minNodeCount": 0,
        "maxNodeCount": 6,
        "nodeIdleTimeBeforeScaleDown": "PT180S",
    }


def test_an_existing_cluster_of_another_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    arm = FakeArm(clusters={"gpu-cluster": cluster_payload("gpu-cluster", "Standard_NC6s_v3")})
    result = create(arm, monkeypatch)
    assert result.exit_code == 1
    assert result.output == (
        f"{V1_DEPRECATED}\n"
        "Error: cluster 'gpu-cluster' exists with Standard_NC6s_v3 (dedicated), not "
        f"{T4} (dedicated), and a cluster's VM size and priority cannot change: pass another "
        "--name, or delete the cluster in the studio first\n"
    )
    assert calls(arm) == ["GET"]


REFUSALS = [
    (
        # Quota: the PUT is refused and the body says why.
        {"refuse": {"PUT": (400, {"error": {"code": "QuotaExceeded", "message": QUOTA}})}},
        f"Received bad response from Resource Provider: (QuotaExceeded) {QUOTA}",
    ),
    (
        # An unknown size: accepted, then the provisioning operation fails.
        {
            "operation": {
                "status": "Failed",
                "error": {
                    "code": "BadArgument",
                    "statusCode": 400,
                    "message": "The specified VM size Standard_NC99 is not available in westeurope",
                },
            }
        },
        "Compute object provisioning polling reached non-successful terminal state, current "
        "provisioning state: Failed: The specified VM size Standard_NC99 is not available "
        "in westeurope",
    ),
    (
        # Refused before anything is created: not "missing", so nothing is created.
        {
            "refuse": {
                "GET": (
                    403,
                    {"error": {"code": "AuthorizationFailed", "message": "No access to ws-1"}},
                )
            }
        },
        "Received bad response from Resource Provider: (AuthorizationFailed) No access to ws-1",
    ),
]


@pytest.mark.parametrize(("arm_kwargs", "reason"), REFUSALS)
def test_the_services_reason_is_kept_in_one_line(
    monkeypatch: pytest.MonkeyPatch, arm_kwargs: dict[str, Any], reason: str
) -> None:
    arm = FakeArm(**arm_kwargs)
    result = create(arm, monkeypatch)
    assert result.exit_code == 1
    # stdout may hold the SDK's own progress dots; the error is one line on stderr.
    refused_at_once = "GET" in arm_kwargs.get("refuse", {})
    creating = "" if refused_at_once else f"Creating cluster gpu-cluster; {PROVISIONING}\n"
    error = f"Error: Azure ML refused the request (ComputeTargetException: {reason})\n"
    assert result.stderr == f"{V1_DEPRECATED}\n" + creating + error
    assert "req-1" not in result.output  # response headers are noise, left out
    if refused_at_once:
        assert calls(arm) == ["GET"]
