"""The arithmetic of the measurement: FLOP counts, percentiles, spreads, records and speedups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import flops
from benchmarks.commands.train import QUICK, Settings, settings
from benchmarks.device import known_peak, peak_tflops
from benchmarks.epoch_engine import steady_step_ms
from benchmarks.errors import BenchmarkError
from benchmarks.rounds import alternate, order
from benchmarks.stats import percentiles, spread
from benchmarks.timing import RunTiming
from benchmarks.training import run_record, summarize


def test_flops_match_a_hand_count_of_the_tutorials_network():
    # Multiply-adds per image: 784*300 + 300*100 + 100*10 = 235,200 + 30,000 + 1,000 = 266,200.
    macs = 784 * 300 + 300 * 100 + 100 * 10
    assert flops.forward_flops_per_image() == 2 * macs == 532_400
    # Weight gradients of all three layers, input gradients of layers 2 and 3 only.
    assert flops.backward_flops_per_image() == 2 * macs + 2 * (300 * 100 + 100 * 10) == 594_400
    assert flops.train_flops_per_image() == 1_126_800
    assert flops.train_flops_per_step(50) == 50 * 1_126_800
    assert flops.parameter_count() == 266_610


def test_flops_of_a_single_layer_have_no_input_gradient():
    assert flops.forward_flops_per_image((4, 3)) == 24
    assert flops.backward_flops_per_image((4, 3)) == 24
    assert flops.train_flops_per_image((4, 3, 2)) == 2 * (12 + 6) + 2 * (12 + 6) + 2 * 6


@pytest.mark.parametrize("layers", [(784,), (), (784, 0, 10)])
def test_flops_reject_impossible_networks(layers):
    with pytest.raises(ValueError, match="positive widths"):
        flops.train_flops_per_image(layers)


def test_parameter_count_matches_keras():
    pytest.importorskip("keras")
    from trainer.model import build_model

    assert build_model().count_params() == flops.parameter_count()


def test_percentiles_are_true_percentiles():
    samples = list(range(1, 101))  # 1..100
    p = percentiles(samples)
    assert p == {"p50": 50.5, "p90": pytest.approx(90.1), "p99": pytest.approx(99.01)}
    assert percentiles([3.0])["p99"] == 3.0
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_spread_is_median_min_max_and_range():
    s = spread([10.0, 30.0, 20.0])
    assert s == {"median": 20.0, "min": 10.0, "max": 30.0, "range_pct": 100.0}
    assert math.isnan(spread([])["median"])


def _timing(epoch_s, accuracy=0.8, images=1000):
    return RunTiming(
        epoch_s=epoch_s,
        step_ms=[1.0, 2.0],
        images_per_epoch=images,
        steps_per_call=1,
        test_accuracy=accuracy,
    )


def test_run_record_excludes_the_warmup_epoch():
    rec = run_record(
        _timing([5.0, 1.0, 2.0]), backend="b", method="m", batch_size=50, round_=0, epochs=3
    )
    assert rec["images_per_s"] == pytest.approx(2000 / 3.0)
    assert rec["warmup_s"] == pytest.approx(5.0 - 1.5)
    assert rec["first_epoch_s"] == 5.0
    with pytest.raises(BenchmarkError, match="at least 2 epochs"):
        run_record(_timing([1.0]), backend="b", method="m", batch_size=50, round_=0, epochs=1)


def test_summary_pairs_rounds_for_the_speedup():
    runs = []
    # Round 0: baseline 1000 img/s, fast 4000; round 1 (slow machine): 500 and 3000.
    for r, (base_s, fast_s) in enumerate([(1.0, 0.25), (2.0, 1 / 3)]):
        for method, t, acc in (("tutorial-fit", base_s, 0.80), ("XlaEpochEngine", fast_s, 0.81)):
            rec = run_record(
                _timing([9.0, t], accuracy=acc),
                backend="tensorflow",
                method=method,
                batch_size=50,
                round_=r,
                epochs=2,
            )
            runs.append(rec)
    rows = summarize(
        runs,
        baselines={"tensorflow": "tutorial-fit"},
        tutorial_key=("tensorflow", "tutorial-fit"),
        peaks={"tensorflow": 10.0},
        layers=flops.TUTORIAL_LAYERS,
    )
    by_method = {r["method"]: r for r in rows}
    fast = by_method["XlaEpochEngine"]
    assert fast["speedup"] == pytest.approx(5.0)  # median of the paired ratios 4 and 6
    assert (fast["speedup_min"], fast["speedup_max"]) == (pytest.approx(4.0), pytest.approx(6.0))
    assert fast["speedup_vs_tutorial"] == pytest.approx(3500 / 750)  # ratio of medians, unpaired
    assert fast["accuracy_delta_pts"] == pytest.approx(1.0)
    assert fast["images_per_s"] == pytest.approx(3500.0)
    assert fast["achieved_tflops"] == pytest.approx(3500 * 1_126_800 / 1e12)
    assert fast["utilisation_pct"] == pytest.approx(100 * fast["achieved_tflops"] / 10.0)
    # Step times 1.0 and 2.0 ms from each run: p50 is 1.5 ms.
    assert fast["ms_per_step_p50"] == pytest.approx(1.5)
    assert fast["step_samples"] == 4
    assert fast["step_tflops_p50"] == pytest.approx(50 * 1_126_800 / 1.5e-3 / 1e12)
    assert by_method["tutorial-fit"]["speedup"] == 1.0
    assert fast["baseline"] == "tensorflow/tutorial-fit"


def test_step_times_are_full_batch_calls_after_the_warmup():
    # 1000 images at batch 300: calls of 2 and 1 full batches, then the 100-image remainder.
    shapes = [(2, 300), (1, 300), (1, 100)] * 3
    times = [9.0, 9.0, 9.0, 0.4, 0.3, 0.05, 0.6, 0.2, 0.07]  # 3 epochs, the first is warm-up
    got = steady_step_ms(times, shapes, 300, 3)
    assert got == pytest.approx([200.0, 300.0, 300.0, 200.0])  # no remainder call, no warm-up
    assert steady_step_ms([5.0, 0.4, 0.4], [(1, 300)] * 3, 300, 3) == pytest.approx([400.0] * 2)
    with pytest.raises(BenchmarkError, match="8 call times and 9 call shapes for 3 epochs"):
        steady_step_ms(times[:-1], shapes, 300, 3)


def test_known_peaks_come_from_the_datasheets():
    assert known_peak("NVIDIA H100 80GB HBM3") == {"fp32": 67.0, "tf32": 494.5}
    assert known_peak("NVIDIA H100 PCIe") == {"fp32": 51.0, "tf32": 378.0}
    assert known_peak("NVIDIA H200") == {"fp32": 67.0, "tf32": 494.5}
    assert known_peak("Intel(R) Xeon(R) Processor") is None


def test_peak_is_the_flag_else_the_datasheet_of_a_known_gpu():
    h100 = {"device_kind": "gpu", "device_name": "NVIDIA H100 80GB HBM3"}
    assert peak_tflops(None, h100, tf32=False) == (
        67.0,
        "NVIDIA datasheet, fp32 dense, " + h100["device_name"],
    )
    assert peak_tflops(None, h100, tf32=True)[0] == 494.5
    assert peak_tflops(12.0, h100, tf32=True) == (12.0, "--peak-tflops")
    assert peak_tflops(None, {"device_kind": "cpu", "device_name": "AMD EPYC"}, tf32=False) == (
        None,
        None,
    )


def test_rounds_rotate_so_every_method_takes_every_place():
    assert [order(["a", "b"], r) for r in range(3)] == [["a", "b"], ["b", "a"], ["a", "b"]]
    assert [order("abc", r) for r in range(3)] == [list("abc"), list("bca"), list("cab")]
    assert list(alternate(["a", "b"], 2)) == [(0, "a"), (0, "b"), (1, "b"), (1, "a")]
    assert order([], 3) == []


def test_quick_size_fills_only_what_was_not_given():
    opts = settings(True, epochs=3, rounds=None)
    assert opts.epochs == 3
    assert opts.rounds == QUICK["rounds"]
    assert opts.train_images == 12_000
    assert settings(False) == Settings()


@pytest.mark.parametrize("n", [500, 520])  # 520: an 11th step of 20 images, left out
def test_fit_step_timer_sums_to_the_epoch(n):
    """The tutorial method's per-step stamps cover the epoch they were taken in."""
    pytest.importorskip("tensorflow")
    from benchmarks.tutorial import tutorial_fit
    from trainer.data import Splits

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    y = (x[:, :10].argmax(axis=1)).astype(np.uint8)
    timing = tutorial_fit(Splits(x, y, x[:100], y[:100]), 50, 2, 0)
    assert len(timing.epoch_s) == 2
    assert len(timing.step_ms) == 10  # the steady epoch's 10 full-batch steps
    assert sum(timing.step_ms) / 1e3 <= timing.epoch_s[1]
    assert 0.0 <= timing.test_accuracy <= 1.0


def test_subset_cuts_the_training_split_only():
    from benchmarks.datasets import subset
    from trainer.data import Splits

    x, y = np.zeros((10, 784), np.uint8), np.arange(10, dtype=np.uint8)
    splits = Splits(x, y, x[:4], y[:4], source="/data/fashion")
    cut = subset(splits, 6)
    assert (len(cut.x_train), len(cut.y_train), len(cut.x_test)) == (6, 6, 4)
    assert cut.source == "/data/fashion"  # the folder the data came from survives the cut
    assert subset(splits, None) is splits
    assert subset(splits, 10) is splits
