"""ModelManager runs each model in the layout ELSER_RUNTIME × ELSER_PRECISION give it (auto: by model id and CPU),
logs the choice, and refuses an impossible one with a clear deployment error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from elser_server.core.defaults import ELSER_V2_MODEL_ID, ELSER_V2_X86_MODEL_ID
from elser_server.core.errors import Code, ElserError
from elser_server.core.model_manager import ModelManager
from elser_server.runtime.backends import openvino_installed
from elser_server.runtime.layout import CpuFeatures, resolve
from elser_server.settings import Settings
from pydantic import ValidationError

pytest.importorskip("elser_server.runtime.backends.openvino")


async def test_auto_follows_the_model_id_and_is_logged(
    tiny_repository: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="elser_server.core.model_manager")
    models = ModelManager(str(tiny_repository), tmp_path / "models")
    cpu = CpuFeatures.detect()
    assert (
        f"inference runtime auto, precision auto (CPU native bf16: {'yes' if cpu.bf16_native else 'no'}"
        in (caplog.text)
    )
    for model_id in (ELSER_V2_MODEL_ID, ELSER_V2_X86_MODEL_ID):
        loaded = await models.get(model_id)
        expected = resolve(
            runtime="auto",
            precision="auto",
            optimized=model_id == ELSER_V2_X86_MODEL_ID,
            quantized_package=False,
            cpu=cpu,
            openvino_installed=openvino_installed(),
        )
        # OpenVINO may only lower bf16 to fp32 where the CPU cannot run it at all.
        assert (loaded.layout.backend, loaded.layout.precision) == (expected.backend, expected.precision)
        assert f"model {model_id} loaded from " in caplog.text
        assert f"runs on {loaded.layout} ({loaded.layout.reason})" in caplog.text
        session = loaded.new_session(1)
        assert session.layout == loaded.layout
    assert (await models.get(ELSER_V2_MODEL_ID)).layout.precision == "fp32"


@pytest.mark.parametrize(("runtime", "precision"), [("onnxruntime", "int8"), ("openvino", "bf16")])
async def test_explicit_settings(tiny_repository: Path, tmp_path: Path, runtime: str, precision: str) -> None:
    models = ModelManager(str(tiny_repository), tmp_path / "models", runtime=runtime, precision=precision)  # type: ignore[arg-type]
    loaded = await models.get(ELSER_V2_MODEL_ID)
    assert loaded.layout.backend == runtime
    assert loaded.layout.reason.startswith(f"ELSER_PRECISION={precision}")


async def test_an_impossible_layout_fails_the_deployment_clearly(
    tiny_repository: Path, tmp_path: Path
) -> None:
    models = ModelManager(str(tiny_repository), tmp_path / "models", runtime="onnxruntime", precision="bf16")
    with pytest.raises(ElserError) as exc:
        await models.get(ELSER_V2_MODEL_ID)
    assert exc.value.code is Code.FAILED_PRECONDITION
    assert exc.value.reason == (
        f"Could not deploy model [{ELSER_V2_MODEL_ID}]: ELSER_PRECISION=bf16 needs ELSER_RUNTIME=openvino or auto "
        "(onnxruntime has no bf16 CPU kernels)"
    )


def test_settings_refuse_bf16_on_onnxruntime_at_start() -> None:
    with pytest.raises(ValidationError, match="ELSER_PRECISION=bf16 needs ELSER_RUNTIME=openvino or auto"):
        Settings(runtime="onnxruntime", precision="bf16")
    assert Settings(runtime="openvino", precision="bf16").precision == "bf16"
