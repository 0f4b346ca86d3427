"""The static SPF audit: the whole include/redirect tree, as a receiver would walk it.

gather_spf asks the DNS layer level by level: all records of one level at once, and while the
next level's records are fetched, the `a`/`mx`/`exists` lookups of this level run too; so a
deep tree costs its depth in round trips, not its size. Nothing stops at 10: every term is
counted (RFC 7208 §4.6.4), as if the client matched nothing, which is when a receiver spends
the most. Terms after `all` and a `redirect` beside `all` are never evaluated and not counted.
Terms whose target depends on the client (macros other than %{d}, and `ptr`) cannot be
resolved without one: they count one lookup, and possibly one void lookup (their worst case).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from dataclasses import dataclass, field

from mailcheck.checks.spf_eval import select_records
from mailcheck.checks.spf_macro import MacroContext, expand, malformed_domain, query_name
from mailcheck.checks.spf_parse import MacroString, Mechanism, SpfRecord, is_lookalike, parse_spf
from mailcheck.dns import DnsAnswer, DnsClient

MAX_TREE_NODES = 200
"""Records fetched at most: a tree of includes repeated at every level grows exponentially."""
MAX_TERM_LOOKUPS = 100
"""a/mx/exists terms resolved at most (receivers stop at 10); the rest are counted only."""
_NO_CLIENT = ipaddress.IPv4Address("192.0.2.0")


@dataclass(frozen=True)
class TermLookup:
    """A term of a record that counts as a DNS lookup (RFC 7208 §4.6.4), and what it found."""

    text: str
    """The term as written."""
    kind: str
    """include, a, mx, ptr, exists or redirect."""
    target: str | None
    """The name it looks up (no trailing dot); None when it depends on the client or is not a
    valid name."""
    dynamic: bool
    """The target depends on the connecting client or sender (macros, `ptr`)."""
    answers: tuple[DnsAnswer, ...] = ()
    """A and AAAA for `a`, MX for `mx`, A for `exists`, the target's TXT for include/redirect."""
    mechanism: Mechanism | None = None
    """The mechanism (None for redirect)."""

    @property
    def void(self) -> bool:
        """Every lookup came back NXDOMAIN or without records (a void lookup, §4.6.4)."""
        return bool(self.answers) and all(a.outcome.is_negative for a in self.answers)

    @property
    def failed(self) -> tuple[DnsAnswer, ...]:
        """The lookups that could not be completed."""
        return tuple(a for a in self.answers if a.outcome.is_failure)


@dataclass(frozen=True)
class SpfNode:
    """One record of the tree: the domain's TXT, its record, its lookups, its children."""

    domain: str
    """The domain whose record this is (no trailing dot)."""
    via: str | None = None
    """The term of the parent that leads here (None for the root)."""
    parent: str | None = None
    """The domain whose record holds that term."""
    qualifier: str = "+"
    """The qualifier of that include (`+` for the root and redirects)."""
    authorizing: bool = True
    """A pass of this record is a pass for the root domain (reached by +include/redirect)."""
    top: bool = True
    """The root, or reached from it by redirects only: its `all` is the domain's policy."""
    txt: DnsAnswer | None = None
    """The TXT lookup (None when not looked up: a loop, an invalid name, too many records)."""
    records: tuple[str, ...] = ()
    """The SPF records found (one, normally), as Latin-1 text."""
    strings: tuple[bytes, ...] = ()
    """The character-strings of the record, as published."""
    record: SpfRecord | None = None
    """The parsed record, when there is exactly one."""
    lookups: tuple[TermLookup, ...] = ()
    """Its terms that count as lookups, in order."""
    children: tuple[SpfNode, ...] = ()
    """The records its includes and redirect lead to, in term order."""
    error: str | None = None
    """Why the node has no usable record: `loop`, `lookup-failed`, `none`, `multiple`,
    `invalid-name`, `dynamic`, `truncated`; None when it has one."""
    lookalikes: tuple[str, ...] = ()
    """TXT records that look like SPF but are not (`v=spf10`, ` v=spf1 ...`)."""

    @property
    def own_lookups(self) -> int:
        """Lookups its own terms cost."""
        return len(self.lookups)

    @property
    def total_lookups(self) -> int:
        """Lookups of this record and everything below it."""
        return self.own_lookups + sum(c.total_lookups for c in self.children)

    @property
    def own_voids(self) -> int:
        """Void lookups of its own terms."""
        return sum(1 for t in self.lookups if t.void)

    @property
    def total_voids(self) -> int:
        """Void lookups of this record and everything below it."""
        return self.own_voids + sum(c.total_voids for c in self.children)

    def walk(self) -> list[SpfNode]:
        """This node and every node below it, depth first, in term order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass(frozen=True)
class SpfObservation:
    """What DNS says about a domain's SPF: the tree of records."""

    domain: str
    """The domain checked."""
    root: SpfNode
    """Its record and everything it includes."""
    unresolved: int = 0
    """Terms counted but not resolved, past MAX_TERM_LOOKUPS (their void lookups are unknown)."""

    @property
    def dynamic_terms(self) -> list[tuple[SpfNode, TermLookup]]:
        """Terms that depend on the client, with the node they are in."""
        return [(n, t) for n in self.root.walk() for t in n.lookups if t.dynamic]

    @property
    def worst_case_voids(self) -> int:
        """Void lookups if every client-dependent a/mx/ptr/exists term finds nothing."""
        dynamic = sum(1 for _, t in self.dynamic_terms if t.kind not in ("include", "redirect"))
        return self.root.total_voids + dynamic


