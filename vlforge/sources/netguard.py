"""Refuse downloads from private, loopback, link-local and cloud-metadata addresses (SSRF guard).

Raw dumps are hostile input: a URL may point at the crawler's own network. The guard works at
the socket: every HTTP(S) connection urllib opens (img2dataset downloads with urllib), including
each redirect hop, resolves its host once, refuses if *any* resolved address is in a blocked range,
and then connects to exactly the address it checked. No connection is attempted to a refused
address, and DNS rebinding between check and connect is impossible because nothing resolves twice.

Blocked is every address that is not globally routable, from explicit IANA tables (not the Python
version's), and IPv6 forms that carry an IPv4 address (mapped, IPv4-compatible, SIIT, NAT64, 6to4) are
judged by the IPv4 address inside; `allow_loopback` allows exactly 127.0.0.0/8 and ::1, not the wrappers.

Time: a socket timeout bounds each read, not a server that sends a byte a second. Each download (its
redirect hops and body together) gets a wall-clock deadline, and all downloads through one opener (a
work unit) another; a watchdog shuts the connection down when the deadline passes (`too_slow`,
`unit_deadline`), and no new download starts after the unit's.

Limitations: resolving a host name still sends a DNS query to the system resolver; IP literals
(`http://10.0.0.1/`) never leave the process. Proxies are not used (the opener has no ProxyHandler).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

# Instance-metadata endpoints of the big clouds; most are link-local or private anyway, but two are not
# (Alibaba's sits in the shared 100.64/10 range, Oracle's in 192.0.0/24), and naming them makes the reason clear.
CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean
    "169.254.170.2",     # AWS ECS task metadata
    "169.254.169.123",   # AWS time sync
    "100.100.100.200",   # Alibaba Cloud
    "192.0.0.192",       # Oracle Cloud
    "fd00:ec2::254",     # AWS over IPv6
))
ALLOWED_SCHEMES = ("http", "https")
REFUSED_MARK = "vlforge-refused"


def _table(*entries: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), category) for net, category in entries)


# Not globally routable, from the IANA special-purpose registries (written out, so the verdict does not depend on
# the Python version's `ipaddress` tables; those are consulted too, and can only add refusals).
SPECIAL_V4 = _table(
    ("0.0.0.0/32", "unspecified"), ("0.0.0.0/8", "reserved"),  # "this network"
    ("10.0.0.0/8", "private"), ("100.64.0.0/10", "reserved"),  # carrier-grade NAT
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link_local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"), ("192.0.2.0/24", "reserved"),  # IETF protocol assignments, documentation
    ("192.88.99.0/24", "reserved"),  # former 6to4 relay anycast
    ("192.168.0.0/16", "private"), ("198.18.0.0/15", "reserved"),  # benchmarking
    ("198.51.100.0/24", "reserved"), ("203.0.113.0/24", "reserved"),  # documentation
    ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),  # future use and broadcast
)
SPECIAL_V6 = _table(
    ("::/128", "unspecified"), ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),  # local-use NAT64: translated by someone's own network
    ("100::/64", "reserved"), ("100:0:0:1::/64", "reserved"),  # discard-only, dummy prefix
    ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo 2001::/32 included (its IPv4 is obfuscated)
    ("2001:db8::/32", "reserved"), ("3fff::/20", "reserved"),  # documentation
    ("5f00::/16", "reserved"),  # SRv6 segment identifiers
    ("fc00::/7", "private"), ("fec0::/10", "private"),  # unique local, deprecated site-local
    ("fe80::/10", "link_local"), ("ff00::/8", "multicast"),
)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")  # everything outside it is unallocated or special
# IPv6 prefixes whose last 32 bits are an IPv4 address the packets go to. `public`: whether the wrapper itself
# is routable, so a public IPv4 inside may pass; IPv4-compatible and SIIT forms never leave a site.
EMBEDDED_V4 = (
    (ipaddress.ip_network("::ffff:0:0/96"), True),  # IPv4-mapped: a dual-stack socket connects over IPv4
    (ipaddress.ip_network("64:ff9b::/96"), True),  # well-known NAT64 prefix
    (ipaddress.ip_network("::ffff:0:0:0/96"), False),  # SIIT IPv4-translated
    (ipaddress.ip_network("::/96"), False),  # deprecated IPv4-compatible (after :: and ::1, checked first)
)
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_address("::1")


@dataclass(frozen=True)
class AddressPolicy:
    """What the guard lets through; the defaults refuse everything that is not a public address.

    `max_seconds` bounds one download (all its redirect hops and its body) in wall-clock time;
    `max_unit_seconds` bounds all downloads made under one opener (one work unit); None: no bound.
    """

    allow_loopback: bool = False
    max_redirects: int = 3
    max_bytes: int = 32 * 1024 * 1024
    max_seconds: float | None = 60.0
    max_unit_seconds: float | None = None


class BlockedAddress(OSError):
    """Raised instead of connecting; an OSError so urllib reports it like any connection failure."""

    def __init__(self, category: str, address: str, host: str) -> None:
        super().__init__(f"{REFUSED_MARK}:blocked_{category} {host} resolves to {address}")
        self.category = category


class ResponseTooLarge(OSError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{REFUSED_MARK}:too_large response larger than {limit} bytes")


class DeadlineExceeded(OSError):
    """A download stopped at its wall-clock deadline (`too_slow`) or the unit's (`unit_deadline`)."""

    def __init__(self, kind: str, seconds: float | None) -> None:
        super().__init__(f"{REFUSED_MARK}:{kind} download time limit of {seconds} s reached")
        self.kind = kind


