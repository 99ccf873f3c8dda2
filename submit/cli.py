"""mnist-submit: register the trainer image, data and a GPU cluster on Azure ML, then train.

Thin on purpose: one module per command (``submit/env.py``, ``data.py``, ``compute.py``,
``run.py``, ``sweep.py``, ``model.py``, ``endpoint.py``), each turning its options into a spec
(``submit.spec``) that the chosen SDK's backend works on (``submit.sdk_v2`` / ``submit.sdk_v1``,
imported only when a command runs) through the one boundary, ``submit.boundary``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from submit import __version__
from submit.compute import compute
from submit.data import data
from submit.endpoint import endpoint
from submit.env import env
from submit.model import model
from submit.options import CONTEXT
from submit.run import run
from submit.sweep import sweep


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="mnist-submit")
def cli() -> None:
    """Run the Keras MNIST trainer image on Azure ML: register, train, sweep, collect.

    \b
    From nothing to a trained model (SDK v2, azure-ai-ml; add --sdk v1 for azureml-core):
      mnist-submit env register --image myacr.azurecr.io/keras-mnist-trainer:0.1.0
      mnist-submit data register --dataset mnist
      mnist-submit compute create --name gpu-cluster
      mnist-submit run --data mnist:1 --wait -- --epochs 20
      mnist-submit model register RUN_ID
      mnist-submit model download keras-mnist:1 --target ./model
      mnist-submit endpoint create mnist-ep   (then endpoint deploy/invoke/delete)

    SDK v1 (--sdk v1, azureml-core) reached end of support on 30 June 2026 and gets no fixes;
    it takes the same commands except endpoint, and says so on stderr each time.

    The workspace comes from config.json or --subscription-id/--resource-group/
    --workspace-name. Sign-in is azure-identity's DefaultAzureCredential and never prompts: a
    service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET), workload
    identity, a managed identity (AZURE_CLIENT_ID alone names a user-assigned one), then the
    sign-ins of VS Code, the Azure CLI (`az login`), Azure PowerShell and the Azure Developer CLI.

    Every network wait lasts at most $MNIST_SUBMIT_TIMEOUT seconds (default 60); a request that
    gets no answer in that time ends the command with one Error line.
    """


for command in (env, data, compute, run, sweep, model, endpoint):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``mnist-submit``); tests call ``main([...])``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="mnist-submit")
