"""Managed online endpoints over SDK v2: the model behind Azure ML's inference server, in the image.

What Azure needs from a custom container is what azureml-examples' custom-container deployments
give it (cli/endpoints/online/custom-container/minimal/single-model/pip-in-dockerfile/
minimal-single-model-pip-in-dockerfile-deployment.yml): an environment with the image and an
``inference_config`` naming the liveness, readiness and scoring routes and their port, here the
inference server's own (``/``, ``/`` and ``/score`` on 5001); the registered model, which Azure
mounts under ``AZUREML_MODEL_DIR`` (/var/azureml-app/azureml-models/NAME/VERSION); and an image
whose own command starts the server, since Azure runs the image's ENTRYPOINT and CMD and takes
no command of its own (azure-ai-docs, how-to-deploy-custom-container.md): the ``serve`` target
of the Dockerfile, whose CMD is ``mnist-serve``, which finds the model below that folder.

Without an image, the deployment is Azure ML's no-code deployment of an MLflow model: for a
model registered as ``mlflow_model`` "you don't have to provide a scoring script or an
environment"; Azure generates both, with an MLflow base image and the model's own dependencies,
installed when the container starts, so it needs outbound network access (azure-ai-docs,
how-to-deploy-mlflow-models.md, "Deployment of MLflow models vs. custom models").

What the deployment declares rather than leaves to Azure's defaults (``request_settings``, ``probe``):
its request settings, probes and worker count, from the serving worker model in
``serve/settings.py``, so the deployment and ``mnist-serve`` cannot drift apart.

Traffic moves to a new deployment only once Azure reports it healthy (its provisioning ended
``Succeeded``, which needs the readiness route to answer); a deployment that never gets there is
one error line with the end of its container's log, and keeps no traffic.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    OnlineRequestSettings,
    ProbeSettings,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from serve import settings
from submit.errors import EndpointNotFound, SubmitError, remember_secret
from submit.network import progress, timeout_s
from submit.spec import (
    LIVENESS_PATH,
    READINESS_PATH,
    SCORING_PATH,
    SERVE_PORT,
    DeploymentSpec,
    EndpointSpec,
    InvokeSpec,
)
from trainer.jsonio import loads

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

LOG_LINES = 30  # asked of Azure; the error shows the last few that say something
INVOKE_DEPLOYMENT_HEADER = "azureml-model-deployment"  # azure/ai/ml/constants/_endpoint.py


def build_endpoint(spec: EndpointSpec) -> ManagedOnlineEndpoint:
    return ManagedOnlineEndpoint(
        name=spec.name, auth_mode=spec.auth_mode, description=spec.description
    )


# The headers a managed online endpoint adds to its 424, the answer it gives for any non-200
# answer of the model's container (azure-ai-docs, how-to-troubleshoot-online-endpoints.md,
# "Common error codes": "If your model container returns a non-200 response, Azure returns a
# 424 ... check response headers ms-azureml-model-error-statuscode and
# ms-azureml-model-error-reason").
MODEL_ERROR_STATUS = "ms-azureml-model-error-statuscode"
MODEL_ERROR_REASON = "ms-azureml-model-error-reason"

# Probes, declared rather than left to Azure's defaults. Both ask GET / (the inference
# config's routes, or the no-code server's own), which answers from memory once the model is
# loaded. These are the values azure-ai-ml documents as Azure's defaults (ProbeSettings:
# initial_delay 10 s, period 10 s, timeout 2 s, success 1, failure 30), written out so that a
# change of Azure's defaults cannot change the deployment: a container has 10 + 30 x 10 = 310 s
# to load TensorFlow and the model before it is restarted or kept out of traffic, and a probe
# never waits behind slow clients, since the threaded worker (serve/settings.py) answers it on a
# thread of its own.
PROBE = {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1}
PROBE_FAILURES = 30


def request_settings(no_code: bool) -> OnlineRequestSettings:
    """What the deployment declares instead of Azure's defaults (5 s request timeout and one
    request at a time per instance, then 429s: OnlineRequestSettings' documented defaults).

    With the serving image, the worker model is ``mnist-serve``'s (``serve.settings``): one
    worker with ``THREADS_PER_WORKER`` threads, each able to take a request. A no-code deployment
    runs Azure's server, whose gunicorn workers are synchronous (one request each), so it may be
    sent one request per worker. Azure answers 429 beyond twice that per instance
    (how-to-troubleshoot-online-endpoints.md, "Common error codes").
    """
    concurrent = settings.WORKERS if no_code else settings.MAX_CONCURRENT_REQUESTS
    return OnlineRequestSettings(
        request_timeout_ms=settings.REQUEST_TIMEOUT_S * 1000,
        max_concurrent_requests_per_instance=concurrent,
    )


def probe() -> ProbeSettings:
    return ProbeSettings(**PROBE, failure_threshold=PROBE_FAILURES)


def build_deployment(spec: DeploymentSpec) -> ManagedOnlineDeployment:
    environment = None
    if spec.image is not None:
        routes = {
            "liveness_route": {"port": SERVE_PORT, "path": LIVENESS_PATH},
            "readiness_route": {"port": SERVE_PORT, "path": READINESS_PATH},
            "scoring_route": {"port": SERVE_PORT, "path": SCORING_PATH},
        }
        environment = Environment(image=spec.image, inference_config=routes)
    return ManagedOnlineDeployment(
        name=spec.name,
        endpoint_name=spec.endpoint,
        model=f"azureml:{spec.model_name}:{spec.model_version}",
        environment=environment,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        request_settings=request_settings(no_code=spec.image is None),
        liveness_probe=probe(),
        readiness_probe=probe(),
        # The inference server's own variable for its gunicorn worker count (mnist-serve reads
        # it too, as --workers).
        environment_variables={"WORKER_COUNT": str(settings.WORKERS)},
    )


def dump_endpoint(endpoint: ManagedOnlineEndpoint) -> str:
    """The endpoint as YAML: its own ``dump`` returns a dict and writes nothing
    (entities/_endpoint/online_endpoint.py, ManagedOnlineEndpoint.dump), so this writes that
    dict the way every other entity's ``dump`` does (_utils/utils.py, dump_yaml_to_file)."""
    from azure.ai.ml._utils.utils import dump_yaml_to_file

    stream = io.StringIO()
    dump_yaml_to_file(stream, endpoint._to_dict())
    return stream.getvalue()