def _lookup(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for network, category in SPECIAL_V4 if ip.version == 4 else SPECIAL_V6:
        if ip in network:
            return category
    return None


def _python_category(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What this Python's `ipaddress` thinks; only ever adds to the explicit tables."""
    for category, test in (("loopback", ip.is_loopback), ("link_local", ip.is_link_local),
                           ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                           ("private", ip.is_private), ("reserved", ip.is_reserved or not ip.is_global)):
        if test:
            return category
    return None


def _classify(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip in CLOUD_METADATA:
        return "cloud_metadata"
    if ip.version == 6 and (category := _lookup(ip)) in ("unspecified", "loopback"):
        return category  # :: and ::1 sit inside the IPv4-compatible ::/96
    if ip.version == 6:
        for network, public in EMBEDDED_V4:
            if ip in network:
                inner = _classify(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
                return inner if inner is not None or public else "reserved"
        if ip in SIX_TO_FOUR:
            return _classify(ip.sixtofour)
    category = _lookup(ip)
    if category is None and ip.version == 6 and ip not in GLOBAL_UNICAST_V6:
        category = "reserved"
    return category or _python_category(ip)


def classify_address(address: str) -> str | None:
    """The blocked category of an IP address, or None when it is a public unicast address.

    Categories: cloud_metadata, loopback, link_local, unspecified, multicast, private, reserved
    (everything else that is not globally routable). IPv6 forms that carry an IPv4 address (mapped,
    IPv4-compatible, SIIT, NAT64, 6to4) are judged by the IPv4 address inside. No socket is touched.
    """
    return _classify(ipaddress.ip_address(address.split("%", 1)[0]))


def _plain_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1 itself: what `allow_loopback` allows (not a wrapper around them, which leaves the host)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip in _LOOPBACK_V4 if ip.version == 4 else ip == _LOOPBACK_V6


def refused_category(address: str, policy: AddressPolicy) -> str | None:
    category = classify_address(address)
    if category == "loopback" and policy.allow_loopback and _plain_loopback(address):
        return None
    return category


def check_url(url: str, policy: AddressPolicy) -> str | None:
    """Reason to refuse `url` without resolving anything, or None to let the connection guard decide.

    Catches bad schemes, missing hosts and blocked IP literals; host names are checked at connect time.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "bad_url"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return "bad_url_scheme"
    if not host:
        return "bad_url"
    try:
        category = refused_category(host, policy)
    except ValueError:
        return None  # a host name (or an odd literal like 127.1): resolved and checked when connecting
    return None if category is None else f"blocked_{category}"


def guarded_create_connection(
    address: tuple[str, int],
    timeout: float | object = socket._GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    *,
    policy: AddressPolicy,
) -> socket.socket:
    """socket.create_connection that resolves once, checks every address, then connects to the checked ones."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        category = refused_category(sockaddr[0], policy)
        if category is not None:
            raise BlockedAddress(category, sockaddr[0], host)
    error: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error if error is not None else OSError(f"no address for {host}")


_local = threading.local()  # the deadline of the download this thread is making: (monotonic time, kind, seconds)


class Watchdog:
    """Shuts a connection down at its deadline: a socket timeout bounds each read, not a server that trickles.

    It holds its own duplicate of the socket, which stays valid when TLS wraps (and detaches) the original.
    """

    def __init__(self, sock: socket.socket, deadline: tuple[float, str, float | None]) -> None:
        self.when, self.kind, self.seconds = deadline
        self.expired = False
        self._sock: socket.socket | None = sock.dup()
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(self.when - time.monotonic(), 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._sock is None:
                return
            self.expired = True
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            self._sock.close()
            self._sock = None

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def raise_if_expired(self) -> None:
        """Past the deadline, whatever stopped the read (the shutdown, or a socket timeout cut to the deadline)."""
        if self.expired or time.monotonic() >= self.when:
            raise DeadlineExceeded(self.kind, self.seconds)


def _remaining(timeout: float | object) -> float | object:
    """The socket timeout, shortened to what is left of this thread's download deadline."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline[0] - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(deadline[1], deadline[2])
    return left if timeout is socket._GLOBAL_DEFAULT_TIMEOUT or timeout is None else min(timeout, left)


class LimitedResponse(http.client.HTTPResponse):
    """An HTTP response whose body may not exceed `max_bytes` (a 10 GB "image" must not fill memory),
    read before the download's deadline (its watchdog, handed over by the connection)."""

    watchdog: Watchdog | None = None

    def __init__(self, sock: socket.socket, *args: object, max_bytes: int, **kwargs: object) -> None:
        super().__init__(sock, *args, **kwargs)
        self.max_bytes = max_bytes

    def read(self, amt: int | None = None) -> bytes:
        try:
            data = self._read_limited(amt)
        except (OSError, http.client.HTTPException):
            if self.watchdog is not None:
                self.watchdog.raise_if_expired()
            raise
        if self.watchdog is not None:
            self.watchdog.raise_if_expired()
            if self.isclosed():  # the whole body is in: nothing left to watch
                self.watchdog.cancel()
        return data

    def _read_limited(self, amt: int | None) -> bytes:
        if self.length is not None and self.length > self.max_bytes:
            raise ResponseTooLarge(self.max_bytes)
        if amt is not None:
            return super().read(amt)
        data = super().read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise ResponseTooLarge(self.max_bytes)
        return data

    def close(self) -> None:
        super().close()
        if self.watchdog is not None:
            self.watchdog.cancel()


class _Guarded:
    """The guard of one HTTP(S) connection: checked addresses, a size cap, and the download's deadline."""

    watchdog: Watchdog | None = None

    def _guard(self, policy: AddressPolicy) -> None:
        self._create_connection = partial(self._connect_guarded, policy=policy)
        self.response_class = partial(LimitedResponse, max_bytes=policy.max_bytes)

    def _connect_guarded(self, address: tuple[str, int], timeout: float | object = socket._GLOBAL_DEFAULT_TIMEOUT,
                         source_address: tuple[str, int] | None = None, *, policy: AddressPolicy) -> socket.socket:
        sock = guarded_create_connection(address, _remaining(timeout), source_address, policy=policy)
        deadline = getattr(_local, "deadline", None)
        if deadline is not None:
            self.watchdog = Watchdog(sock, deadline)
        return sock

    def getresponse(self) -> http.client.HTTPResponse:
        watchdog = self.watchdog  # close() on a failed response forgets it
        try:
            response = super().getresponse()
        except (OSError, http.client.HTTPException):
            if watchdog is not None:
                watchdog.raise_if_expired()
            raise
        response.watchdog, self.watchdog = watchdog, None  # the body is read after the connection is let go
        return response

    def close(self) -> None:
        super().close()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None


class GuardedHTTPConnection(_Guarded, http.client.HTTPConnection):
    def __init__(self, *args: object, policy: AddressPolicy, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._guard(policy)


class GuardedHTTPSConnection(_Guarded, http.client.HTTPSConnection):
    """TLS still verifies the certificate against the host name; only the TCP connect is guarded."""

    def __init__(self, *args: object, policy: AddressPolicy, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._guard(policy)


class GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__()
        self.policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(GuardedHTTPConnection, policy=self.policy), req)


class GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__()
        self.policy = policy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(GuardedHTTPSConnection, policy=self.policy), req, context=self._context)


class LimitedRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows at most `max_redirects` hops (each one through the guarded connection); 0 follows none."""

    def __init__(self, max_redirects: int) -> None:
        super().__init__()
        self.max_redirections = max_redirects

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's signature
        if self.max_redirections == 0:
            return None  # the 3xx then surfaces as an HTTPError: "HTTP Error 302"
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class DeadlineOpener(urllib.request.OpenerDirector):
    """Gives each download one wall-clock deadline (its redirect hops and body included) and refuses new
    downloads once the time of all downloads through this opener (`max_unit_seconds`) is spent."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.unit_deadline = None if policy.max_unit_seconds is None \
            else time.monotonic() + policy.max_unit_seconds

    def open(self, fullurl: str | urllib.request.Request, data: bytes | None = None,
             timeout: float | object = socket._GLOBAL_DEFAULT_TIMEOUT) -> http.client.HTTPResponse:
        if getattr(_local, "deadline", None) is not None:  # a redirect hop: the first request's deadline holds
            return super().open(fullurl, data, timeout)
        now = time.monotonic()
        deadlines = [(now + self.policy.max_seconds, "too_slow", self.policy.max_seconds)
                     if self.policy.max_seconds is not None else None,
                     (self.unit_deadline, "unit_deadline", self.policy.max_unit_seconds)
                     if self.unit_deadline is not None else None]
        deadline = min((d for d in deadlines if d is not None), default=None)
        if deadline is not None and deadline[0] <= now:
            raise DeadlineExceeded(deadline[1], deadline[2])
        _local.deadline = deadline
        try:
            return super().open(fullurl, data, timeout)
        finally:
            _local.deadline = None


def build_guarded_opener(policy: AddressPolicy) -> urllib.request.OpenerDirector:
    """An opener that speaks only http and https, without proxies, with every connection guarded."""
    opener = DeadlineOpener(policy)
    for handler in (
        urllib.request.UnknownHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        LimitedRedirectHandler(policy.max_redirects),
        GuardedHTTPHandler(policy),
        GuardedHTTPSHandler(policy),
    ):
        opener.add_handler(handler)
    return opener


@contextmanager
def guarded_urlopen(policy: AddressPolicy) -> Iterator[urllib.request.OpenerDirector]:
    """Route every `urllib.request.urlopen` of this process through the guard while the block runs.

    img2dataset calls the module-level `urlopen`, which uses the installed opener; installing is
    process-wide, so a Ray task holds it for the length of its download (tasks run one per worker).
    """
    opener = build_guarded_opener(policy)
    urllib.request.install_opener(opener)
    try:
        yield opener
    finally:
        urllib.request.install_opener(None)