@dataclass
class _Pending:
    """A node being built during the walk."""

    domain: str
    via: str | None = None
    qualifier: str = "+"
    authorizing: bool = True
    top: bool = True
    ancestors: tuple[str, ...] = ()
    error: str | None = None
    txt: DnsAnswer | None = None
    records: tuple[str, ...] = ()
    strings: tuple[bytes, ...] = ()
    record: SpfRecord | None = None
    lookalikes: tuple[str, ...] = ()
    terms: list[tuple[TermLookup, asyncio.Future[list[DnsAnswer]] | None]] = field(
        default_factory=list
    )
    children: list[_Pending] = field(default_factory=list)

    def freeze(self) -> SpfNode:
        """The finished node, with each term's answers (an include's: its target's TXT)."""
        children = tuple(c.freeze() for c in self.children)
        by_via = {c.via: c for c in children}
        lookups = []
        for term, task in self.terms:
            answers: tuple[DnsAnswer, ...] = tuple(task.result()) if task is not None else ()
            child = by_via.get(term.text) if term.kind in ("include", "redirect") else None
            if child is not None and child.txt is not None:
                answers = (child.txt,)
            lookups.append(dataclasses.replace(term, answers=answers))
        return SpfNode(
            domain=self.domain,
            via=self.via,
            parent=self.ancestors[-1] if self.ancestors else None,
            qualifier=self.qualifier,
            authorizing=self.authorizing,
            top=self.top,
            txt=self.txt,
            records=self.records,
            strings=self.strings,
            record=self.record,
            lookups=tuple(lookups),
            children=children,
            error=self.error,
            lookalikes=self.lookalikes,
        )


async def gather_spf(dns: DnsClient, domain: str) -> SpfObservation:
    """Walk the domain's SPF tree level by level, every level's lookups at once."""
    root = _Pending(domain.rstrip(".").lower())
    walk = _Walk()
    level = [root]
    if malformed_domain(root.domain) is not None:  # RFC 7208 §4.3: none, nothing is asked
        root.error, level = "invalid-name", []
    while level:
        answers = await asyncio.gather(*(_fetch(dns, p) for p in level))
        next_level: list[_Pending] = []
        for node, answer in zip(level, answers, strict=True):
            if answer is None:
                continue
            _read_txt(node, answer)
            if node.record is None:
                continue
            walk.pending.extend(_start_term_lookups(dns, node, walk))
            for child in _children(node):
                if child.error is None and walk.fetched >= MAX_TREE_NODES:
                    child.error = "truncated"
                if child.error is None:
                    walk.fetched += 1
                    next_level.append(child)
                node.children.append(child)
        level = next_level
    if walk.pending:
        await asyncio.gather(*walk.pending)
    return SpfObservation(root.domain, root.freeze(), walk.unresolved)