def log_tail(text: str, lines: int = 4) -> str:
    """The last ``lines`` non-empty lines of a container log, on one line."""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:] if kept else "(empty)"


class EndpointOperations:
    """The ``Endpoints`` half of the SDK v2 backend (``submit.sdk_v2.V2Backend``)."""

    @property
    def client(self) -> MLClient:
        raise NotImplementedError  # V2Backend's

    def render_endpoint(self, spec: EndpointSpec) -> str:
        return dump_endpoint(build_endpoint(spec))

    def render_deployment(self, spec: DeploymentSpec) -> str:
        # The deployment's own dump writes YAML (not submit.sdk_v2.dump, which imports this).
        stream = io.StringIO()
        build_deployment(spec).dump(stream)
        return stream.getvalue()

    def _endpoint(self, name: str) -> ManagedOnlineEndpoint:
        try:
            endpoint: ManagedOnlineEndpoint = self.client.online_endpoints.get(name)
        except ResourceNotFoundError:
            raise EndpointNotFound(name) from None
        return endpoint

    def create_endpoint(self, spec: EndpointSpec) -> str:
        endpoints = self.client.online_endpoints  # the workspace first: no line before its error
        progress(f"Creating endpoint {spec.name} ({spec.auth_mode} auth); this takes a minute ...")
        created = endpoints.begin_create_or_update(build_endpoint(spec)).result()
        return str(created.scoring_uri)

    def deploy(self, spec: DeploymentSpec) -> str:
        endpoint = self._endpoint(spec.endpoint)
        try:
            model = self.client.models.get(spec.model_name, version=spec.model_version)
        except ResourceNotFoundError:
            raise SubmitError(
                f"model {spec.model_name}:{spec.model_version} is not registered in the "
                "workspace: register it with `mnist-submit model register --sdk v2 RUN_ID`"
            ) from None
        kind = getattr(model, "type", None)
        if spec.image is None and kind != AssetTypes.MLFLOW_MODEL:
            raise SubmitError(
                f"model {spec.model_name}:{spec.model_version} is a {kind or 'custom_model'}, "
                "and only an MLflow model deploys without an image: pass --image with the "
                "serving image, or register the run's MLflow model (model register --sdk v2)"
            )
        deployments = self.client.online_deployments
        # A refused request (quota, an unknown size) raises here and is the SDK's one line.
        poller = deployments.begin_create_or_update(build_deployment(spec))
        progress(
            f"Deploying {spec.model_name}:{spec.model_version} as {spec.endpoint}/{spec.name} on "
            f"{spec.instance_count} x {spec.instance_type}; pulling the image and loading the "
            "model take 5-20 minutes ..."
        )
        try:
            deployed = poller.result()
            state = str(getattr(deployed, "provisioning_state", None))
            reason = f"it ended {state}"
        except HttpResponseError as exc:
            state, reason = "Failed", _reason(exc)
        if state != "Succeeded":
            raise SubmitError(
                f"deployment {spec.name} of endpoint {spec.endpoint} did not become healthy "
                f"({reason}); its container log ends: {self._log(spec)}; it takes no traffic: "
                f"fix it and deploy again, or `mnist-submit endpoint delete {spec.endpoint}`"
            )
        progress(
            f"Deployment {spec.name} is healthy; sending all traffic of {spec.endpoint} to it ..."
        )
        endpoint.traffic = {spec.name: 100}
        updated = self.client.online_endpoints.begin_create_or_update(endpoint).result()
        return str(getattr(updated, "scoring_uri", None) or endpoint.scoring_uri)

    def _log(self, spec: DeploymentSpec) -> str:
        try:
            text = self.client.online_deployments.get_logs(
                name=spec.name, endpoint_name=spec.endpoint, lines=LOG_LINES
            )
        except Exception as exc:  # the log is a courtesy: its absence must not hide the failure
            return f"(no log: {type(exc).__name__})"
        return log_tail(str(text))

    def invoke(self, spec: InvokeSpec) -> str:
        import requests

        endpoint = self._endpoint(spec.endpoint)
        if not endpoint.scoring_uri:
            raise SubmitError(
                f"endpoint {spec.endpoint} has no scoring URI yet: deploy a model to it with "
                f"`mnist-submit endpoint deploy {spec.endpoint} --model NAME:VERSION --image ...`"
            )
        keys = self.client.online_endpoints.get_keys(spec.endpoint)
        # Key auth gives keys, aml_token auth a token (azure/ai/ml/operations/
        # _online_endpoint_operations.py, invoke, which sends either as a bearer token).
        secret = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
        headers = {"Content-Type": spec.content_type}
        if secret:
            headers["Authorization"] = f"Bearer {remember_secret(str(secret))}"
        if spec.deployment:
            headers[INVOKE_DEPLOYMENT_HEADER] = spec.deployment
        timeout = timeout_s()
        response = requests.post(
            str(endpoint.scoring_uri), data=spec.body, headers=headers, timeout=(timeout, timeout)
        )
        if response.status_code != 200:
            raise SubmitError(
                f"endpoint {spec.endpoint} answered {_status(response)}: {_answer_reason(response)}"
            )
        return str(response.text)

    def delete_endpoint(self, name: str) -> None:
        self._endpoint(name)
        progress(f"Deleting endpoint {name} and its deployments; this takes a few minutes ...")
        self.client.online_endpoints.begin_delete(name=name).result()


def _reason(exc: HttpResponseError) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return _one_line(message) or type(exc).__name__


def _one_line(text: object, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _status(response: object) -> str:
    """The answer's status; for Azure's 424, what the model's container answered, from the
    headers Azure adds (``MODEL_ERROR_STATUS``, ``MODEL_ERROR_REASON``)."""
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    if status != 424:
        return str(status)
    code = _one_line(headers.get(MODEL_ERROR_STATUS) or "", 20)
    reason = _one_line(headers.get(MODEL_ERROR_REASON) or "", 200)
    if not code and not reason:
        return "424 (a model error: its container answered something other than 200)"
    said = f"{code}: {reason}" if code and reason else code or reason
    return f"424 (a model error: its container answered {said})"


def _answer_reason(response: object) -> str:
    """The scoring entry's ``{"message": ...}``, or the start of whatever else came back."""
    body = getattr(response, "content", b"") or b""
    try:
        doc = loads(body, what="the endpoint's answer")  # depth-bounded: it comes from outside
    except ValueError:
        doc = None
    message = doc.get("message") if isinstance(doc, dict) else None
    text = message if isinstance(message, str) else getattr(response, "text", "")
    return _one_line(text) or "(no body)"
