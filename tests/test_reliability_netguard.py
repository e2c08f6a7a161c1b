"""Issue 8, items 7, 9 and 10: the address guard decides without touching a socket, judges IPv6 wrappers by the
IPv4 inside, sits in the path img2dataset really downloads through, and bounds every download in wall-clock time.

Every connection these tests make goes to a server they start on 127.0.0.1; other addresses are only classified.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from test_clean_support import ImageServer, jpeg, only_loopback_connections, photo

from vlforge.sources.download import DownloadOptions, download
from vlforge.sources.netguard import (
    AddressPolicy,
    DeadlineExceeded,
    build_guarded_opener,
    check_url,
    classify_address,
    guarded_urlopen,
    refused_category,
)
from vlforge.sources.spill import Spill

LOOPBACK_OK = AddressPolicy(allow_loopback=True)


@pytest.mark.parametrize("address, category", [
    # IPv4 special-purpose ranges (IANA), each named by its table entry
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "reserved"), ("10.255.255.255", "private"),
    ("100.64.0.1", "reserved"), ("100.127.255.254", "reserved"), ("127.0.0.1", "loopback"),
    ("127.200.1.1", "loopback"), ("169.254.0.1", "link_local"), ("172.16.0.1", "private"),
    ("172.31.0.1", "private"), ("192.0.0.1", "reserved"), ("192.0.0.9", "reserved"), ("192.0.2.55", "reserved"),
    ("192.88.99.1", "reserved"), ("192.168.77.1", "private"), ("198.18.5.5", "reserved"),
    ("198.19.255.1", "reserved"), ("198.51.100.7", "reserved"), ("203.0.113.9", "reserved"),
    ("224.0.0.251", "multicast"), ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("169.254.169.254", "cloud_metadata"), ("100.100.100.200", "cloud_metadata"),
    # IPv6 special-purpose ranges
    ("::", "unspecified"), ("::1", "loopback"), ("fe80::1", "link_local"), ("fe80::1%eth0", "link_local"),
    ("febf::1", "link_local"), ("fec0::1", "private"), ("feff::1", "private"), ("fc00::1", "private"),
    ("fdff::1", "private"), ("ff02::1", "multicast"), ("ff0e::1", "multicast"), ("100::1", "reserved"),
    ("100:0:0:1::1", "reserved"), ("2001:db8::1", "reserved"), ("3fff::1", "reserved"), ("5f00::1", "reserved"),
    ("64:ff9b:1::a00:1", "private"), ("64:ff9b:1::808:808", "private"), ("fd00:ec2::254", "cloud_metadata"),
    # Teredo and the rest of 2001::/23 (IETF protocol assignments)
    ("2001::1", "reserved"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"), ("2001:2::1", "reserved"),
    ("2001:1ff::1", "reserved"),
    # outside 2000::/3: unallocated
    ("4000::1", "reserved"), ("1::1", "reserved"), ("e000::1", "reserved"),
    # IPv4-mapped ::ffff:a.b.c.d: judged by the IPv4 address
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:7f00:1", "loopback"), ("::ffff:10.1.1.1", "private"),
    ("::ffff:169.254.169.254", "cloud_metadata"), ("::ffff:0.0.0.0", "unspecified"),
    ("::ffff:192.168.0.1", "private"),
    # IPv4-compatible ::a.b.c.d (deprecated): the IPv4 inside, and never public itself
    ("::7f00:1", "loopback"), ("::127.0.0.1", "loopback"), ("::10.0.0.1", "private"), ("::a9fe:a9fe", "cloud_metadata"),
    ("::8.8.8.8", "reserved"), ("::0.0.0.2", "reserved"),
    # SIIT ::ffff:0:a.b.c.d
    ("::ffff:0:7f00:1", "loopback"), ("::ffff:0:a00:1", "private"), ("::ffff:0:808:808", "reserved"),
    # NAT64 well-known prefix 64:ff9b::/96
    ("64:ff9b::7f00:1", "loopback"), ("64:ff9b::10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "cloud_metadata"),
    ("64:ff9b::c0a8:1", "private"), ("64:ff9b::808:808", None),
    # 6to4 2002::/16 (the IPv4 address in bits 16..48)
    ("2002:7f00:1::", "loopback"), ("2002:7f00:1::1", "loopback"), ("2002:a00:1::1", "private"),
    ("2002:a9fe:a9fe::", "cloud_metadata"), ("2002:c0a8:101::1", "private"), ("2002:808:808::1", None),
    # public unicast
    ("8.8.8.8", None), ("1.1.1.1", None), ("93.184.216.34", None), ("100.63.255.255", None),
    ("100.128.0.1", None), ("172.32.0.1", None), ("198.20.0.1", None), ("223.255.255.254", None),
    ("2606:4700:4700::1111", None), ("2a00:1450:4001::1", None), ("::ffff:8.8.8.8", None),
])
def test_classification_of_literal_addresses(address: str, category: str | None) -> None:
    assert classify_address(address) == category


@pytest.mark.parametrize("address, allowed", [
    ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True),
    # wrappers around loopback leave the machine (a NAT64 gateway, a 6to4 relay, an IPv4-compatible route)
    ("::7f00:1", False), ("::ffff:0:7f00:1", False), ("64:ff9b::7f00:1", False), ("2002:7f00:1::", False),
    ("::ffff:127.0.0.1", False), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("fe80::1", False),
])
def test_allow_loopback_allows_exactly_127_8_and_ipv6_loopback(address: str, allowed: bool) -> None:
    assert (refused_category(address, LOOPBACK_OK) is None) == allowed
    assert refused_category(address, AddressPolicy()) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::7f00:1]", "[64:ff9b::7f00:1]",
                                  "[2002:7f00:1::]", "[::ffff:0:7f00:1]"])
def test_check_url_refuses_loopback_literals_and_their_wrappers(host: str) -> None:
    assert check_url(f"http://{host}:8080/a.jpg", AddressPolicy()) == "blocked_loopback"
    if host != "127.0.0.1":
        assert check_url(f"http://{host}:8080/a.jpg", LOOPBACK_OK) == "blocked_loopback"


def test_loopback_urls_are_refused_by_default_and_the_server_sees_nothing(tmp_path) -> None:
    with ImageServer() as server, only_loopback_connections():
        image = jpeg(photo("astronaut", 64, 64))
        urls = [server.add("/a.jpg", image), server.add("/b.jpg", image).replace("127.0.0.1", "localhost"),
                server.add("/c.jpg", image).replace("127.0.0.1", "[::ffff:127.0.0.1]")]
        results = download(urls, DownloadOptions(thread_count=2, timeout=2), Spill(tmp_path))
        assert [r.reason for r in results] == ["blocked_loopback"] * 3
        assert not any(r.stored for r in results)
        assert server.requests == []


def test_img2dataset_download_function_goes_through_the_guard() -> None:
    """img2dataset fetches with its own `download_image`; if an upgrade stops using urllib's installed opener,
    this request reaches the server and the test fails."""
    from img2dataset.downloader import download_image

    with ImageServer() as server, only_loopback_connections():
        url = server.add("/a.jpg", b"image bytes")
        with guarded_urlopen(AddressPolicy()):
            key, stream, error = download_image((7, url), 2, "vlforge", None)
        assert (key, stream) == (7, None)
        assert "vlforge-refused:blocked_loopback" in error
        assert server.requests == []
        with guarded_urlopen(LOOPBACK_OK):  # and the same call does fetch when loopback is allowed
            _, stream, error = download_image((8, url), 2, "vlforge", None)
        assert error is None and stream.read() == b"image bytes"


def test_img2dataset_downloader_goes_through_the_guard_for_host_names(tmp_path) -> None:
    """A host name passes the literal check, so the refusal can only come from the connection inside img2dataset."""
    with ImageServer() as server, only_loopback_connections():
        url = server.add("/a.jpg", jpeg(photo("astronaut", 64, 64))).replace("127.0.0.1", "localhost")
        assert check_url(url, AddressPolicy()) is None
        [result] = download([url], DownloadOptions(thread_count=1, timeout=2), Spill(tmp_path))
        assert result.reason == "blocked_loopback" and "resolves to" in result.error
        assert server.requests == []


class TrickleServer:
    """A 127.0.0.1 server that answers every connection one byte per `interval` seconds (headers, then body)."""

    def __init__(self, interval: float = 1.0, body_bytes: int = 100) -> None:
        self.interval = interval
        self.response = (f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {body_bytes}\r\n\r\n"
                         .encode() + b"x" * body_bytes)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.connections = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/slow.jpg") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for i in range(len(self.response)):
                if self.stop.wait(self.interval if i else 0):
                    return
                try:
                    conn.sendall(self.response[i:i + 1])
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _fetch(opener: urllib.request.OpenerDirector, url: str) -> bytes:
    with opener.open(url, timeout=3) as response:  # 3 s per socket read: longer than any cap below
        return response.read()


@pytest.fixture
def trickle():
    server = TrickleServer()
    yield server
    server.close()


def test_a_download_that_trickles_stops_at_its_wall_clock_cap(trickle: TrickleServer) -> None:
    """One byte a second never trips the 3 s socket timeout; the 1.5 s deadline stops it anyway."""
    opener = build_guarded_opener(AddressPolicy(allow_loopback=True, max_seconds=1.5))
    start = time.monotonic()
    with only_loopback_connections(), pytest.raises((DeadlineExceeded, urllib.error.URLError)) as info:
        _fetch(opener, trickle.url())
    assert "vlforge-refused:too_slow" in str(info.value)
    assert 1.4 < time.monotonic() - start < 3.0


def test_the_cap_covers_redirect_hops_and_the_body_together(trickle: TrickleServer) -> None:
    with ImageServer() as server, only_loopback_connections():
        server.add("/wait", b"", status=302, headers={"Location": trickle.url()}, delay=0.8)
        opener = build_guarded_opener(AddressPolicy(allow_loopback=True, max_seconds=1.5))
        start = time.monotonic()
        with pytest.raises((DeadlineExceeded, urllib.error.URLError), match="too_slow"):
            _fetch(opener, server.url("/wait"))
        assert time.monotonic() - start < 2.3  # 1.5 s in all, not 0.8 s + 1.5 s
        assert server.requests == ["/wait"] and trickle.connections == 1


def test_download_reports_too_slow_as_the_rows_reason(trickle: TrickleServer, tmp_path) -> None:
    with ImageServer() as server, only_loopback_connections():
        fast = server.add("/a.jpg", jpeg(photo("astronaut", 64, 64)))
        options = DownloadOptions(thread_count=2, timeout=3, allow_loopback=True, max_seconds=1.5)
        start = time.monotonic()
        slow, ok = download([trickle.url(), fast], options, Spill(tmp_path))
    assert slow.reason == "too_slow" and not slow.stored
    assert ok.reason is None and ok.read() == jpeg(photo("astronaut", 64, 64))
    assert time.monotonic() - start < 4.0


def test_the_unit_deadline_stops_the_running_download_and_refuses_the_rest(trickle: TrickleServer, tmp_path) -> None:
    options = DownloadOptions(thread_count=1, timeout=3, allow_loopback=True, max_seconds=None, max_unit_seconds=1.2)
    start = time.monotonic()
    with only_loopback_connections():
        results = download([trickle.url("/1"), trickle.url("/2"), trickle.url("/3")], options, Spill(tmp_path))
    assert [r.reason for r in results] == ["unit_deadline"] * 3
    assert trickle.connections == 1  # the two later downloads were refused without connecting
    assert time.monotonic() - start < 3.5


def test_watchdogs_end_with_their_downloads(tmp_path) -> None:
    """A watchdog thread (and its socket) per download must not outlive it: thousands of 404s would pile up."""
    baseline = threading.active_count()
    with ImageServer() as server, only_loopback_connections():
        image = jpeg(photo("astronaut", 64, 64))
        urls = [server.add(f"/{i}.jpg", image) for i in range(20)] + [server.url(f"/missing{i}") for i in range(20)]
        options = DownloadOptions(thread_count=4, timeout=2, allow_loopback=True, max_seconds=30)
        results = download(urls, options, Spill(tmp_path))
    assert [r.reason for r in results] == [None] * 20 + ["http_404"] * 20
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline
