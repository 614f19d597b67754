"""Installed models: each model id is installed from the repository once and loaded once, whatever the
number of endpoints/deployments using it."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from elser_server.core.defaults import ELSER_V2_X86_MODEL_ID
from elser_server.core.errors import model_invalid, model_not_found, shutting_down
from elser_server.core.memory import shares_weights
from elser_server.core.observer import CoreObserver
from elser_server.model.package import InstallCancelled, ModelFileNotFound, ModelPackage, PackageError
from elser_server.model.repository import Progress, install
from elser_server.runtime.backends import (
    LoadedRuntime,
    Session,
    is_quantized,
    load_runtime,
    openvino_installed,
)
from elser_server.runtime.layout import (
    CpuFeatures,
    Layout,
    LayoutError,
    PrecisionSetting,
    RuntimeSetting,
    resolve,
)
from elser_server.runtime.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    package: ModelPackage
    tokenizer: Tokenizer
    # The model under its backend and precision: one copy of the weights for every allocation of every
    # deployment of this model (onnxruntime: only for large models, whose sessions then skip weight pre-packing;
    # small ones keep private pre-packed weights, measured: a single query 1.2 ms instead of 1.9 ms on the default
    # model. OpenVINO: one compiled model per thread count, one infer request per allocation).
    runtime: LoadedRuntime

    @property
    def layout(self) -> Layout:
        return self.runtime.layout

    def new_session(self, num_threads: int) -> Session:
        return self.runtime.new_session(num_threads)


class ModelManager:
    def __init__(
        self,
        repository: str,
        cache_dir: Path,
        observer: CoreObserver | None = None,
        *,
        convert_quantize: str = "none",
        runtime: RuntimeSetting = "auto",
        precision: PrecisionSetting = "auto",
        processors: int | None = None,
    ) -> None:
        self.repository = repository
        self._observer = observer
        self.cache_dir = cache_dir
        # Applies to repository entries converted on install (Elastic's TorchScript, Hugging Face checkpoints).
        self.convert_quantize = convert_quantize
        self._packages: dict[str, ModelPackage] = {}
        # ELSER_RUNTIME / ELSER_PRECISION: resolved per model at load (`auto` depends on the model id and CPU).
        self.runtime = runtime
        self.precision = precision
        self._processors = processors or os.cpu_count() or 1
        self._cpu = CpuFeatures.detect()
        log.info(
            "inference runtime %s, precision %s (CPU native bf16: %s; openvino installed: %s); each model logs its "
            "layout when it loads",
            runtime,
            precision,
            "yes" if self._cpu.bf16_native else "no",
            "yes" if openvino_installed() else "no",
        )
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._progress: dict[str, list[Progress]] = {}
        self._converting: dict[str, list[Callable[[], None]]] = {}
        self._cancel_installs = threading.Event()

    async def install(
        self,
        model_id: str,
        on_progress: Progress | None = None,
        on_converting: Callable[[], None] | None = None,
    ) -> ModelPackage:
        """Install `model_id` (if absent) and verify its package, without loading it; concurrent callers share one
        download, and each of them hears its progress (bytes done, bytes total) and when a conversion starts."""
        if model_id in self._packages:
            return self._packages[model_id]
        listeners = self._progress.setdefault(model_id, [])
        converting_listeners = self._converting.setdefault(model_id, [])
        if on_progress is not None:
            listeners.append(on_progress)
        if on_converting is not None:
            converting_listeners.append(on_converting)
        try:
            async with self._locks.setdefault(model_id, asyncio.Lock()):
                if model_id not in self._packages:
                    loop = asyncio.get_running_loop()

                    def report(done: int, total: int) -> None:
                        loop.call_soon_threadsafe(self._report, model_id, done, total)

                    def converting() -> None:
                        loop.call_soon_threadsafe(self._report_converting, model_id)

                    try:
                        self._packages[model_id] = await asyncio.to_thread(
                            self._install, model_id, report, converting
                        )
                    except Exception:
                        if self._observer is not None:
                            self._observer.download_failed(model_id)
                        raise
                return self._packages[model_id]
        finally:
            if on_progress is not None:
                listeners.remove(on_progress)
            if on_converting is not None:
                converting_listeners.remove(on_converting)

    def installed(self, model_id: str) -> ModelPackage | None:
        """The package of `model_id` when this process installed it already (its size is then known)."""
        return self._packages.get(model_id)

    async def get(
        self,
        model_id: str,
        on_progress: Progress | None = None,
        on_converting: Callable[[], None] | None = None,
    ) -> LoadedModel:
        """Install (if absent) and load `model_id` once, whatever the number of callers."""
        if model_id in self._loaded:
            return self._loaded[model_id]
        package = await self.install(model_id, on_progress, on_converting)
        async with self._locks.setdefault(model_id, asyncio.Lock()):
            if model_id not in self._loaded:
                self._loaded[model_id] = await asyncio.to_thread(self._load, model_id, package)
            return self._loaded[model_id]

    @property
    def loaded(self) -> frozenset[str]:
        """Ids of the models held in memory."""
        return frozenset(self._loaded)

    def release(self, model_id: str) -> None:
        """Drop a model no deployment uses any more (its tokenizer and shared weights); a later `get` loads it
        again from the local cache, without downloading."""
        if self._loaded.pop(model_id, None) is not None:
            log.info("model %s unloaded", model_id)

    def cancel_installs(self) -> None:
        """Shutdown: running downloads stop at their next piece and conversions are killed, so the process does
        not wait for them to finish; later installs fail at once."""
        self._cancel_installs.set()

    def _report(self, model_id: str, done: int, total: int) -> None:
        if self._observer is not None:
            self._observer.download_progress(model_id, done, total)
        for listener in self._progress.get(model_id, ()):
            listener(done, total)

    def _report_converting(self, model_id: str) -> None:
        for listener in self._converting.get(model_id, ()):
            listener()

    def _install(self, model_id: str, progress: Progress, converting: Callable[[], None]) -> ModelPackage:
        try:
            package_dir = install(
                self.repository,
                model_id,
                self.cache_dir,
                progress,
                converting=converting,
                quantize=self.convert_quantize,
                cancel=self._cancel_installs,
            )
            return ModelPackage.load(package_dir, verify=True)
        except ModelFileNotFound as exc:
            raise model_not_found(model_id) from exc
        except InstallCancelled as exc:
            raise shutting_down() from exc
        except PackageError as exc:
            # A bad model in the repository is the operator's to fix: say what is wrong where they look.
            log.warning("model %s cannot be deployed: %s", model_id, exc)
            raise model_invalid(model_id, str(exc)) from exc

    def layout_for(self, model_id: str, package: ModelPackage) -> Layout:
        """The backend and precision `model_id` runs with (ELSER_RUNTIME, ELSER_PRECISION; `auto` by model id,
        package and CPU); a deployment error when this installation cannot run what the settings ask for."""
        try:
            return resolve(
                runtime=self.runtime,
                precision=self.precision,
                optimized=model_id == ELSER_V2_X86_MODEL_ID,
                quantized_package=is_quantized(package),
                cpu=self._cpu,
                openvino_installed=openvino_installed(),
            )
        except LayoutError as exc:
            raise model_invalid(model_id, str(exc), "RUNTIME_UNAVAILABLE") from exc

    def _load(self, model_id: str, package: ModelPackage) -> LoadedModel:
        tokenizer = Tokenizer.from_file(package.tokenizer_path, max_length=package.max_sequence_length)
        layout = self.layout_for(model_id, package)
        runtime = load_runtime(
            package.model_path,
            layout,
            max_sequence_length=package.max_sequence_length,
            processors=self._processors,
            share_weights=shares_weights(package),
            quantized=is_quantized(package),
        )
        log.info(
            "model %s loaded from %s: runs on %s (%s)",
            model_id,
            package.path,
            runtime.layout,
            runtime.layout.reason,
        )
        return LoadedModel(model_id, package, tokenizer, runtime)
