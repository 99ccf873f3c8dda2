"""The container registry password: read from stdin or the environment, never from argv."""

from __future__ import annotations

import os
import sys

import click

from submit.errors import remember_secret

PASSWORD_VAR = "MNIST_SUBMIT_REGISTRY_PASSWORD"


def registry_password(from_stdin: bool) -> str:
    """The registry password from stdin or $MNIST_SUBMIT_REGISTRY_PASSWORD: never from argv,
    where any user of the machine could read it in the process list. Remembered as a secret, so
    every line printed afterwards masks it."""
    password = sys.stdin.readline().rstrip("\n") if from_stdin else os.environ.get(PASSWORD_VAR)
    if not password:
        raise click.UsageError(
            f"--registry-username needs a password: set ${PASSWORD_VAR} or use "
            "--registry-password-stdin"
        )
    return remember_secret(password)
