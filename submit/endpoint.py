"""``mnist-submit endpoint``: a registered model behind an Azure ML managed online endpoint.

Only SDK v2 has online endpoints, so these commands default to ``--sdk v2`` and answer
``--sdk v1`` with one line saying so (``submit.boundary.endpoints``). The work is
``submit.sdk_v2_endpoints``'s; every command crosses ``submit.boundary`` as the others do.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import click

from submit.boundary import Common, call, endpoints, perform
from submit.options import CONTEXT, asset, common_options, dry_run_option
from submit.spec import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_INSTANCE_TYPE,
    INVOKE_TYPES,
    MAX_INVOKE_BYTES,
    NAME_PATTERN,
    DeploymentSpec,
    EndpointSpec,
    InvokeSpec,
    image_tag,
)

SDK_HELP = (
    "Azure ML SDK: only v2 (azure-ai-ml) has managed online endpoints; v1 answers with a "
    "pointer to v2. [env: MNIST_SUBMIT_SDK]"
)
endpoint_options = common_options(default_sdk="v2", sdk_help=SDK_HELP)


def check_name(what: str) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback refusing names Azure would refuse, before anything is sent."""

    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise click.BadParameter(
                f"{value!r}: {what} names are 3-32 letters, digits and hyphens, starting with "
                "a letter and not ending with a hyphen"
            )
        return value

    return check


name_argument = click.argument("name", callback=check_name("endpoint"))


def check_tag(image: str | None) -> None:
    """Refuse a serving image without a fixed tag (a deployment must be repeatable), or with
    credentials in it (the error does not repeat them)."""
    if image is not None and "@" in image.split("://", 1)[-1].split("/", 1)[0]:
        raise click.BadParameter(
            "the image reference holds credentials (USER:PASSWORD@ before the registry): give "
            "REGISTRY/NAME:TAG; Azure pulls it with the workspace's own registry access",
            param_hint="--image",
        )
    tag = image_tag(image) if image is not None else None
    if image is not None and (tag is None or tag == "latest"):
        raise click.BadParameter(
            f"{image!r} has no fixed tag: push the serving image as NAME:VERSION (e.g. 0.1.0)",
            param_hint="--image",
        )


@click.group(context_settings=CONTEXT)
def endpoint() -> None:
    """Serve a registered model on an Azure ML managed online endpoint (SDK v2).

    \b
    From a registered model to predictions:
      mnist-submit endpoint create mnist-ep
      mnist-submit endpoint deploy mnist-ep --model keras-mnist:1 \\
          --image myacr.azurecr.io/keras-mnist-serve:0.1.0
      mnist-submit endpoint invoke mnist-ep --file digit.png
      mnist-submit endpoint delete mnist-ep
    """


@endpoint.command("create", context_settings=CONTEXT)
@name_argument
@click.option(
    "--auth",
    "auth_mode",
    type=click.Choice(["key", "aml_token"]),
    default="key",
    show_default=True,
    help="key: keys that do not expire; aml_token: tokens that do. Neither is ever printed.",
)
@dry_run_option
@endpoint_options
def endpoint_create(common: Common, name: str, auth_mode: str, dry_run: bool) -> None:
    """Create (or update) a managed online endpoint: a stable HTTPS scoring URI.

    \b
    Example:
      mnist-submit endpoint create mnist-ep
    """
    spec = EndpointSpec(name=name, auth_mode=auth_mode)
    perform(
        common,
        dry_run,
        render=lambda be: be.render_endpoint(spec),
        act=lambda be: (
            f"Endpoint {name} ready ({auth_mode} auth): {be.create_endpoint(spec)}\n"
            f"Deploy a model to it with `mnist-submit endpoint deploy {name} --model keras-mnist:1 "
            "--image REGISTRY/keras-mnist-serve:TAG`"
        ),
        using=endpoints,
    )


