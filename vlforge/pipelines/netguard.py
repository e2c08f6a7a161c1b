"""Refuse downloads from private, loopback, link-local and cloud-metadata addresses (SSRF guard).

Raw dumps are hostile input: a URL may point at the crawler's own network. The guard works at
the socket: every HTTP(S) connection urllib opens (img2dataset downloads with urllib), including
each redirect hop, resolves its host once, refuses if *any* resolved address is in a blocked range,
and then connects to exactly the address it checked. No connection is attempted to a refused
address, and DNS rebinding between check and connect is impossible because nothing resolves twice.

Limitations: resolving a host name still sends a DNS query to the system resolver; IP literals
(`http://10.0.0.1/`) never leave the process. Proxies are not used (the opener has no ProxyHandler).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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
NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOWED_SCHEMES = ("http", "https")
REFUSED_MARK = "vlforge-refused"


@dataclass(frozen=True)
class AddressPolicy:
    """What the guard lets through; the defaults refuse everything that is not a public address."""

    allow_loopback: bool = False
    max_redirects: int = 3
    max_bytes: int = 32 * 1024 * 1024


class BlockedAddress(OSError):
    """Raised instead of connecting; an OSError so urllib reports it like any connection failure."""

    def __init__(self, category: str, address: str, host: str) -> None:
        super().__init__(f"{REFUSED_MARK}:blocked_{category} {host} resolves to {address}")
        self.category = category


class ResponseTooLarge(OSError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{REFUSED_MARK}:too_large response larger than {limit} bytes")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address tunnels to (mapped, NAT64, 6to4), which is where packets go."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def classify_address(address: str) -> str | None:
    """The blocked category of an IP address, or None when it is a public unicast address.

    Categories: cloud_metadata, loopback, link_local, unspecified, multicast, private, reserved
    (everything else that is not globally routable: shared 100.64/10, documentation, benchmarking, ...).
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        ip = inner  # the packets go to the IPv4 address inside
    if ip in CLOUD_METADATA:
        return "cloud_metadata"
    for category, test in (
        ("loopback", ip.is_loopback),
        ("link_local", ip.is_link_local),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", not ip.is_global),
    ):
        if test:
            return category
    return None


def refused_category(address: str, policy: AddressPolicy) -> str | None:
    category = classify_address(address)
    if category == "loopback" and policy.allow_loopback:
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


class LimitedResponse(http.client.HTTPResponse):
    """An HTTP response whose body may not exceed `max_bytes` (a 10 GB "image" must not fill memory)."""

    def __init__(self, sock: socket.socket, *args: object, max_bytes: int, **kwargs: object) -> None:
        super().__init__(sock, *args, **kwargs)
        self.max_bytes = max_bytes

    def read(self, amt: int | None = None) -> bytes:
        if self.length is not None and self.length > self.max_bytes:
            raise ResponseTooLarge(self.max_bytes)
        if amt is not None:
            return super().read(amt)
        data = super().read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise ResponseTooLarge(self.max_bytes)
        return data


def _guard(connection: http.client.HTTPConnection, policy: AddressPolicy) -> None:
    connection._create_connection = partial(guarded_create_connection, policy=policy)
    connection.response_class = partial(LimitedResponse, max_bytes=policy.max_bytes)


class GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: object, policy: AddressPolicy, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _guard(self, policy)


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    """TLS still verifies the certificate against the host name; only the TCP connect is guarded."""

    def __init__(self, *args: object, policy: AddressPolicy, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _guard(self, policy)


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


def build_guarded_opener(policy: AddressPolicy) -> urllib.request.OpenerDirector:
    """An opener that speaks only http and https, without proxies, with every connection guarded."""
    opener = urllib.request.OpenerDirector()
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
