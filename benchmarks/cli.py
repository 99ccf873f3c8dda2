"""mnist-bench: decode, input-pipeline and training throughput, side by side with the seed's method.

Kept light on purpose: ``--help`` imports click and nothing else heavy; each suite imports
TensorFlow or JAX only when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks import __version__
from benchmarks.options import BACKENDS, DEFAULT_DATA_FOLDER, BenchOptions, resolve_options
from submit.options import int_list

SUITES = ("decode", "pipeline", "train")


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--quick", is_flag=True, help="About a minute on a 2-core CPU: 12k images, 2 rounds."
        ),
        click.option(
            "--data-folder",
            type=click.Path(file_okay=False),
            default=DEFAULT_DATA_FOLDER,
            show_default=True,
            help="Folder holding the four MNIST-format files (.gz or raw).",
        ),
        click.option(
            "--dataset",
            type=click.Choice(["mnist", "fashion-mnist"]),
            default="fashion-mnist",
            show_default=True,
            help="Which dataset the folder holds.",
        ),
        click.option(
            "--download/--no-download",
            default=False,
            show_default=True,
            help="Fetch the dataset (checksums verified) when the folder lacks it.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Base random seed."),
        click.option(
            "--repeats",
            type=click.IntRange(min=1),
            help="decode/pipeline: timed passes [7; quick 3].",
        ),
        click.option(
            "--json",
            "json_path",
            type=click.Path(dir_okay=False),
            help="Write JSON lines (one record per line, with units) here.",
        ),
        click.option(
            "--chart", "chart_path", type=click.Path(dir_okay=False), help="Write a PNG chart here."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _outputs(f: Callable[..., Any]) -> Callable[..., Any]:
    """--json and --chart, as every suite takes them."""
    f = click.option(
        "--chart", "chart_path", type=click.Path(dir_okay=False), help="Write a PNG chart here."
    )(f)
    return click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False),
        help="Write JSON lines (one record per line, with units) here.",
    )(f)


def _data(f: Callable[..., Any]) -> Callable[..., Any]:
    """--data-folder and --dataset, for the suites with their own options."""
    f = click.option(
        "--dataset",
        type=click.Choice(["mnist", "fashion-mnist"]),
        default="fashion-mnist",
        show_default=True,
        help="Which dataset the folder holds.",
    )(f)
    return click.option(
        "--data-folder",
        type=click.Path(file_okay=False),
        default=DEFAULT_DATA_FOLDER,
        show_default=True,
        help="Folder holding the four MNIST-format files (.gz or raw).",
    )(f)


def _train_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="auto",
            show_default=True,
            help="auto: TensorFlow, plus JAX rows when JAX is installed.",
        ),
        click.option(
            "--epochs",
            type=click.IntRange(min=2),
            help="Epochs per run, the first is warm-up [5; quick 2].",
        ),
        click.option(
            "--rounds", type=click.IntRange(min=1), help="Alternating rounds [3; quick 2]."
        ),
        click.option(
            "--batch-sizes",
            callback=int_list,
            help="Comma-separated batch sizes [50,512,4096; quick 50,512].",
        ),
        click.option(
            "--train-images",
            type=click.IntRange(min=1),
            help="Train on the first N images [all; quick 12000].",
        ),
        click.option(
            "--steps-per-call",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Fast paths: steps per compiled call, 0 = a whole epoch.",
        ),
        click.option(
            "--peak-tflops",
            type=click.FloatRange(min=0, min_open=True),
            help="Peak TFLOP/s of the device, for utilisation (known GPUs: from the datasheet).",
        ),
        click.option(
            "--min-accuracy",
            type=click.FloatRange(0, 1),
            help="Fail a run that ends below this test accuracy [0.6].",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mnist-bench")
def main() -> None:
    """Measure decode, input-pipeline and training throughput of the MNIST trainer.

    Training runs the seed's method (plain model.fit, default compile) and the trainer's
    default path side by side, alternating in rounds, at several batch sizes, and reports
    images/s, ms/step percentiles, FLOP/s, speedup and test accuracy.

    \b
    Examples:
      mnist-bench train --quick
      mnist-bench all --json results.jsonl --chart results.png
      mnist-bench train --backend jax --batch-sizes 50,4096 --peak-tflops 67
    """


def _check_output_path(option: str, path: str | None) -> None:
    """Fail before the benchmark runs, not after, when an output file cannot be created."""
    if path is None:
        return
    folder = Path(path).parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise click.ClickException(
            f"{option} {path}: {existing} is a file, not a folder; choose another path"
        )
    if existing != folder:
        raise click.ClickException(
            f"{option} {path}: folder {folder} does not exist; create it or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(
            f"{option} {path}: folder {folder} is not writable; choose another path"
        )


def _write(option: str, path: str, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:
        raise click.ClickException(
            f"{option} {path}: cannot write it ({exc.strerror or exc}); choose another path"
        ) from None


def _run(
    suites: tuple[str, ...], opts: BenchOptions, json_path: str | None, chart_path: str | None
) -> None:
    from benchmarks import report
    from benchmarks import suites as suite_mod
    from benchmarks.harness import BenchmarkError
    from trainer.data import DataError

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    _check_output_path("--json", json_path)
    _check_output_path("--chart", chart_path)
    env = suite_mod.environment(sys.argv)
    decode_rows: list[dict[str, Any]] = []
    pipeline_rows: list[dict[str, Any]] = []
    train_rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    try:
        if "decode" in suites:
            decode_rows = suite_mod.run_decode(opts, log)
        if "pipeline" in suites:
            pipeline_rows = suite_mod.run_pipeline(opts, env, log)
        if "train" in suites:
            train_rows, runs = suite_mod.run_train(opts, env, log)
    except (BenchmarkError, DataError) as exc:
        raise click.ClickException(str(exc)) from None

    click.echo(report.environment_text(env))
    if decode_rows:
        from benchmarks import decode as decode_bench

        gzip_library = decode_rows[0]["machine"]["gzip_library"]
        click.echo(f"\ndecode (benchmarks/decode.py), {opts.dataset}, gzip: {gzip_library}")
        click.echo(decode_bench.table(decode_rows))
        click.echo(decode_bench.verdict(decode_rows))
    if pipeline_rows:
        click.echo(
            "\npipeline (tf.data, one epoch per pass)\n" + report.generic_table(pipeline_rows)
        )
    if train_rows:
        first = train_rows[0]
        click.echo(
            f"\ntrain: {opts.dataset}, {first['epochs']} epochs per run (first = warm-up, "
            f"excluded), {first['rounds']} alternating rounds; images/s = median of rounds; "
            f"ms/step = percentiles over steps (fast paths: call time / steps per call); "
            f"{first['train_flops_per_image']:,} matmul FLOP per image (forward + backward)"
        )
        click.echo(report.train_table(train_rows))
        for row in train_rows:
            delta = row.get("accuracy_delta_pts")
            if delta is not None and abs(delta) > 0.5:
                click.echo(
                    f"note: {row['backend']}/{row['method']} at batch {row['batch_size']} ended "
                    f"{delta:+.2f} accuracy points from its baseline (target: within 0.5)"
                )
    records = [env, *decode_rows, *pipeline_rows, *train_rows, *runs]
    if json_path:
        _write("--json", json_path, lambda: report.write_json_lines(json_path, records))
        click.echo(f"wrote {len(records)} JSON lines to {json_path}", err=True)
    if chart_path:
        chart_rows = train_rows or [
            {**r, "backend": "tf.data", "method": "pipeline"} for r in pipeline_rows
        ]
        if chart_rows:
            title = _title(env, opts)
            _write("--chart", chart_path, lambda: report.write_chart(chart_path, chart_rows, title))
            click.echo(f"wrote the chart to {chart_path}", err=True)
        else:
            click.echo("no chart: nothing with images/s was measured", err=True)


def _title(env: dict[str, Any], opts: BenchOptions) -> str:
    devices = [
        f"{name}: {env[name].get('device_name')}" for name in ("tensorflow", "jax") if name in env
    ]
    return f"mnist-bench, {opts.dataset}, " + "; ".join(devices)


@main.command()
@_common
def decode(quick: bool, json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Decode the four idx files: the seed's loader, idx2numpy and the data core, side by side.

    Every method's output is checked against the seed's before anything is timed; a method
    that disagrees fails the run.

    \b
    Example:
      mnist-bench decode --repeats 7 --json decode.jsonl
    """
    _run(("decode",), resolve_options(quick, **given), json_path, chart_path)


