"""The SSRF guard: address classification without any connection, refusal end to end against 127.0.0.1."""

import socket
import urllib.error
import urllib.request

import pytest
from test_clean_support import ImageServer, only_loopback_connections

from vlforge.sources.netguard import (
    AddressPolicy,
    BlockedAddress,
    ResponseTooLarge,
    build_guarded_opener,
    check_url,
    classify_address,
    guarded_create_connection,
)

LOOPBACK_OK = AddressPolicy(allow_loopback=True)


@pytest.mark.parametrize("address, category", [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"), ("fc00::1", "private"),
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("169.254.1.1", "link_local"), ("fe80::1", "link_local"), ("fe80::1%eth0", "link_local"),
    ("169.254.169.254", "cloud_metadata"), ("169.254.170.2", "cloud_metadata"), ("100.100.100.200", "cloud_metadata"),
    ("192.0.0.192", "cloud_metadata"), ("fd00:ec2::254", "cloud_metadata"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("100.64.0.1", "reserved"), ("240.0.0.1", "reserved"), ("198.18.0.1", "reserved"),
    # IPv6 forms that tunnel to IPv4: judged by where the packets go
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "cloud_metadata"),
    ("64:ff9b::7f00:1", "loopback"), ("64:ff9b::a9fe:a9fe", "cloud_metadata"), ("2002:a00:1::1", "private"),
    ("8.8.8.8", None), ("1.1.1.1", None), ("93.184.216.34", None), ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
])
def test_classify_address(address: str, category: str | None) -> None:
    assert classify_address(address) == category


@pytest.mark.parametrize("url, reason", [
    ("http://10.0.0.1/a.jpg", "blocked_private"),
    ("https://192.168.0.10:8443/a.jpg", "blocked_private"),
    ("http://[::1]/a.jpg", "blocked_loopback"),
    ("http://127.0.0.1:8080/a.jpg", "blocked_loopback"),
    ("http://169.254.169.254/latest/meta-data/", "blocked_cloud_metadata"),
    ("http://[::ffff:a9fe:a9fe]/", "blocked_cloud_metadata"),
    ("http://0.0.0.0:80/", "blocked_unspecified"),
    ("file:///etc/passwd", "bad_url_scheme"),
    ("ftp://example.com/a.jpg", "bad_url_scheme"),
    ("gopher://example.com/", "bad_url_scheme"),
    ("data:image/png;base64,AAAA", "bad_url_scheme"),
    ("http:///a.jpg", "bad_url"),
    ("http://example.com:99999/a.jpg", "bad_url"),
    ("http://[::1/a.jpg", "bad_url"),
    # host names and odd literals are resolved and checked at connect time, never here
    ("http://example.com/a.jpg", None),
    ("http://127.1/a.jpg", None),
    ("http://2130706433/a.jpg", None),
])
def test_check_url_default_policy(url: str, reason: str | None) -> None:
    assert check_url(url, AddressPolicy()) == reason


def test_allow_loopback_allows_only_loopback() -> None:
    assert check_url("http://127.0.0.1:8080/a.jpg", LOOPBACK_OK) is None
    assert check_url("http://[::1]:8080/a.jpg", LOOPBACK_OK) is None
    assert check_url("http://0.0.0.0:8080/a.jpg", LOOPBACK_OK) == "blocked_unspecified"
    assert check_url("http://10.0.0.1/a.jpg", LOOPBACK_OK) == "blocked_private"
    assert check_url("http://169.254.169.254/", LOOPBACK_OK) == "blocked_cloud_metadata"


@pytest.fixture
def listener():
    """A listening socket on 127.0.0.1 that records whether anything ever connected."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def _accepted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "2130706433"])
def test_connection_guard_refuses_loopback_before_connecting(listener: socket.socket, host: str) -> None:
    port = listener.getsockname()[1]
    with only_loopback_connections(), pytest.raises(BlockedAddress) as info:
        guarded_create_connection((host, port), timeout=2, policy=AddressPolicy())
    assert info.value.category == "loopback"
    assert not _accepted(listener)


def test_connection_guard_connects_to_the_checked_address(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with only_loopback_connections():
        sock = guarded_create_connection(("localhost", port), timeout=2, policy=LOOPBACK_OK)
    try:
        assert sock.getpeername()[0] in ("127.0.0.1", "::1")
    finally:
        sock.close()


def _open(opener: urllib.request.OpenerDirector, url: str) -> bytes:
    with opener.open(url, timeout=5) as response:
        return response.read()


def test_opener_refuses_loopback_and_the_server_sees_nothing() -> None:
    with ImageServer() as server, only_loopback_connections():
        url = server.add("/a.jpg", b"image bytes")
        with pytest.raises(urllib.error.URLError, match="vlforge-refused:blocked_loopback"):
            _open(build_guarded_opener(AddressPolicy()), url)
        assert server.requests == []


def test_redirect_to_a_blocked_address_is_refused_at_the_hop() -> None:
    with ImageServer() as server, only_loopback_connections():
        url = server.redirect("/r", "http://169.254.169.254/latest/meta-data/")
        with pytest.raises(urllib.error.URLError, match="blocked_cloud_metadata"):
            _open(build_guarded_opener(LOOPBACK_OK), url)
        assert server.requests == ["/r"]


@pytest.mark.parametrize("target, error", [
    ("file:///etc/passwd", "not allowed"),
    ("ftp://127.0.0.1/a.jpg", "unknown url type"),
    ("http://10.0.0.1/a.jpg", "blocked_private"),
])
def test_redirect_to_another_scheme_or_network_is_refused(target: str, error: str) -> None:
    with ImageServer() as server, only_loopback_connections():
        url = server.redirect("/r", target)
        with pytest.raises(urllib.error.URLError, match=error):
            _open(build_guarded_opener(LOOPBACK_OK), url)
        assert server.requests == ["/r"]


def test_redirects_are_followed_up_to_the_limit() -> None:
    with ImageServer() as server, only_loopback_connections():
        server.add("/a.jpg", b"payload")
        url = server.redirect("/r1", server.url("/a.jpg"))
        assert _open(build_guarded_opener(LOOPBACK_OK), url) == b"payload"
        with pytest.raises(urllib.error.HTTPError) as info:
            _open(build_guarded_opener(AddressPolicy(allow_loopback=True, max_redirects=0)), url)
        assert info.value.code == 302
        loop = server.redirect("/loop", server.url("/loop"))
        with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
            _open(build_guarded_opener(LOOPBACK_OK), loop)


def test_opener_has_no_file_or_ftp_handler(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    with pytest.raises(urllib.error.URLError, match="unknown url type"):
        _open(build_guarded_opener(LOOPBACK_OK), secret.as_uri())


@pytest.mark.parametrize("content_length", [True, False])
def test_response_size_is_capped(content_length: bool) -> None:
    with ImageServer() as server, only_loopback_connections():
        url = server.add("/big", b"x" * 5000, content_length=content_length)
        server.add("/small", b"y" * 1000)
        opener = build_guarded_opener(AddressPolicy(allow_loopback=True, max_bytes=1000))
        assert _open(opener, server.url("/small")) == b"y" * 1000
        with pytest.raises(ResponseTooLarge):
            _open(opener, url)
