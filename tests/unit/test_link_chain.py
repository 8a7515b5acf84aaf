"""Link wrappers stack in front of the mesh's writer and come out in any order."""

from __future__ import annotations

from typing import Any

from rustyray.config import NodeConfig, TransportConfig
from rustyray.protocol.control import Echo
from rustyray.transport.link import DirectLink, WrapperLink
from rustyray.transport.mesh import Mesh


class Tag(WrapperLink):
    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log = name, log

    def write(self, conn: Any, message: Any, msg_id: int, flags: int, stream_id: int | None) -> None:
        self.log.append(self.name)
        super().write(conn, message, msg_id, flags, stream_id)


class FakeConn:
    is_closed = False

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send_message(self, message: Any, msg_id: int, flags: int = 0, stream_id: int | None = None) -> int:
        self.sent.append(msg_id)
        return 1


def test_wrappers_see_every_frame_and_unwrap_from_the_middle(tmp_path) -> None:
    mesh = Mesh(NodeConfig(node_id="n1", state_dir=str(tmp_path), transport=TransportConfig(tls=False)))
    log: list[str] = []
    outer, inner = Tag("outer", log), Tag("inner", log)
    mesh.add_link(inner)
    mesh.add_link(outer)
    conn = FakeConn()
    mid = mesh.send_on(conn, Echo(data=b"x"))  # type: ignore[arg-type]
    assert log == ["outer", "inner"] and conn.sent == [mid]
    mesh.remove_link(inner)
    log.clear()
    mesh.send_on(conn, Echo(data=b"y"))  # type: ignore[arg-type]
    assert log == ["outer"] and len(conn.sent) == 2
    mesh.remove_link(outer)
    assert isinstance(mesh.link, DirectLink)
