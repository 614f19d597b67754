"""Which backend and numeric precision a model runs with (ELSER_RUNTIME, ELSER_PRECISION), and `auto`'s choice.

`auto` follows Elasticsearch's own split of ELSER v2 into two model ids: the portable `.elser_model_2` stays exact
fp32, the x86-optimised `.elser_model_2_linux-x86_64` gets the fastest layout that met the accuracy bars (top-20
recall ≥ 0.99, cosine ≥ 0.999 against fp32 on the default model) on the CPU found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Backend = Literal["onnxruntime", "openvino"]
Precision = Literal["fp32", "bf16", "int8"]
RuntimeSetting = Literal["auto", "onnxruntime", "openvino"]
PrecisionSetting = Literal["auto", "fp32", "bf16", "int8"]

BACKENDS: tuple[Backend, ...] = ("onnxruntime", "openvino")
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")
# CPU flags (Linux /proc/cpuinfo names) of native bf16 arithmetic; without them OpenVINO emulates bf16 on AVX-512
# (slower than fp32) or, without AVX-512, runs fp32.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
INSTALL_OPENVINO = "pip install 'elser-inference[openvino]'"


class LayoutError(ValueError):
    """The settings ask for a layout this installation cannot run."""


@dataclass(frozen=True)
class Layout:
    backend: Backend
    precision: Precision
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass(frozen=True)
class CpuFeatures:
    flags: frozenset[str]

    @property
    def bf16_native(self) -> bool:
        return not BF16_FLAGS.isdisjoint(self.flags)

    @classmethod
    def detect(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
        """The first processor's flags; none where the file is absent (not Linux): no native bf16 assumed."""
        try:
            text = cpuinfo.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return cls(frozenset())
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return cls(frozenset(value.split()))
        return cls(frozenset())


def resolve(
    *,
    runtime: RuntimeSetting,
    precision: PrecisionSetting,
    optimized: bool,
    quantized_package: bool,
    cpu: CpuFeatures,
    openvino_installed: bool,
) -> Layout:
    """The layout a model runs with. `optimized`: the model id is ES's x86-optimised variant; `quantized_package`:
    the package's ONNX is already int8 (its quantization is part of the file and cannot be undone)."""
    if runtime == "openvino" and not openvino_installed:
        raise LayoutError(f"ELSER_RUNTIME=openvino needs the openvino extra ({INSTALL_OPENVINO})")
    if quantized_package:
        # OpenVINO runs onnxruntime's dynamic-quantization ops (MatMulInteger) about 3× slower than onnxruntime.
        backend: Backend = "openvino" if runtime == "openvino" else "onnxruntime"
        ignored = f"; ELSER_PRECISION={precision} does not apply" if precision in ("fp32", "bf16") else ""
        return Layout(backend, "int8", f"the package is int8-quantized{ignored}")
    if precision == "auto":
        if optimized:
            return _fastest_accurate(runtime, cpu, openvino_installed)
        return Layout(_fp32_backend(runtime, openvino_installed), "fp32", "portable model id: exact fp32")
    if precision == "fp32":
        return Layout(_fp32_backend(runtime, openvino_installed), "fp32", "ELSER_PRECISION=fp32")
    if precision == "bf16":
        if runtime == "onnxruntime":
            raise LayoutError(
                "ELSER_PRECISION=bf16 needs ELSER_RUNTIME=openvino or auto (onnxruntime has no bf16 CPU kernels)"
            )
        if not openvino_installed:
            raise LayoutError(f"ELSER_PRECISION=bf16 needs the openvino extra ({INSTALL_OPENVINO})")
        note = (
            ""
            if cpu.bf16_native
            else " (this CPU has no native bf16: OpenVINO emulates it, slower than fp32)"
        )
        return Layout("openvino", "bf16", f"ELSER_PRECISION=bf16{note}")
    return Layout(_int8_backend(runtime, cpu, openvino_installed), "int8", "ELSER_PRECISION=int8")


def _fp32_backend(runtime: RuntimeSetting, openvino_installed: bool) -> Backend:
    if runtime != "auto":
        return runtime
    return "openvino" if openvino_installed else "onnxruntime"


def _int8_backend(runtime: RuntimeSetting, cpu: CpuFeatures, openvino_installed: bool) -> Backend:
    if runtime != "auto":
        return runtime
    # OpenVINO's int8 (int8 vocabulary weights, the rest in bf16) wins where bf16 is native; elsewhere its rest
    # runs in fp32 and onnxruntime's dynamic int8 is the measured one.
    return "openvino" if openvino_installed and cpu.bf16_native else "onnxruntime"


def _fastest_accurate(runtime: RuntimeSetting, cpu: CpuFeatures, openvino_installed: bool) -> Layout:
    if cpu.bf16_native and openvino_installed and runtime != "onnxruntime":
        return Layout("openvino", "bf16", "x86-optimised model id on a CPU with native bf16")
    if cpu.bf16_native and not openvino_installed:
        why = f"x86-optimised model id; native bf16 needs the openvino extra ({INSTALL_OPENVINO}), so int8"
    else:
        why = "x86-optimised model id on a CPU without native bf16 (or ELSER_RUNTIME=onnxruntime): int8"
    return Layout(_int8_backend(runtime, cpu, openvino_installed), "int8", why)