@main.command()
@_common
@click.option("--batch-sizes", callback=int_list, help="Comma-separated batch sizes.")
@click.option("--train-images", type=click.IntRange(min=1), help="Use the first N images.")
def pipeline(quick: bool, json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """The trainer's tf.data input pipeline alone: batches/s and images/s delivered."""
    _run(("pipeline",), resolve_options(quick, **given), json_path, chart_path)


@main.command()
@_common
@_train_options
def train(quick: bool, json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Training throughput: the seed's method against the default path, in alternating rounds.

    \b
    Example:
      mnist-bench train --quick --json train.jsonl --chart train.png
    """
    _run(("train",), resolve_options(quick, **given), json_path, chart_path)


@main.command(name="all")
@_common
@_train_options
def all_(quick: bool, json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Every suite in turn: decode, pipeline, train."""
    _run(SUITES, resolve_options(quick, **given), json_path, chart_path)


@main.command()
@click.option(
    "--quick", is_flag=True, help="Seconds, not minutes: 3,000 images, batch 50 and 500, 1 round."
)
@_data
@click.option(
    "--workers", type=click.IntRange(min=2), default=2, show_default=True, help="Local workers."
)
@click.option("--batch-sizes", callback=int_list, help="Comma-separated [50,4096].")
@click.option("--epochs", type=click.IntRange(min=2), help="Per run, the first a warm-up [4].")
@click.option("--rounds", type=click.IntRange(min=1), help="Alternating rounds [2].")
@click.option("--train-images", type=click.IntRange(min=1), help="Use the first N [all].")
@click.option(
    "--deadline",
    type=click.FloatRange(min=1),
    default=1800.0,
    show_default=True,
    help="Seconds one run (all its workers) may take before every process is killed.",
)
@_outputs
def scale(
    quick: bool,
    data_folder: str,
    dataset: str,
    workers: int,
    batch_sizes: tuple[int, ...] | None,
    epochs: int | None,
    rounds: int | None,
    train_images: int | None,
    deadline: float,
    json_path: str | None,
    chart_path: str | None,
) -> None:
    """Data-parallel scaling: N local workers (TF_CONFIG on 127.0.0.1) against one process.

    Runs `mnist-train` itself: one process, N workers at once, and one process at a worker's
    share of the batch (its compute alone), alternating in rounds on the same cores. Reports
    total images/s, scaling efficiency, ms/step split into compute and collective+wait, and how
    steady the epochs are.

    \b
    Example:
      mnist-bench scale --workers 2 --batch-sizes 50,4096 --json scale.jsonl --chart scale.png
    """
    from benchmarks import report
    from benchmarks import scale as scale_mod
    from benchmarks import suites as suite_mod
    from benchmarks.harness import BenchmarkError
    from trainer.data import DataError, load_dataset

    _check_output_path("--json", json_path)
    _check_output_path("--chart", chart_path)
    env = suite_mod.environment(sys.argv)
    try:
        splits = load_dataset(data_folder, dataset)
        n_train = train_images or (3000 if quick else len(splits.x_train))
        rows = scale_mod.run(
            splits,
            workers=workers,
            batch_sizes=batch_sizes or ((50, 500) if quick else (50, 4096)),
            epochs=epochs or (2 if quick else 4),
            rounds=rounds or (1 if quick else 2),
            train_images=min(n_train, len(splits.x_train)),
            test_images=min(1000 if quick else len(splits.x_test), len(splits.x_test)),
            deadline_s=deadline,
            log=lambda msg: click.echo(msg, err=True),
        )
    except (BenchmarkError, DataError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.environment_text(env))
    click.echo(f"\nscale: {dataset}, {rows[0]['train_images']:,} images, steady epochs only")
    click.echo(scale_mod.table(rows))
    if json_path:
        records = [env, *rows]
        _write("--json", json_path, lambda: report.write_json_lines(json_path, records))
        click.echo(f"wrote {len(records)} JSON lines to {json_path}", err=True)
    if chart_path:
        title = f"mnist-bench scale, {dataset}, {workers} workers on one machine"
        _write("--chart", chart_path, lambda: scale_mod.write_chart(chart_path, rows, title))
        click.echo(f"wrote the chart to {chart_path}", err=True)


@main.command(name="serve")
@click.option(
    "--quick",
    is_flag=True,
    help="Under a minute: batch 1 and 32, 1 and 2 clients, 40 requests a block, 1 round.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False),
    default="outputs/model",
    show_default=True,
    help="The folder mnist-train wrote its model to.",
)
@click.option(
    "--data-folder",
    type=click.Path(file_okay=False),
    default=DEFAULT_DATA_FOLDER,
    show_default=True,
    help="Folder holding the four MNIST-format files; the test images are sent.",
)
@click.option(
    "--dataset",
    type=click.Choice(["mnist", "fashion-mnist"]),
    default="fashion-mnist",
    show_default=True,
    help="Which dataset the folder holds.",
)
@click.option("--batch-sizes", callback=int_list, help="Images per request [1,32,256; quick 1,32].")
@click.option("--concurrency", callback=int_list, help="Client threads [1,4; quick 1,2].")
@click.option(
    "--requests",
    type=click.IntRange(min=1),
    help="Timed requests per block, after 10 untimed [200; quick 40].",
)
@click.option("--rounds", type=click.IntRange(min=1), help="Alternating rounds [2; quick 1].")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server worker processes (the server's WORKER_COUNT).",
)
@_outputs
def serve_command(
    quick: bool,
    model_dir: str,
    data_folder: str,
    dataset: str,
    batch_sizes: tuple[int, ...] | None,
    concurrency: tuple[int, ...] | None,
    requests: int | None,
    rounds: int | None,
    workers: int,
    json_path: str | None,
    chart_path: str | None,
) -> None:
    """Serving: the real inference server on 127.0.0.1 against the model's own call.

    Starts mnist-serve on the model, checks its answers against the model, then sends real test
    images as idx and JSON bodies (and PNG, one image) at each batch size and concurrency, in
    rounds alternating with the model itself in this process (predict_on_batch, as the server
    calls it, and model.predict) on the same batches. Reports requests/s, images/s, latency
    percentiles, where a request's time goes (HTTP and framework, decode, model, encode) and
    the latency serving adds to the model.

    \b
    Example:
      mnist-bench serve --model outputs/model --json serve.jsonl --chart serve.png
    """
    import dataclasses

    from benchmarks import report, serve_report
    from benchmarks import serve as serve_mod
    from benchmarks import suites as suite_mod
    from benchmarks.harness import BenchmarkError
    from serve.model import ModelError, check_model, find_model
    from trainer.data import DataError, load_dataset

    _check_output_path("--json", json_path)
    _check_output_path("--chart", chart_path)
    try:  # before TensorFlow's import: a missing model is refused at once
        check_model(find_model(Path(model_dir)))
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    env = suite_mod.environment(sys.argv)
    settings = serve_mod.QUICK if quick else serve_mod.Settings()
    settings = dataclasses.replace(
        settings,
        batch_sizes=batch_sizes or settings.batch_sizes,
        concurrency=concurrency or settings.concurrency,
        requests=requests or settings.requests,
        rounds=rounds or settings.rounds,
        workers=workers,
    )
    try:
        splits = load_dataset(data_folder, dataset)
        suite_mod.setup_tensorflow(seed=0)  # the trainer's process settings: quiet C++ logs
        rows = serve_mod.run(
            Path(model_dir), splits.x_test, settings, lambda msg: click.echo(msg, err=True)
        )
    except (BenchmarkError, DataError) as exc:
        raise click.ClickException(str(exc)) from None
    from benchmarks.device import describe_tensorflow

    env["tensorflow"] = describe_tensorflow()
    click.echo(report.environment_text(env))
    click.echo(
        f"\nserve: {dataset} test images to mnist-serve ({settings.workers} worker(s)) on "
        f"127.0.0.1; {settings.requests} timed requests a block, {settings.rounds} round(s); "
        "latency = send to last byte; model call = predict_on_batch in this process"
    )
    click.echo(serve_report.table(rows))
    for line in serve_report.verdicts(rows):
        click.echo(line)
    if json_path:
        records = [env, *rows]
        _write("--json", json_path, lambda: report.write_json_lines(json_path, records))
        click.echo(f"wrote {len(records)} JSON lines to {json_path}", err=True)
    if chart_path:
        title = f"mnist-bench serve, {dataset}, {env['tensorflow'].get('device_name')}"
        _write("--chart", chart_path, lambda: serve_report.write_chart(chart_path, rows, title))
        click.echo(f"wrote the chart to {chart_path}", err=True)
