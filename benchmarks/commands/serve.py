"""``mnist-bench serve``: the real inference server on 127.0.0.1, backend against backend, and
each against the model's own call.

For every serving backend asked for (``mnist-serve --backend tensorflow`` and ``--backend
onnx``), a server is started on a model the trainer wrote (``benchmarks.serving``). For each
batch size and body (JSON, idx; PNG at one image), at each concurrency level, in alternating
rounds, the same requests go to every backend's server, and in between the model is called in
this process on the same pixels: the server's own TensorFlow predictor (``predict_on_batch``,
"model call") and Keras's ``model.predict``, and onnxruntime's session on ``model.onnx``.
"Added latency" is the p50 latency minus the p50 model call of the same backend on the same
batch: what serving adds to the model. Before anything is timed, each body kind's answer from
every server is checked against its backend's model on the same pixels.

Also measured: each backend's time to readiness (a fresh server process, from its start to the
first 200 of ``GET /``), in rounds, and, when given, the size of each serving image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import flags
from benchmarks.errors import BenchmarkError
from benchmarks.report import (
    Result,
    fmt,
    log,
    run_suite,
    table,
)
from benchmarks.rounds import alternate, order
from benchmarks.serving import (
    BODIES,
    CONTENT_TYPES,
    Sample,
    Server,
    check_answers,
    encode_body,
    http_block,
    p50,
    running_server,
    time_calls,
)
from benchmarks.stats import percentiles

BACKENDS = ("tensorflow", "onnx")
ONNX_FILE = "model.onnx"
UNITS = {
    "requests_per_s": "requests/s (timed requests / their wall time, all client threads)",
    "images_per_s": "images/s (requests/s x batch size)",
    "latency_ms_p50": "ms, send to last byte (percentile over requests)",
    "latency_ms_p90": "ms, send to last byte (percentile over requests)",
    "latency_ms_p99": "ms, send to last byte (percentile over requests)",
    "run_fn_ms_p50": "ms in run(), the server's x-ms-run-fn-exec-ms (p50)",
    "decode_ms_p50": "ms decoding the body in the server (Server-Timing, p50)",
    "model_ms_p50": "ms in the model in the server (Server-Timing, p50)",
    "encode_ms_p50": "ms writing the JSON answer in the server (Server-Timing, p50)",
    "framework_ms_p50": "ms of latency outside run(): HTTP, gunicorn, Flask (p50 per request)",
    "call_ms_p50": "ms per model call in process, same batch and backend (p50)",
    "predict_ms_p50": "ms per model.predict in process, same batch (p50)",
    "added_ms_p50": "ms, latency p50 - model call p50",
    "vs_predict": "images/s over model.predict's images/s on the same batch",
    "vs_call": "images/s over the model call's images/s on the same batch",
    "new_connections_pct": "% of timed requests that opened a connection",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    backends: tuple[str, ...] = BACKENDS
    batch_sizes: tuple[int, ...] = (1, 32, 256, 1024)
    concurrency: tuple[int, ...] = (1, 4)  # client threads
    bodies: tuple[str, ...] = BODIES  # PNG carries one image, so it runs at batch 1 only
    # Timed requests per block at up to 32 images a request; fewer for bigger batches (a
    # 1,024-image JSON body is 3 MB), but never under 10.
    requests: int = 200
    warmup: int = 10  # untimed requests before each block
    rounds: int = 2  # the backends' HTTP blocks and the in-process blocks alternate
    predict_calls: int = 10  # model.predict per in-process block: 77+ ms each on 2 cores
    call_calls: int = 200  # model calls per in-process block
    workers: int = 1  # the server's default (WORKER_COUNT)
    block_deadline_s: float = 120.0

    def requests_at(self, batch: int) -> int:
        return max(10, min(self.requests, self.requests * 32 // batch))


QUICK = Settings(batch_sizes=(1, 32), concurrency=(1, 2), requests=40, rounds=1, predict_calls=3)


def options(f: flags.F) -> flags.F:
    return flags.apply(
        f,
        flags.quick("About a minute: batch 1 and 32, 1 and 2 clients, 40 requests a block."),
        click.option(
            "--model",
            "model_dir",
            type=click.Path(file_okay=False),
            default="outputs/model",
            show_default=True,
            help="The folder mnist-train wrote its model to.",
        ),
        flags.data,
        click.option(
            "--backends",
            callback=_backend_list,
            help="Serving backends to compare, comma-separated [tensorflow,onnx].",
        ),
        flags.batch_sizes("1,32,256,1024; quick 1,32"),
        click.option(
            "--concurrency", callback=flags.int_list, help="Client threads [1,4; quick 1,2]."
        ),
        click.option(
            "--requests",
            type=click.IntRange(min=1),
            help="Timed requests per block up to batch 32, after 10 untimed [200; quick 40].",
        ),
        flags.rounds("2; quick 1"),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Server worker processes (the server's WORKER_COUNT).",
        ),
        click.option(
            "--image",
            "images",
            multiple=True,
            metavar="NAME[=MB]",
            callback=_image_list,
            help="A serving image to report the size of: given in MB, else read with "
            "`podman image inspect`. Repeat for each image.",
        ),
    )


def _backend_list(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise click.BadParameter(f"{value!r}: choose from {', '.join(BACKENDS)}")
    return names


def _image_list(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    for item in value:
        name, sep, size = item.partition("=")
        try:
            ok = bool(name) and (not sep or float(size) > 0)
        except ValueError:
            ok = False
        if not ok:
            raise click.BadParameter(f"{item!r}: give NAME or NAME=MB (a positive size)")
    return value


@click.command("serve")
@options
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Serving: mnist-serve's backends side by side, and each against the model's own call.

    Starts mnist-serve on the model once per backend, checks its answers, then sends the same
    real test images as idx and JSON bodies (and PNG, one image) at each batch size and
    concurrency to each, in alternating rounds with the model itself in this process. Reports
    requests/s, images/s, latency percentiles, where a request's time goes, the latency serving
    adds to the model, each backend's time to readiness and, when given, image sizes.

    \b
    Example:
      mnist-bench serve --model outputs/model --json serve.jsonl --chart serve.png
    """
    run_suite(measure, json_path, chart_path, given)