@dataclass
class _Walk:
    """Bounds on one walk: records fetched, term lookups started."""

    fetched: int = 1
    resolved: int = 0
    unresolved: int = 0
    pending: list[asyncio.Future[list[DnsAnswer]]] = field(default_factory=list)


async def _fetch(dns: DnsClient, node: _Pending) -> DnsAnswer | None:
    name = query_name(node.domain)
    if name is None:
        node.error = "invalid-name"
        return None
    return await dns.query(name, "TXT")


def _read_txt(node: _Pending, answer: DnsAnswer) -> None:
    node.txt = answer
    if answer.outcome.is_failure:
        node.error = "lookup-failed"
        return
    texts = [b"".join(s).decode("latin-1") for s in answer.txt_strings()]
    node.lookalikes = tuple(t for t in texts if is_lookalike(t))
    node.records = select_records(answer)
    if not node.records:
        node.error = "none"
    elif len(node.records) > 1:
        node.error = "multiple"
    else:
        node.strings = next(
            tuple(s) for s in answer.txt_strings() if b"".join(s).decode("latin-1") in node.records
        )
        node.record = parse_spf(node.records[0])


def _static_name(node: _Pending, mech_spec: MacroString | None) -> tuple[str | None, bool]:
    """(the name a domain-spec names, known without a client; depends on the client?)."""
    if mech_spec is None:
        return node.domain, False
    if not mech_spec.is_static:
        return None, True
    ctx = MacroContext(_NO_CLIENT, "", node.domain, "")
    name = query_name(expand(mech_spec, ctx))
    return (name.rstrip(".").lower() if name else None), False


def _start_term_lookups(
    dns: DnsClient, node: _Pending, walk: _Walk
) -> list[asyncio.Future[list[DnsAnswer]]]:
    """Record the node's lookup terms and start the lookups of a/mx/exists at once."""
    assert node.record is not None
    started = []
    for mech in node.record.reached:
        if not mech.causes_lookup:
            continue
        target, dynamic = _static_name(node, mech.domain_spec)
        dynamic = dynamic or mech.name == "ptr"  # the PTR names are the client's
        task = None
        resolvable = target is not None and not dynamic and mech.name != "include"
        if resolvable and walk.resolved >= MAX_TERM_LOOKUPS:
            walk.unresolved += 1
        elif resolvable and target is not None:
            walk.resolved += 1
            types = {"a": ("A", "AAAA"), "mx": ("MX",), "exists": ("A",)}[mech.name]
            task = asyncio.ensure_future(asyncio.gather(*(dns.query(target, t) for t in types)))
            started.append(task)
        term = TermLookup(mech.text, mech.name, target, dynamic, mechanism=mech)
        node.terms.append((term, task))
    redirect = node.record.redirect
    if redirect is not None and node.record.all is None and redirect.macro is not None:
        target, dynamic = _static_name(node, redirect.macro)
        node.terms.append((TermLookup(redirect.text, "redirect", target, dynamic), None))
    return started


def _children(node: _Pending) -> list[_Pending]:
    """The records the node's includes and applied redirect lead to, in term order."""
    out = []
    seen = node.ancestors + (node.domain,)
    for term, _ in node.terms:
        if term.kind not in ("include", "redirect"):
            continue
        redirect = term.kind == "redirect"
        qualifier = "+" if redirect else (term.mechanism.qualifier if term.mechanism else "+")
        child = _Pending(
            term.target or term.text,
            via=term.text,
            qualifier=qualifier,
            authorizing=node.authorizing and qualifier == "+",
            top=node.top and redirect,
            ancestors=seen,
        )
        if term.dynamic:
            child.error = "dynamic"
        elif term.target is None:
            child.error = "invalid-name"
        elif term.target in seen:
            child.error = "loop"  # RFC 7208 §4.6.4 ends a loop at 10 lookups with permerror
        out.append(child)
    return out
