"""The scoring entry Azure ML's inference server loads: ``init()`` once per worker, ``run()`` per
request. ``mnist-serve`` passes this file as the server's ``--entry_script``.

The contract is the server's own (azureml-inference-server-http 1.5.1, whose source is in the
installed package ``azureml_inference_server_http``):

- ``server/user_script.py``: the entry script must define ``init()`` and ``run()``; ``init()``
  runs when a worker starts, before it takes a request, and a worker whose ``init()`` raises
  exits with status 3, which stops gunicorn ("Worker failed to boot");
- ``api/aml_request.py``: ``@rawhttp`` on ``run`` makes the server pass it the Flask request
  itself (``server/input_parsers.py``, ``RawRequestInput``), so PNG, PGM and idx bodies reach
  ``run`` as the bytes they are, with their Content-Type;
- ``server/routes.py``, ``handle_score``: a ``flask.Response`` that ``run`` returns (such as
  ``api/aml_response.py``'s ``AMLResponse``) is sent as it is, status and headers included; the
  server's own errors are ``{"message": ...}`` bodies, and so are this module's 4xx answers;
- ``amlserver.py``, ``merge_configuration``: ``--model_dir`` becomes ``AZUREML_MODEL_DIR``, the
  variable Azure ML's online endpoints set to the registered model's folder and that
  azureml-examples' scoring scripts read in ``init()`` (cli/endpoints/online/model-1/
  onlinescoring/score.py).

Each answer carries a ``Server-Timing`` header (W3C Server Timing) with the milliseconds spent
decoding the body, in the model and encoding the answer, which ``mnist-bench serve`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

# The server ships no type information (no py.typed): pyproject.toml lets mypy skip it.
from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import (
    AMLResponse,
)
from gunicorn.http.errors import ParseException

from serve import backends, settings
from serve.decode import MAX_BYTES, RequestError, decode
from serve.model import ModelError, check_model, find_model

MODEL_DIR_VAR = "AZUREML_MODEL_DIR"
READ_SIZE = 1 << 16
log = logging.getLogger("azmlinfsrv.mnist")  # under the server's logger, which it configures

predictor: backends.Predictor | None = None


def init() -> None:
    """Load the model below ``$AZUREML_MODEL_DIR`` once, before the worker takes requests, with
    the backend ``mnist-serve`` chose (``$MNIST_SERVE_BACKEND``; ``auto`` when unset)."""
    global predictor
    root = os.environ.get(MODEL_DIR_VAR)
    if not root:
        raise ModelError(f"{MODEL_DIR_VAR} is not set: start the server with mnist-serve --model")
    info = check_model(find_model(Path(root)))
    backend = backends.choose(os.environ.get(backends.BACKEND_VAR, "auto"), info.folder)
    predictor = backends.load(info.folder, info, backend)
    log.info("serving %s with %s", info.describe(), backend)


@rawhttp
def run(request: Any) -> AMLResponse:
    """Predict the images in one request (``serve.decode`` lists the bodies it accepts)."""
    if request.method != "POST":
        return _error(405, "POST the images to /score", {"Allow": "POST"})
    if predictor is None:  # init() failed, and the server went on (it does not, but be plain)
        return _error(503, "the model is not loaded")
    start = time.perf_counter()
    try:
        pixels, _ = decode(read_body(request), request.content_type)
    except RequestError as exc:
        return _error(exc.status, exc.message)
    decoded = time.perf_counter()
    probabilities = predictor(pixels)
    predicted = time.perf_counter()
    text = encode(probabilities)
    encoded = time.perf_counter()
    timing = ", ".join(
        f"{name};dur={1e3 * (end - begin):.3f}"
        for name, begin, end in (
            ("decode", start, decoded),
            ("model", decoded, predicted),
            ("encode", predicted, encoded),
        )
    )
    response = AMLResponse(text, 200, {"Content-Type": "application/json"})
    # Set here, not through AMLResponse's headers, which it splits at every comma.
    response.headers["Server-Timing"] = timing
    return response


def read_body(request: Any) -> bytes:
    """At most ``MAX_BYTES`` of the body, within ``REQUEST_TIMEOUT_S``; a longer one is a 413,
    a slower one a 408, a cut or malformed one (a bad chunk size, a chunk cut short) a 400."""
    too_big = RequestError(
        413, f"the body is over {MAX_BYTES:,} bytes (16 MiB), the most one request may carry"
    )
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise too_big
    # gunicorn's threads read with blocking sockets and no timeout (workers/gthread.py): a
    # client that stops sending would hold this thread for good. Its socket is in the WSGI
    # environ; each read below waits at most until the request's deadline.
    sock = request.environ.get("gunicorn.socket")
    deadline = time.monotonic() + settings.REQUEST_TIMEOUT_S
    parts: list[bytes] = []
    size = 0
    try:
        while size <= MAX_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if sock is not None:
                sock.settimeout(left)
            # The stream ends at Content-Length, or with the last chunk of a chunked body.
            part = request.stream.read(min(READ_SIZE, MAX_BYTES + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
    except TimeoutError:
        raise RequestError(
            408, f"the body did not arrive within {settings.REQUEST_TIMEOUT_S} s"
        ) from None
    except (ParseException, OSError) as exc:  # NoMoreData is an OSError
        raise RequestError(
            400, f"the body is cut short or its chunked encoding is malformed ({_first_line(exc)})"
        ) from None
    finally:
        if sock is not None:
            sock.settimeout(None)
    if size > MAX_BYTES:
        raise too_big
    return b"".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def encode(probabilities: np.ndarray) -> str:
    """``{"predictions": [{"label": 7, "probabilities": [10 floats]}, ...]}``, one per image.

    ``label`` is the most probable class (0-9: the digit for MNIST, the article for
    Fashion-MNIST); the probabilities are the model's float32 values, written exactly.
    """
    labels = probabilities.argmax(axis=1).tolist()
    rows = probabilities.astype(np.float64).tolist()
    return json.dumps(
        {
            "predictions": [
                {"label": label, "probabilities": row}
                for label, row in zip(labels, rows, strict=True)
            ]
        }
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> AMLResponse:
    response = AMLResponse({"message": message}, status, json_str=True)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
