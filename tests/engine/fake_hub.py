"""A stand-in for the Hugging Face hub on 127.0.0.1, speaking the parts of its protocol huggingface_hub uses.

Two servers, as on the real hub: the hub itself answers HEAD/GET on /{repo}/resolve/{revision}/{path} with
X-Repo-Commit, ETag (the git blob sha1) and, for LFS files (weights), a 302 redirect to a CDN on another
origin with X-Linked-Etag (the sha256) and X-Linked-Size; /api/models/{repo}/revision/{rev} and
/api/models/{repo}/tree/{commit} list a repo for snapshot_download; errors carry X-Error-Code as the hub's do
(RepoNotFound, EntryNotFound, RevisionNotFound, GatedRepo). The CDN serves the bytes with Range support and
counts what it sent, and can be told to cut a connection, fail with a status, or corrupt a byte.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt")


def git_blob_sha1(data: bytes) -> str:
    """The hub's ETag for a file kept in git (not LFS)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """A repo's files at one commit; gated repos answer 401 GatedRepo."""

    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False


@dataclass
class Faults:
    """What the CDN does wrong next: cut a connection after some bytes, answer with a status, flip a byte."""

    cut_after: int | None = None  # bytes of the next GET's body sent before the connection is dropped
    statuses: list[int] = field(default_factory=list)  # statuses for the next GETs (after a pending cut), one each
    corrupt: bool = False  # flip the first byte of every file sent (by the CDN or, for small files, the hub)
    ignore_range: bool = False  # answer Range requests with the whole file (200)
    hold_after: int | None = None  # bytes of the next GET's body sent before it waits for FakeHub.release


class FakeHub:
    """The hub and its CDN, each a threaded HTTP server on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.faults = Faults()
        self.served: dict[str, int] = {}  # file path -> body bytes the CDN sent
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets a GET held by Faults.hold_after go on
        self.hub = _Server(("127.0.0.1", 0), _handler(self, cdn=False))
        self.cdn = _Server(("127.0.0.1", 0), _handler(self, cdn=True))
        self.hub.daemon_threads = self.cdn.daemon_threads = True

    @property
    def url(self) -> str:
        """The hub's address, for huggingface_hub.constants.ENDPOINT."""
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        """The CDN's address (another origin, so huggingface_hub does not follow the redirect on HEAD)."""
        return f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kwargs) -> Repo:
        """Serve files under repo_id."""
        self.repos[repo_id] = Repo(dict(files), **kwargs)
        return self.repos[repo_id]

    def add_folder(self, repo_id: str, folder: Path, **kwargs) -> Repo:
        """Serve every file of a folder (a saved diffusers model) under repo_id."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, files, **kwargs)

    def ranges(self, path_suffix: str) -> list[str | None]:
        """The Range headers of the CDN GETs for a file, in order."""
        return [r for m, p, r in self.requests if m == "GET" and p.startswith("/cdn/") and p.endswith(path_suffix)]

    def __enter__(self) -> FakeHub:  # noqa: PYI034 - Python 3.10 has no typing.Self
        for server in (self.hub, self.cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()

    # -- lookups --------------------------------------------------------------------------------
    def lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def find(self, repo_id: str, sha: str) -> tuple[str, bytes] | None:
        repo = self.repos.get(repo_id)
        for path, data in (repo.files.items() if repo else ()):
            if hashlib.sha256(data).hexdigest() == sha:
                return path, data
        return None


class _Server(ThreadingHTTPServer):
    """A threaded server that says nothing when a client hangs up (a cancelled download does)."""

    def handle_error(self, request, client_address) -> None:
        pass


def _handler(hub: FakeHub, cdn: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        def _route(self, method: str) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub.lock:
                hub.requests.append((method, path, self.headers.get("Range")))
            if cdn:
                return self._cdn(method, path)
            if path.startswith("/api/models/"):
                return self._api(path[len("/api/models/"):])
            if "/resolve/" in path:
                return self._resolve(method, path.lstrip("/"))
            self._reply(404, b"", {})

        def _reply(self, status: int, body: bytes, headers: dict, send_body: bool = True) -> None:
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if send_body and body:
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str = "", extra: dict | None = None) -> None:
            body = json.dumps({"error": message or code}).encode()
            headers = {"X-Error-Code": code, "Content-Type": "application/json", **(extra or {})}
            if message:
                headers["X-Error-Message"] = message
            self._reply(status, body, headers)

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            elif repo.gated:
                self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. Please log in.")
                return None
            return repo

        def _resolve(self, method: str, path: str) -> None:
            repo_part, _, rest = path.partition("/resolve/")
            revision, _, filename = rest.partition("/")
            repo = self._repo(repo_part)
            if repo is None:
                return
            if revision not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            if filename not in repo.files:
                return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.commit})
            data = repo.files[filename]
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{git_blob_sha1(data)}"'}
            if hub.lfs(filename):
                sha = hashlib.sha256(data).hexdigest()
                headers.update({
                    "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                    "Location": f"{hub.cdn_url}/cdn/{repo_part}/{sha}/{filename}",
                })
                return self._reply(302, b"", headers)
            if hub.faults.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self._reply(200, data, headers, send_body=method == "GET")

        def _api(self, rest: str) -> None:
            if "/revision/" in rest:
                repo_id, _, revision = rest.partition("/revision/")
                repo = self._repo(repo_id)
                if repo is None:
                    return
                if revision not in ("main", repo.commit):
                    return self._error(404, "RevisionNotFound", "Invalid rev id")
                body = {"id": repo_id, "sha": repo.commit, "siblings": [{"rfilename": p} for p in repo.files]}
                return self._reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
            if "/tree/" in rest:
                repo_id, _, _revision = rest.partition("/tree/")
                repo = self._repo(repo_id)
                if repo is None:
                    return
                tree = []
                for p, data in repo.files.items():
                    item = {"type": "file", "path": p, "size": len(data), "oid": git_blob_sha1(data)}
                    if hub.lfs(p):
                        item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    tree.append(item)
                return self._reply(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
            self._reply(404, b"", {})

        def _cdn(self, method: str, path: str) -> None:
            # /cdn/{repo}/{sha256}/{filename}
            parts = path.split("/")
            repo_id, sha = "/".join(parts[2:4]), parts[4] if len(parts) > 4 else ""
            found = hub.find(repo_id, sha)
            if found is None:
                return self._reply(404, b"", {})
            filename, data = found
            with hub.lock:
                # a pending cut comes first; the statuses answer the GETs after it
                pending = method == "GET" and hub.faults.statuses and hub.faults.cut_after is None
                status = hub.faults.statuses.pop(0) if pending else None
            if status is not None:
                return self._reply(status, b"error", {})
            if hub.faults.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start, code, headers = 0, 200, {"Accept-Ranges": "bytes", "ETag": f'"{sha}"'}
            wanted = self.headers.get("Range")
            if wanted and not hub.faults.ignore_range:
                start = int(wanted.split("=")[1].split("-")[0])
                if start >= len(data):
                    return self._reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                code = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            headers["Content-Length"] = str(len(body))
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if method != "GET":
                return
            with hub.lock:
                cut, hub.faults.cut_after = hub.faults.cut_after, None
                hold, hub.faults.hold_after = hub.faults.hold_after, None
            sent = body if cut is None else body[:cut]
            if hold is not None:  # part now, the rest once the test says so
                self.wfile.write(sent[:hold])
                self.wfile.flush()
                hub.release.wait(30)
                try:
                    self.wfile.write(sent[hold:])
                except OSError:
                    pass  # the client hung up meanwhile (a cancelled download)
            else:
                self.wfile.write(sent)
            self.wfile.flush()
            with hub.lock:
                hub.served[filename] = hub.served.get(filename, 0) + len(sent)
            if cut is not None:  # drop the connection mid-body, as a lost network does
                self.close_connection = True
                self.connection.shutdown(2)

    return Handler


def point_huggingface_hub_at(fake: FakeHub, monkeypatch) -> None:
    """Make huggingface_hub use the stand-in (online, sending no token) for the rest of a test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", fake.url)
    # huggingface_hub builds its file URLs from a template made at import, from HF_ENDPOINT
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def catalog_entry(files: dict[str, bytes], repo: str, kind: str, folder: str, **overrides) -> dict:
    """A catalog entry (as in resources/models.json) for files served under repo; weights get size and sha256."""
    listed = []
    for name, data in files.items():
        weights = name.endswith(".safetensors")
        listed.append({"path": name, "save_as": f"{folder}/{name}" if len(files) > 1 else name,
                       "size": len(data) if weights else None,
                       "sha256": hashlib.sha256(data).hexdigest() if weights else None})
    entry = {"id": folder, "name": f"Tiny {kind}", "kind": kind, "repo": repo, "revision": "main", "files": listed,
             "licence": {"name": "MIT", "url": "https://example.org/licence"}, "good_for": "tests"}
    entry.update(overrides)
    return entry


def write_catalog(path: Path, entries: list[dict]) -> Path:
    """A catalog file holding entries."""
    path.write_text(json.dumps({"format": 1, "models": entries}), encoding="utf-8")
    return path
