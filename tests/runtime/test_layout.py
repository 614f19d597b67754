"""ELSER_RUNTIME × ELSER_PRECISION → the layout a model runs with, for both kinds of CPU (with and without native
bf16), whatever CPU runs the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from elser_server.runtime.layout import CpuFeatures, Layout, LayoutError, resolve

BF16_CPU = CpuFeatures(frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}))
AMX_CPU = CpuFeatures(frozenset({"avx512f", "amx_bf16", "amx_tile"}))
PLAIN_CPU = CpuFeatures(frozenset({"avx2", "fma"}))


def layout(
    runtime: str = "auto",
    precision: str = "auto",
    *,
    optimized: bool = False,
    quantized: bool = False,
    cpu: CpuFeatures = BF16_CPU,
    openvino: bool = True,
) -> Layout:
    return resolve(
        runtime=runtime,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
        optimized=optimized,
        quantized_package=quantized,
        cpu=cpu,
        openvino_installed=openvino,
    )


def pair(chosen: Layout) -> tuple[str, str]:
    return chosen.backend, chosen.precision


def test_cpu_flags() -> None:
    assert BF16_CPU.bf16_native and AMX_CPU.bf16_native and not PLAIN_CPU.bf16_native


def test_cpu_detect_reads_the_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n\n")
    assert CpuFeatures.detect(cpuinfo) == CpuFeatures(
        frozenset({"fpu", "avx512f", "avx512_bf16", "amx_tile"})
    )
    assert CpuFeatures.detect(cpuinfo).bf16_native
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2\n")
    assert not CpuFeatures.detect(cpuinfo).bf16_native
    assert CpuFeatures.detect(tmp_path / "absent") == CpuFeatures(frozenset())


def test_portable_model_stays_exact_fp32() -> None:
    for cpu in (BF16_CPU, PLAIN_CPU):
        assert pair(layout(cpu=cpu)) == ("openvino", "fp32")
        assert pair(layout(cpu=cpu, openvino=False)) == ("onnxruntime", "fp32")
        assert pair(layout("onnxruntime", cpu=cpu)) == ("onnxruntime", "fp32")
    assert "portable" in layout().reason


def test_optimized_model_gets_bf16_only_where_it_is_native() -> None:
    assert pair(layout(optimized=True, cpu=BF16_CPU)) == ("openvino", "bf16")
    assert pair(layout(optimized=True, cpu=AMX_CPU)) == ("openvino", "bf16")
    assert "native bf16" in layout(optimized=True).reason
    # Without native bf16 (emulated bf16 is slower than fp32): int8 of the vocabulary projection, on onnxruntime.
    assert pair(layout(optimized=True, cpu=PLAIN_CPU)) == ("onnxruntime", "int8")
    # Without the OpenVINO extra, or with onnxruntime asked for: onnxruntime int8.
    assert pair(layout(optimized=True, openvino=False)) == ("onnxruntime", "int8")
    assert "openvino extra" in layout(optimized=True, openvino=False).reason
    assert pair(layout("onnxruntime", optimized=True)) == ("onnxruntime", "int8")
    assert pair(layout("openvino", optimized=True, cpu=PLAIN_CPU)) == ("openvino", "int8")


def test_explicit_precisions() -> None:
    assert pair(layout(precision="fp32", optimized=True)) == ("openvino", "fp32")
    assert pair(layout("onnxruntime", "fp32", optimized=True)) == ("onnxruntime", "fp32")
    assert pair(layout(precision="bf16")) == ("openvino", "bf16")
    emulated = layout(precision="bf16", cpu=PLAIN_CPU)
    assert pair(emulated) == ("openvino", "bf16") and "emulates" in emulated.reason
    assert pair(layout(precision="int8")) == ("openvino", "int8")
    assert pair(layout(precision="int8", cpu=PLAIN_CPU)) == ("onnxruntime", "int8")
    assert pair(layout(precision="int8", openvino=False)) == ("onnxruntime", "int8")
    assert pair(layout("openvino", "int8", cpu=PLAIN_CPU)) == ("openvino", "int8")
    assert pair(layout("onnxruntime", "int8")) == ("onnxruntime", "int8")


def test_an_int8_package_stays_int8() -> None:
    assert pair(layout(quantized=True)) == ("onnxruntime", "int8")
    assert pair(layout(quantized=True, optimized=True)) == ("onnxruntime", "int8")
    assert pair(layout("openvino", quantized=True)) == ("openvino", "int8")
    ignored = layout(precision="fp32", quantized=True)
    assert pair(ignored) == ("onnxruntime", "int8")
    assert ignored.reason == "the package is int8-quantized; ELSER_PRECISION=fp32 does not apply"


@pytest.mark.parametrize(
    ("runtime", "precision", "openvino", "message"),
    [
        ("onnxruntime", "bf16", True, "ELSER_PRECISION=bf16 needs ELSER_RUNTIME=openvino or auto"),
        ("auto", "bf16", False, "ELSER_PRECISION=bf16 needs the openvino extra"),
        ("openvino", "auto", False, "ELSER_RUNTIME=openvino needs the openvino extra"),
    ],
)
def test_impossible_layouts_are_clear_errors(
    runtime: str, precision: str, openvino: bool, message: str
) -> None:
    with pytest.raises(LayoutError, match=message):
        layout(runtime, precision, openvino=openvino)


def test_layout_prints_backend_and_precision() -> None:
    assert str(Layout("openvino", "bf16", "why")) == "openvino bf16"
