"""SWIM + Lifeguard membership, sans-I/O (see ``core.py`` for the theory of operation)."""

from rustyray.membership.swim.config import SwimConfig, retransmit_limit, suspicion_timeout
from rustyray.membership.swim.core import SwimNode, SwimRoster
from rustyray.membership.swim.errors import SwimError, SwimUnexpectedMessage
from rustyray.membership.swim.events import (
    MemberInfo,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    NodeSuspected,
    NodeUpdated,
    SwimEvent,
)
from rustyray.membership.swim.messages import (
    SwimAck,
    SwimAlive,
    SwimDead,
    SwimGossip,
    SwimLeft,
    SwimMemberState,
    SwimNack,
    SwimPing,
    SwimPingReq,
    SwimPushPull,
    SwimSuspect,
    SwimUpdate,
)
from rustyray.membership.swim.suspicion import Suspicion, remaining_suspicion_time

__all__ = [
    "MemberInfo",
    "MemberState",
    "NodeFailed",
    "NodeJoined",
    "NodeLeft",
    "NodeRecovered",
    "NodeSuspected",
    "NodeUpdated",
    "Suspicion",
    "SwimAck",
    "SwimAlive",
    "SwimConfig",
    "SwimDead",
    "SwimError",
    "SwimEvent",
    "SwimGossip",
    "SwimLeft",
    "SwimMemberState",
    "SwimNack",
    "SwimNode",
    "SwimPing",
    "SwimPingReq",
    "SwimPushPull",
    "SwimRoster",
    "SwimSuspect",
    "SwimUnexpectedMessage",
    "SwimUpdate",
    "remaining_suspicion_time",
    "retransmit_limit",
    "suspicion_timeout",
]