def measure(
    quick: bool = False,
    model_dir: str = "outputs/model",
    data_folder: str = flags.DEFAULT_DATA_FOLDER,
    dataset: str = "fashion-mnist",
    download: bool = False,
    images: tuple[str, ...] = (),
    **given: Any,
) -> Result:
    """Every record of the serving suite, as one result (``given``: :class:`Settings` fields)."""
    from trainer.data import load_dataset

    folder = _model_folder(Path(model_dir))  # before TensorFlow's import: refused at once
    base = QUICK if quick else Settings()
    settings = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    backends, notes = usable_backends(folder, settings.backends)
    for note in notes:
        log(note)
    settings = dataclasses.replace(settings, backends=backends)
    splits = load_dataset(data_folder, dataset, download=download)
    predictors, env = load_predictors(folder, backends)
    ready = readiness(folder, settings, log)
    rows = run(folder, splits.x_test, settings, predictors, log)
    sizes = image_sizes(images)
    return Result(
        suite="serve",
        records=[*rows, *ready, *sizes],
        text=text(rows, ready, sizes, settings, dataset, notes),
        units=UNITS,
        environment=env,
        chart=partial(chart, rows),
        title=f"mnist-bench serve, {dataset}, {env.get('tensorflow', {}).get('device_name', '')}",
    )


def _model_folder(model_dir: Path) -> Path:
    from serve.model import ModelError, check_model, find_model

    try:
        return check_model(find_model(model_dir)).folder
    except ModelError as exc:
        raise BenchmarkError(str(exc)) from None