@endpoint.command("deploy", context_settings=CONTEXT)
@name_argument
@click.option(
    "--model",
    "model_ref",
    required=True,
    metavar="NAME:VERSION",
    help="The registered model (mnist-submit model register).",
)
@click.option(
    "--image",
    metavar="REGISTRY/NAME:TAG",
    help="The serving image: the trainer image built with `--target serve`, whose own command "
    "is mnist-serve (Azure runs an image's command; it takes none of its own). Without it, the "
    "model must be an MLflow model (model register --sdk v2), which Azure deploys without "
    "code or image of ours (no-code deployment).",
)
@click.option(
    "--deployment",
    "deployment",
    default=DEFAULT_DEPLOYMENT,
    show_default=True,
    callback=check_name("deployment"),
    help="Deployment name; it gets all the endpoint's traffic once healthy.",
)
@click.option(
    "--instance-type",
    default=DEFAULT_INSTANCE_TYPE,
    show_default=True,
    help="VM size; azure-ai-ml recommends no smaller for general purpose endpoints.",
)
@click.option("--instance-count", type=click.IntRange(min=1), default=1, show_default=True)
@dry_run_option
@endpoint_options
def endpoint_deploy(
    common: Common,
    name: str,
    model_ref: str,
    image: str | None,
    deployment: str,
    instance_type: str,
    instance_count: int,
    dry_run: bool,
) -> None:
    """Deploy a registered model; traffic moves to it only once it is healthy.

    The deployment runs the serving image with Azure ML's inference server (liveness and
    readiness GET / and scoring POST /score, port 5001); Azure mounts the model and points
    AZUREML_MODEL_DIR at it. Without --image, an MLflow model is deployed without code (Azure's
    image and server; requests in its MLflow format, {"input_data": ...}). Request timeout,
    concurrent requests per instance, probes and worker count are set from mnist-serve's
    worker model (docs/serving.md). An unhealthy deployment is one error line with the end of
    its log.

    \b
    Examples:
      mnist-submit endpoint deploy mnist-ep --model keras-mnist:1 \\
          --image myacr.azurecr.io/keras-mnist-serve:0.1.0
      mnist-submit endpoint deploy mnist-ep --model keras-mnist-mlflow:1
    """
    model_name, model_version = asset(model_ref, "--model")
    check_tag(image)
    spec = DeploymentSpec(
        endpoint=name,
        model_name=model_name,
        model_version=model_version,
        image=image,
        name=deployment,
        instance_type=instance_type,
        instance_count=instance_count,
    )
    perform(
        common,
        dry_run,
        render=lambda be: be.render_deployment(spec),
        act=lambda be: (
            f"Deployment {deployment} of endpoint {name} is healthy and takes all "
            f"its traffic: {be.deploy(spec)}"
        ),
        using=endpoints,
    )


@endpoint.command("invoke", context_settings=CONTEXT)
@name_argument
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(path_type=Path),
    help='The request: a .json file ({"data": [...]}, pixels as integers 0-255 or decimals in '
    '[0, 1], never true/false; a no-code MLflow deployment takes Azure\'s {"input_data": ...}), '
    "a .png or .pgm image of a digit, or an .idx file of images (docs/serving.md). At most "
    "16 MiB, and a regular file.",
)
@click.option("--deployment", help="Ask this deployment, whatever the traffic rules say.")
@endpoint_options
def endpoint_invoke(common: Common, name: str, path: Path, deployment: str | None) -> None:
    """Send a request to the endpoint and print its answer (JSON: a label and ten
    probabilities per image).

    \b
    Example:
      mnist-submit endpoint invoke mnist-ep --file digit.png
    """
    content_type = INVOKE_TYPES.get(path.suffix.lower())
    if content_type is None:
        raise click.BadParameter(
            f"{path.name}: send a {', '.join(sorted(INVOKE_TYPES))} file", param_hint="--file"
        )
    spec = InvokeSpec(
        endpoint=name,
        body=read_request(path, MAX_INVOKE_BYTES),
        content_type=content_type,
        deployment=deployment,
    )
    click.echo(call(endpoints(common).invoke, spec))


@endpoint.command("delete", context_settings=CONTEXT)
@name_argument
@endpoint_options
def endpoint_delete(common: Common, name: str) -> None:
    """Delete the endpoint and every deployment in it (billing stops).

    \b
    Example:
      mnist-submit endpoint delete mnist-ep
    """
    call(endpoints(common).delete_endpoint, name)
    click.echo(f"Deleted endpoint {name} and its deployments")


def read_request(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them, or one line.

    What the name points at is checked on the open file itself (``fstat`` after ``open``), so a
    link to ``/dev/zero``, a FIFO, a socket or a folder is refused before a byte is read, and a
    swap of the file between a check and the open changes nothing. ``O_NONBLOCK``: opening a
    FIFO with no writer would otherwise wait forever. The size is checked twice: announced by
    ``fstat`` and counted while reading, since a file that grows meanwhile (or a kernel file
    that reports 0) must not be read without end.
    """

    def refuse(why: str) -> click.BadParameter:
        return click.BadParameter(f"{path.name} {why}", param_hint="--file")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise refuse(f"cannot be read: {os.strerror(exc.errno or errno.EIO)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("is not a regular file (a device, FIFO, socket or folder): send a file")
        if info.st_size > limit:
            raise refuse(f"is {info.st_size:,} bytes; the endpoint takes at most {limit:,}")
        with os.fdopen(fd, "rb", closefd=False) as file:
            body = file.read(limit + 1)
    finally:
        os.close(fd)
    if len(body) > limit:
        raise refuse(f"is more than {limit:,} bytes; the endpoint takes at most {limit:,}")
    return body
