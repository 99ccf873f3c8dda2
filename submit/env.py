"""``mnist-submit env register``: the trainer image as an Azure ML Environment."""

from __future__ import annotations

from pathlib import Path

import click

from submit.boundary import perform
from submit.options import CONTEXT, common_options, dry_run_option
from submit.password import PASSWORD_VAR, registry_password
from submit.spec import DEFAULT_ENV_NAME, DEFAULT_ENV_VERSION, EnvSpec, image_tag
from submit.workspace import Common


@click.group(context_settings=CONTEXT)
def env() -> None:
    """Register the trainer image as an Azure ML Environment."""


@env.command("register", context_settings=CONTEXT)
@click.option(
    "--image",
    metavar="REGISTRY/NAME:TAG[@DIGEST]",
    help="The trainer image; its tag becomes the Environment's version. Add the digest that "
    "the push printed (@sha256:...) and the Environment names the image by it: a node that "
    "cached an earlier push of the same tag would run that one.",
)
@click.option(
    "--dockerfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Let Azure ML build this Dockerfile (its folder is the build context) instead.",
)
@click.option("--name", default=DEFAULT_ENV_NAME, show_default=True, help="Environment name.")
@click.option(
    "--version",
    "env_version",
    metavar="VERSION",
    help=f"Environment version [default: the image tag; {DEFAULT_ENV_VERSION} with "
    "--dockerfile]. Never 'latest'.",
)
@click.option(
    "--registry-username",
    metavar="USER",
    help="Registry user, only for a registry other than the workspace's own. The "
    f"password comes from ${PASSWORD_VAR} or --registry-password-stdin, never argv.",
)
@click.option(
    "--registry-password-stdin",
    is_flag=True,
    help="Read the registry password from standard input (as `docker login` does).",
)
@dry_run_option
@common_options
def env_register(
    common: Common,
    image: str | None,
    dockerfile: Path | None,
    name: str,
    env_version: str | None,
    registry_username: str | None,
    registry_password_stdin: bool,
    dry_run: bool,
) -> None:
    """Register the image with user-managed dependencies (the image's own Python).

    \b
    Example:
      mnist-submit env register --image myacr.azurecr.io/keras-mnist-trainer:0.1.0
      mnist-submit env register --dockerfile Dockerfile --dry-run
    """
    if (image is None) == (dockerfile is None):
        raise click.UsageError("pass exactly one of --image and --dockerfile")
    version = env_version or (image_tag(image) if image else DEFAULT_ENV_VERSION)
    if version is None:
        raise click.BadParameter(
            f"{image!r} has no tag: push and pass NAME:TAG", param_hint="--image"
        )
    if version == "latest":
        raise click.BadParameter(
            "'latest' floats: tag the image with its version (e.g. 0.1.0)",
            param_hint="--image/--version",
        )
    password = registry_password(registry_password_stdin) if registry_username else None
    spec = EnvSpec(
        name=name,
        version=version,
        image=image,
        build_context=dockerfile.resolve().parent if dockerfile else None,
        dockerfile=dockerfile.name if dockerfile else "Dockerfile",
        registry_username=registry_username,
        registry_password=password,
    )
    perform(
        common,
        dry_run,
        render=lambda be: be.render_environment(spec),
        act=lambda be: f"Registered environment {be.register_environment(spec)} (SDK {common.sdk})",
    )
