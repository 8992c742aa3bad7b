"""Which node a message belongs to, by the local address it arrived on (central sensor approach).

Each node's traffic reaches the central sensor DNATed to that node's own central tunnel address
(see deploy/nodes.py), so the destination address of an inbound message names the node: one
dict lookup per message. An address that is no node's gives "" — the sensor itself: the trace
store keeps the sensor's name in every row, and the central service files rows with an empty
node under the sensor's default node.
"""

from __future__ import annotations

from sipwatch.deploy.nodes import InventoryError, attribution_map, load_inventory


class NodeAttribution:
    def __init__(self, by_address: dict[str, str] | None = None) -> None:
        self.by_address = dict(by_address or {})

    @classmethod
    def from_inventory(cls, path: str) -> NodeAttribution:
        """Load and check the inventory (InventoryError lists the problems)."""
        return cls(attribution_map(load_inventory(path)))

    def node(self, local_address: str) -> str:
        return self.by_address.get(local_address, "")

    def __len__(self) -> int:
        return len(self.by_address)


__all__ = ["InventoryError", "NodeAttribution", "with_nodes"]


def with_nodes(cfg, path) -> object:
    """The sensor config with the command line's --nodes; the inventory checked (ConfigError)."""
    from dataclasses import replace

    from sipwatch.honeypot.config import ConfigError

    try:
        load_inventory(path)
    except InventoryError as exc:
        raise ConfigError([f"--nodes: {p}" for p in exc.problems]) from None
    return replace(cfg, sensor=replace(cfg.sensor, nodes=str(path)))
