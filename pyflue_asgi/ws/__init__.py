"""Agents and workflows over WebSocket: the protocol (version 1), one connection per socket, the
endpoints on the HTTP routes' paths, and the handshake's authentication."""

from .connection import WebSocketOptions
from .endpoints import socket_routes
from .handshake import SocketAuth

__all__ = ["SocketAuth", "WebSocketOptions", "socket_routes"]
