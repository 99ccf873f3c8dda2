"""mnist-serve: start Azure ML's inference server on the trainer's model, and nothing more.

Thin on purpose: it checks the model folder (``serve.model``, no TensorFlow), then replaces itself
with the server's own command, ``python -m azureml_inference_server_http`` (what ``azmlinfsrv``
runs), with ``serve/score.py`` as the entry script. So the server's routes, logs, settings and
signals are the server's: gunicorn is the process that ``docker stop`` and Azure ML talk to.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from serve import __version__, backends, settings
from serve.model import ModelError, check_model, find_model

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
SCORE = Path(__file__).with_name("score.py")
SERVER_MODULE = "azureml_inference_server_http"
DEFAULT_PORT = 5001  # the server's own default (constants.py), which Azure ML's routes name
# Replaced by tests, which check the command instead of running it.
exec_server = os.execve


@click.command(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="mnist-serve")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    envvar="AZUREML_MODEL_DIR",
    metavar="PATH",
    help="The folder mnist-train wrote its model to (OUTPUT_DIR/model), or a folder with it at "
    "most two levels below, as Azure ML mounts a registered model. [env: AZUREML_MODEL_DIR]",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port of the scoring and health routes, on every interface (the server listens on "
    "0.0.0.0).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=settings.WORKERS,
    show_default=True,
    envvar="WORKER_COUNT",
    help="Server worker processes, each with its own copy of the model and "
    f"{settings.THREADS_PER_WORKER} threads, so one answers up to "
    f"{settings.THREADS_PER_WORKER} requests at once (serve/settings.py). "
    "[env: WORKER_COUNT, the server's own]",
)
@click.option(
    "--backend",
    type=click.Choice(backends.BACKENDS),
    default="auto",
    show_default=True,
    help="What runs the model: tensorflow (Keras on model.keras) or onnx (onnxruntime on "
    "model.onnx, no TensorFlow needed); auto takes TensorFlow where it is installed, else onnx.",
)
def cli(model_dir: Path | None, port: int, workers: int, backend: str) -> None:
    """Serve a model mnist-train wrote with Azure ML's inference server.

    POST images to /score: JSON ({"data": [...]}, 28x28 lists or 784-long rows of 0-255), a PNG
    or PGM of a digit, or an idx body (docs/serving.md). Each answer lists, per image, the
    predicted label and the ten probabilities. GET / answers 200 once the model is loaded
    (liveness and readiness, as Azure ML probes them).

    \b
    Examples:
      mnist-serve --model outputs/model
      curl -H 'Content-Type: image/png' --data-binary @digit.png http://127.0.0.1:5001/score
      docker run -p 5001:5001 -v "$PWD/outputs/model:/model:ro" IMAGE mnist-serve --model /model
    """
    if model_dir is None:
        raise click.ClickException(
            "no model given: pass --model PATH (the folder mnist-train wrote, e.g. "
            "outputs/model) or set AZUREML_MODEL_DIR"
        )
    try:
        info = check_model(find_model(model_dir))
        chosen = backends.choose(backend, info.folder)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    if importlib.util.find_spec(SERVER_MODULE) is None:
        raise click.ClickException(
            "mnist-serve needs azureml-inference-server-http, which is not installed: "
            "pip install 'keras-mnist-trainer[serve]'"
        )
    argv = [sys.executable, "-m", SERVER_MODULE, "--entry_script", str(SCORE)]
    argv += ["--model_dir", str(info.folder.resolve()), "--port", str(port)]
    argv += ["--worker_count", str(workers)]
    env = dict(os.environ)
    # The server reads config.json and logging.json from AML_APP_ROOT (default: the current
    # folder; server/config.py, get_config_file) and would take a workspace's config.json there
    # for its own. Azure ML sets the variable to its code folder; here it is this package's.
    env.setdefault("AML_APP_ROOT", str(SCORE.parent))
    # TensorFlow's C++ INFO lines at import (oneDNN, CUDA probes), as the trainer hides them
    # (trainer/runtime.py); warnings still show. Read before TensorFlow is first imported.
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    env[backends.BACKEND_VAR] = chosen
    # The worker model (serve/settings.py says why): the server builds gunicorn's command line
    # without a worker class (amlserver_linux.py), and gunicorn reads GUNICORN_CMD_ARGS under
    # it. The user's own arguments come last, so they win.
    env["GUNICORN_CMD_ARGS"] = " ".join(
        (*settings.GUNICORN_ARGS, env.get("GUNICORN_CMD_ARGS", ""))
    ).strip()
    model_file = info.folder / backends.ONNX_FILE if chosen == "onnx" else None
    shown = f"{model_file} ({info.widths()})" if model_file else info.describe()
    click.echo(
        f"Serving {shown} with {chosen} on port {port} with {workers} worker(s) of "
        f"{settings.THREADS_PER_WORKER} threads: POST /score, GET / for liveness and readiness",
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    exec_server(sys.executable, argv, env)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``mnist-serve``); tests call ``main([...])``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="mnist-serve")
