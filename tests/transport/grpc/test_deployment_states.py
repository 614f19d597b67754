"""Every core deployment phase (CONVERTING included) has its gRPC DeploymentState."""

from __future__ import annotations

import pytest
from elser.v1 import types_pb2
from elser_server.core.events import DeploymentEvent, Phase
from elser_server.transport.grpc.convert import deployment_event_proto


@pytest.mark.parametrize("phase", list(Phase))
def test_phase_maps_to_its_state(phase: Phase) -> None:
    event = deployment_event_proto(DeploymentEvent("d", ".elser_model_2", phase, bytes_done=7, bytes_total=7))
    assert types_pb2.DeploymentState.Name(event.state) == f"DEPLOYMENT_STATE_{phase.name}"
    assert event.download.bytes_done == event.download.bytes_total == 7