def usable_backends(folder: Path, asked: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The backends that can run here, and one line for each that cannot and why."""
    import importlib.util

    from serve.cli import cli

    takes_backend = any(p.name == "backend" for p in cli.params)
    reasons = {
        "tensorflow": "TensorFlow is not installed"
        if importlib.util.find_spec("tensorflow") is None
        else None,
        "onnx": "mnist-serve has no --backend flag yet"
        if not takes_backend
        else f"the model folder has no {ONNX_FILE}"
        if not (folder / ONNX_FILE).is_file()
        else "onnxruntime is not installed"
        if importlib.util.find_spec("onnxruntime") is None
        else None,
    }
    usable = tuple(b for b in asked if reasons[b] is None)
    notes = [f"serve: the {b} backend is not compared: {reasons[b]}" for b in asked if reasons[b]]
    if not usable:
        raise BenchmarkError("no serving backend can run here: " + "; ".join(notes))
    return usable, notes


def load_predictors(
    folder: Path, backends: tuple[str, ...]
) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, Any]]:
    """Each backend's model in this process (uint8 (n, 784) in, probabilities out)."""
    predictors: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    env: dict[str, Any] = {}
    if "tensorflow" in backends:
        from benchmarks.device import describe_tensorflow
        from serve.model import ModelError, load
        from trainer.config import TrainConfig
        from trainer.runtime import configure_process, configure_runtime

        configure_process(TrainConfig(backend="tensorflow"))  # quiet C++ logs, once
        configure_runtime(0)
        try:
            predictors["tensorflow"] = load(folder)
        except ModelError as exc:
            raise BenchmarkError(str(exc)) from None
        env["tensorflow"] = describe_tensorflow()
    if "onnx" in backends:
        predictors["onnx"], env["onnxruntime"] = onnx_predictor(folder / ONNX_FILE)
    return predictors, env


def onnx_predictor(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """onnxruntime on ``model.onnx``, fed as its input declares (uint8 or float, rank 2 or 3)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    shape = (-1, 28, 28) if len(spec.shape) == 3 else (-1, 784)
    floats = "float" in spec.type

    def predict(pixels: np.ndarray) -> np.ndarray:
        x = pixels.reshape(shape)
        x = x.astype(np.float32) / np.float32(255.0) if floats else x
        return np.asarray(session.run(None, {spec.name: x})[0], dtype=np.float32)

    info = {"onnxruntime": ort.__version__, "input": f"{spec.type} {spec.shape}"}
    return predict, info


def readiness(folder: Path, settings: Settings, log: Callable[[str], None]) -> list[dict]:
    """A fresh server per backend and round, alternating: seconds from start to ready."""
    seconds: dict[str, list[float]] = {b: [] for b in settings.backends}
    for round_, backend in alternate(settings.backends, settings.rounds):
        log(f"serve: time to readiness, {backend}, round {round_ + 1}/{settings.rounds}")
        with running_server(folder, settings.workers, log, _flag(backend)) as server:
            seconds[backend].append(server.ready_s)
    return [
        {
            "record": "serve_ready",
            "backend": backend,
            "ready_s": float(np.median(times)),
            "ready_s_min": min(times),
            "ready_s_max": max(times),
            "rounds": len(times),
        }
        for backend, times in seconds.items()
    ]


def _flag(backend: str) -> str | None:
    """--backend for the server, when mnist-serve takes it (before it did: TensorFlow only)."""
    from serve.cli import cli

    return backend if any(p.name == "backend" for p in cli.params) else None


def run(
    folder: Path,
    images: np.ndarray,
    settings: Settings,
    predictors: dict[str, Callable[[np.ndarray], np.ndarray]],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One record per backend, body, batch size and concurrency; ``images``: (n, 784) uint8."""
    need = max(settings.batch_sizes) * 2
    if len(images) < need:
        raise BenchmarkError(f"need at least {need} test images, the data has {len(images)}")
    rows = []
    with contextlib.ExitStack() as stack:
        servers = {
            b: stack.enter_context(running_server(folder, settings.workers, log, _flag(b)))
            for b in settings.backends
        }
        samples = {kind: images[: 1 if kind == "png" else 32] for kind in settings.bodies}
        checks = {k: (encode_body(k, v), v) for k, v in samples.items()}
        for backend, server in servers.items():
            check_answers(server.port, checks, predictors[backend])
        for batch in settings.batch_sizes:
            # Eight different batches per body kind, sent in turn: no answer is cached anywhere.
            starts = np.linspace(0, len(images) - batch, 8).astype(int)
            batches = [images[start : start + batch] for start in starts]
            for kind in (k for k in settings.bodies if k != "png" or batch == 1):
                bodies = [encode_body(kind, b) for b in batches]
                for concurrency in settings.concurrency:
                    block = Block(kind, bodies, batches[0], concurrency)
                    rows += measure_block(servers, predictors, block, settings, log)
    return rows


@dataclasses.dataclass(frozen=True)
class Block:
    """The same requests for every backend: one body kind at one batch size and concurrency."""

    kind: str
    bodies: list[bytes]
    pixels: np.ndarray  # the first batch, for the in-process calls
    concurrency: int


def measure_block(
    servers: dict[str, Server],
    predictors: dict[str, Callable[[np.ndarray], np.ndarray]],
    block: Block,
    settings: Settings,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """HTTP blocks of every backend and the in-process blocks, alternating; a record each."""
    names = list(servers)
    samples: dict[str, list[Sample]] = {b: [] for b in names}
    rates: dict[str, list[float]] = {b: [] for b in names}
    calls: dict[str, list[float]] = {b: [] for b in names}
    predicts: list[float] = []
    batch = len(block.pixels)
    for round_ in range(settings.rounds):
        for backend in order(names, round_):
            log(
                f"serve: {backend}, {block.kind}, batch {batch}, {block.concurrency} client(s), "
                f"round {round_ + 1}/{settings.rounds}"
            )
            got, wall = http_block(
                servers[backend].port,
                block.bodies,
                CONTENT_TYPES[block.kind],
                requests=settings.requests_at(batch),
                concurrency=block.concurrency,
                warmup=settings.warmup,
                deadline_s=settings.block_deadline_s,
            )
            samples[backend] += got
            rates[backend].append(len(got) / wall)
            calls[backend] += call_times(predictors[backend], block.pixels, settings)
        if "tensorflow" in predictors:
            predicts += predict_times(predictors["tensorflow"], block.pixels, settings)
    return [
        record(
            backend,
            block,
            settings,
            samples[backend],
            rates[backend],
            calls[backend],
            predicts if backend == "tensorflow" else [],  # Keras's predict: TensorFlow's only
        )
        for backend in names
    ]


def call_times(
    predictor: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, settings: Settings
) -> list[float]:
    """One in-process block: ms per call of the backend's own model on ``pixels``."""
    return time_calls(lambda: predictor(pixels), settings.call_calls, settings.block_deadline_s)


def predict_times(predictor: Any, pixels: np.ndarray, settings: Settings) -> list[float]:
    """ms per Keras ``model.predict`` on ``pixels`` (``batch_size`` = the batch)."""
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    return time_calls(
        lambda: predictor.model.predict(scaled, batch_size=len(pixels), verbose=0),
        settings.predict_calls,
        settings.block_deadline_s,
    )


def record(
    backend: str,
    block: Block,
    settings: Settings,
    samples: list[Sample],
    rates: list[float],
    calls: list[float],
    predicts: list[float],
) -> dict[str, Any]:
    batch = len(block.pixels)
    latency = percentiles([s.latency_ms for s in samples])
    requests_per_s = float(np.median(rates))
    call_ms, predict_ms = p50(calls), p50(predicts)
    images_per_s = requests_per_s * batch
    return {
        "record": "serve",
        "backend": backend,
        "body": block.kind,
        "batch_size": batch,
        "concurrency": block.concurrency,
        "workers": settings.workers,
        "rounds": settings.rounds,
        "timed_requests": len(samples),
        "requests_per_s": requests_per_s,
        "images_per_s": images_per_s,
        "latency_ms_p50": latency["p50"],
        "latency_ms_p90": latency["p90"],
        "latency_ms_p99": latency["p99"],
        "run_fn_ms_p50": p50([s.run_fn_ms for s in samples]),
        **{
            f"{part}_ms_p50": p50([s.timing.get(part, float("nan")) for s in samples])
            for part in ("decode", "model", "encode")
        },
        "framework_ms_p50": p50([s.latency_ms - s.run_fn_ms for s in samples]),
        "call_ms_p50": call_ms,
        "predict_ms_p50": predict_ms,
        "added_ms_p50": latency["p50"] - call_ms,
        "vs_predict": images_per_s / (batch * 1e3 / predict_ms),
        "vs_call": images_per_s / (batch * 1e3 / call_ms),
        "new_connections_pct": 100.0 * sum(s.new_connection for s in samples) / len(samples),
    }


def image_sizes(images: tuple[str, ...]) -> list[dict[str, Any]]:
    """``NAME=MB`` as given, else ``podman image inspect``'s size; None when neither has it."""
    rows = []
    for item in images:
        name, _, given = item.partition("=")
        size, source = (float(given), "--image") if given else _inspect(name)
        rows.append({"record": "serve_image", "image": name, "size_mb": size, "source": source})
    return rows


def _inspect(name: str) -> tuple[float | None, str]:
    podman = shutil.which("podman")
    if podman is None:
        return None, "not measured: podman is not installed"
    try:
        out = subprocess.run(
            [podman, "image", "inspect", "--format", "{{.Size}}", name],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return int(out.split()[0]) / 1e6, "podman image inspect"
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None, f"not measured: podman has no image {name}"


def text(
    rows: list[dict[str, Any]],
    ready: list[dict[str, Any]],
    sizes: list[dict[str, Any]],
    settings: Settings,
    dataset: str,
    notes: list[str],
) -> str:
    heading = (
        f"serve: {dataset} test images to mnist-serve ({settings.workers} worker(s)) on "
        f"127.0.0.1; backends {', '.join(settings.backends)}; {settings.requests} timed "
        f"requests a block up to batch 32, {settings.rounds} round(s); latency = send to last "
        "byte; model call = the backend's model in this process"
    )
    lines = [heading, *notes, serve_table(rows)]
    lines += [
        f"ready: {r['backend']} answers GET / {r['ready_s']:.2f} s after its start (median of "
        f"{r['rounds']}, {r['ready_s_min']:.2f}-{r['ready_s_max']:.2f})"
        for r in ready
    ]
    lines += [
        f"image {s['image']}: "
        + (f"{s['size_mb']:,.0f} MB ({s['source']})" if s["size_mb"] else s["source"])
        for s in sizes
    ]
    return "\n".join([*lines, *summary(rows, ready)])


def serve_table(rows: list[dict[str, Any]]) -> str:
    headers = ["backend", "body", "batch", "clients", "req/s", "images/s", "p50 ms", "p90", "p99"]
    headers += ["run() decode/model/encode", "framework", "model call", "model.predict"]
    headers += ["added p50", "vs call"]
    body = [
        [
            r["backend"],
            r["body"],
            str(r["batch_size"]),
            str(r["concurrency"]),
            f"{r['requests_per_s']:,.0f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['latency_ms_p50']:.2f}",
            f"{r['latency_ms_p90']:.2f}",
            f"{r['latency_ms_p99']:.2f}",
            f"{r['run_fn_ms_p50']:.2f} = {r['decode_ms_p50']:.2f}/{r['model_ms_p50']:.2f}/"
            f"{r['encode_ms_p50']:.2f}",
            f"{r['framework_ms_p50']:.2f}",
            f"{r['call_ms_p50']:.3f}",
            fmt(r["predict_ms_p50"], ".1f"),
            f"{r['added_ms_p50']:.2f}",
            f"{r['vs_call']:.2f}x",
        ]
        for r in rows
    ]
    return table(headers, body)


def summary(rows: list[dict[str, Any]], ready: list[dict[str, Any]]) -> list[str]:
    """What each backend measured, side by side in this run (the ratios, nothing judged)."""
    by = {(r["backend"], r["body"], r["batch_size"], r["concurrency"]): r for r in rows}
    lines = []
    for backend in dict.fromkeys(r["backend"] for r in rows):
        one = by.get((backend, "idx", 1, 1))
        if one:
            lines.append(
                f"{backend}: one image (idx, 1 client) {one['latency_ms_p50']:.2f} ms at p50, "
                f"model call {one['call_ms_p50']:.3f} ms, added {one['added_ms_p50']:.2f} ms "
                f"(of it {one['framework_ms_p50']:.2f} ms outside run())"
            )
    ratios = {
        "one image (idx, 1 client), p50 latency": ("idx", 1, 1, "latency_ms_p50", True),
        "idx at batch 256, 1 client, images/s": ("idx", 256, 1, "images_per_s", False),
        "idx at batch 1024, 1 client, images/s": ("idx", 1024, 1, "images_per_s", False),
    }
    for what, (body, batch, clients, key, lower) in ratios.items():
        tf, onnx = (
            by.get(("tensorflow", body, batch, clients)),
            by.get(("onnx", body, batch, clients)),
        )
        if tf and onnx:
            ratio = tf[key] / onnx[key] if lower else onnx[key] / tf[key]
            lines.append(f"onnx against tensorflow, {what}: {ratio:.2f}x (above 1: onnx ahead)")
    times = {r["backend"]: r["ready_s"] for r in ready}
    if "tensorflow" in times and "onnx" in times:
        lines.append(
            f"onnx against tensorflow, time to readiness: {times['tensorflow'] / times['onnx']:.2f}x "
            "sooner"
        )
    return lines


def chart(rows: list[dict[str, Any]], path: str, title: str) -> None:
    """Images/s per backend and body at each batch size (best concurrency), log scale."""
    from benchmarks.report import bar_chart

    batches = sorted({r["batch_size"] for r in rows})
    best: dict[tuple[str, str, int], float] = {}
    for r in rows:
        key = (r["backend"], r["body"], r["batch_size"])
        best[key] = max(best.get(key, 0.0), r["images_per_s"])
    names = dict.fromkeys((r["backend"], r["body"]) for r in rows)
    series = {f"{b} {kind}": [best.get((b, kind, n)) for n in batches] for b, kind in names}
    bar_chart(
        path,
        [str(b) for b in batches],
        series,
        title=title,
        xlabel="images per request (batch)",
        ylabel="images/s over HTTP (best concurrency)",
    )
