"""The JAX runtime's choices that need no training: one device named, several workers refused."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest

from tests.jax.conftest import needs_jax
from trainer import runtime
from trainer.errors import RunError

pytestmark = needs_jax


@dataclass
class FakeDevice:
    id: int
    platform: str = "gpu"
    device_kind: str = "NVIDIA H200"


@pytest.fixture(autouse=True)
def _no_tensorflow_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's TensorFlow is left alone: the JAX runtime would hide its GPUs."""
    monkeypatch.setattr(runtime, "_tensorflow_off_the_gpus", lambda: "2.21.0")
    monkeypatch.delenv("TF_CONFIG", raising=False)


def test_several_gpus_train_on_the_first_and_say_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import jax

    monkeypatch.setattr(jax, "devices", lambda: [FakeDevice(0), FakeDevice(1)])
    with caplog.at_level(logging.INFO, logger="trainer.runtime"):
        info = runtime._start_jax()
    assert info["device"] == "gpu:0 (NVIDIA H200)"
    assert info["gpus"] == ["gpu:0 (NVIDIA H200)", "gpu:1 (NVIDIA H200)"]
    assert caplog.messages == [
        "JAX sees 2 GPUs; training on gpu:0 (NVIDIA H200) alone (the JAX engine uses one "
        "device; --backend tensorflow trains on all of them)"
    ]


def test_the_cpu_says_nothing_more(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trainer.runtime"):
        info = runtime._start_jax()
    assert info["device"].startswith("cpu:0 (")
    assert (info["gpus"], caplog.messages) == ([], [])


def test_several_workers_are_refused_on_jax() -> None:
    from trainer.config import TrainConfig
    from trainer.distribute import parse_tf_config

    cluster = {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"], "ps": []}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    with pytest.raises(RunError) as error:
        # Before anything is loaded: the process setup refuses it.
        runtime.configure_process(
            TrainConfig(backend="jax"), parse_tf_config(json.dumps(tf_config))
        )
    assert str(error.value) == (
        "TF_CONFIG names 2 workers; training on several workers runs on TensorFlow only: pass "
        "--backend tensorflow"
    )
