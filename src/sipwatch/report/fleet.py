"""Who attacked which node: the one aggregate the correlation reports are computed from.

Definitions (the same in the CLI, the HTML report and the dashboard; docs/reports.md):
- an *attacker* is a source address (messages.src) that sent at least one request message that
  parsed (is_request = 1 and error = '') to a node; responses and unparsable payloads never make
  one. A *node* is messages.node; messages without a node count as the node '(none)'.
- an attacker's *contact* with a node is the set of its requests there: first and last time,
  requests, and requests per behaviour: the stages SS, ES, RHJ, TF and the method INVITE.
- N is the number of nodes that saw at least one attacker.

contacts() is one SELECT ... GROUP BY node, src over the requests; Fleet indexes its rows. So
every correlation table costs one scan of messages, and memory grows with distinct (node, src)
pairs, not messages. The SQL is portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cached_property
from operator import itemgetter

from sipwatch.report import geo
from sipwatch.report.tables import Queryable

# the behaviours counted per node: the four stages, and INVITE requests (any stage)
BEHAVIOURS = ("SS", "ES", "RHJ", "INVITE", "TF")
NO_NODE = "(none)"
ALL_NODES = "(all nodes)"
ATTACK = "is_request = 1 AND error = ''"

# A contact is one row of contacts(): (node, src, first, last, requests, SS, ES, RHJ, INVITE,
# TF). Plain tuples as the database returns them: a million pairs must stay cheap.
NODE, SRC, FIRST, LAST, REQUESTS = range(5)
COUNTS = 5  # index of the first behaviour count; BEHAVIOURS[i] is at COUNTS + i
Contact = tuple

_CONTACTS_SQL = (
    "SELECT node, src, MIN(ts), MAX(ts), COUNT(*),"
    " SUM(CASE WHEN stage = 'SS' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN stage = 'ES' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN stage = 'RHJ' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN method = 'INVITE' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN stage = 'TF' THEN 1 ELSE 0 END)"
    f" FROM messages WHERE {ATTACK} GROUP BY node, src"
)


def node_label(node: str) -> str:
    return node or NO_NODE


def percent(part: int, whole: int) -> float:
    """A share in %, one decimal; 0.0 of nothing."""
    return round(100.0 * part / whole, 1) if whole else 0.0


def contacts(db: Queryable) -> list[Contact]:
    """One row per (node, attacker): the only scan of messages the correlation reports need.

    Rows as the engine returns them: every group has a row, so no SUM is NULL, and both
    engines return the counts as int (SUM of an integer CASE is BIGINT on PostgreSQL).
    """
    return db.query(_CONTACTS_SQL)


class Fleet:
    """The contacts, indexed by node and by attacker when a table first needs it (built once,
    shared by all tables). Sums and counts go through map/itemgetter/compress, which run in C,
    so a fleet of a million (node, attacker) pairs stays quick."""

    def __init__(self, rows: Iterable[Contact]) -> None:
        self.contacts = list(rows)
        self.nodes = sorted(set(map(itemgetter(NODE), self.contacts)))

    @cached_property
    def attackers(self) -> Counter[str]:
        """Attacker -> number of nodes that saw it."""
        return Counter(map(itemgetter(SRC), self.contacts))

    @cached_property
    def by_node(self) -> dict[str, list[Contact]]:
        out: dict[str, list[Contact]] = {node: [] for node in self.nodes}
        for c in self.contacts:
            out[c[NODE]].append(c)
        return out

    @cached_property
    def by_src(self) -> dict[str, list[Contact]]:
        """Attacker -> its contacts in first-contact order (ties by node name)."""
        out: dict[str, list[Contact]] = {}
        for c in sorted(self.contacts, key=itemgetter(FIRST, NODE)):
            if (cs := out.get(c[SRC])) is None:
                out[c[SRC]] = [c]
            else:
                cs.append(c)
        return out

    @cached_property
    def origins(self) -> dict[str, tuple[str, str]]:
        """Attacker -> (country, AS name), looked up once per fleet (report/geo.py)."""
        return {src: geo.lookup(src) for src in self.attackers}

    @classmethod
    def of(cls, db: Queryable) -> Fleet:
        return cls(contacts(db))

    def node_sets(self) -> Counter[int]:
        """How many attackers were seen at exactly each set of nodes; a set is a bit mask,
        bit j for self.nodes[j]."""
        bits = {node: 1 << j for j, node in enumerate(self.nodes)}
        masks: dict[str, int] = {}
        get = masks.get
        for c in self.contacts:
            masks[c[SRC]] = get(c[SRC], 0) | bits[c[NODE]]
        return Counter(masks.values())
