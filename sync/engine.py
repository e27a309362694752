"""The device's sync engine: push local changes, pull the server's, keep doing it.

It runs in the app's event loop: an APScheduler job every `interval` seconds (one job id,
`max_instances=1`, `coalesce=True`), a sync right after a local change (leading-edge
debounce: the first change goes at once, a burst is coalesced into one more sync ~300 ms
later), and a sync whenever the server's WebSocket says new changes exist. An unreachable
server is a normal state ("offline"): retries back off exponentially with jitter.
Store calls are blocking database work and run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from sync.credentials import CredentialStore
from sync.protocol import PULL_PAGE_DEFAULT, Digest
from sync.store import Account, SyncStore

if TYPE_CHECKING:
    import httpx
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
else:

    class _Httpx:
        """httpx, imported at its first use: a device that is not signed in never needs it, and
        importing it (~25 ms) would delay the desktop's first page."""

        def __getattr__(self, name: str) -> Any:
            import httpx

            return getattr(httpx, name)

    httpx = _Httpx()

log = logging.getLogger("ferry.sync")

JOB_ID = "ferry-sync"
DEBOUNCE = 0.3
PUSH_BATCH = 5000
FIRST_PUSH_BATCH = 1000
REFRESH_MARGIN = 60.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
OFFLINE_STATUSES = {502, 503, 504}
#: the longest a held start (see `SyncEngine.start`) waits for `release()`
HOLD_SECONDS = 10.0


class ConnectError(Exception):
    """Signing in failed; `status` is the HTTP status the local API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Offline(Exception):
    pass


class _SyncFailed(Exception):
    pass


@dataclass
class Status:
    state: str = "signed_out"  # signed_out | idle | syncing | offline | error
    server_url: str | None = None
    username: str | None = None
    pending_changes: int = 0
    last_synced_at: str | None = None
    last_error: str | None = None
    progress: dict[str, int] | None = None
    full_resyncs: int = 0
    #: the last completed round: changes pushed and pulled, and how long it took
    last_round: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _FirstPage:
    """The first page of a pull, answered with a push: the cursor it was asked after, and the
    push's acknowledgement (its changes, the server's verdicts), applied with the page."""

    after: int
    page: dict[str, Any]
    seqs: list[int]
    resolved: list[dict[str, Any]]


@dataclass
class _Session:
    account: Account
    http: httpx.AsyncClient
    refresh_token: str
    access_token: str | None = None
    access_expires: float = 0.0  # monotonic seconds
    ws_task: asyncio.Task[None] | None = None
    rounds: int = 0
    diverged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: one refresh at a time: a refresh token is good for one use (see `_access_token`)
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SyncEngine:
    def __init__(
        self,
        store: SyncStore,
        credentials: CredentialStore,
        interval: float = 30.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.interval = interval
        self.on_status = on_status
        self.timeout = timeout
        self.status = Status()
        self._session: _Session | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()
        self._again = False
        self._failures = 0
        self._retry_at = 0.0
        self._retry_handle: asyncio.TimerHandle | None = None
        self._debounce_handle: asyncio.TimerHandle | None = None
        self._last_local = -1e9
        self._tasks: set[asyncio.Task[Any]] = set()
        self._release: asyncio.Event | None = None
        self._starting: asyncio.Task[None] | None = None
        #: the last rounds' figures (benchmarks and diagnostics read them)
        self.history: deque[dict[str, float]] = deque(maxlen=50)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, held: bool = False) -> None:
        """Start syncing (when signed in). `held`: read only the account now, for the status;
        the scheduler, the stored credentials (probing the OS keyring takes a noticeable moment)
        and the first sync wait for `release()`, at most `HOLD_SECONDS`. The desktop holds them
        until its first page is on screen, so that the page does not wait for them."""
        self._loop = asyncio.get_running_loop()
        account = await asyncio.to_thread(self.store.account)
        if account is not None:
            self.status.server_url, self.status.username = account.server_url, account.username
        if not held:
            await self._resume(account)
            return
        if account is not None:
            self.status.state = "idle"  # signed in, as far as is known until the token is read
        self._release = asyncio.Event()
        self._starting = self._spawn(self._resume_when_released(account))

    def release(self) -> None:
        """Let a held start go on now. From any thread."""
        loop, event = self._loop, self._release
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    async def _resume_when_released(self, account: Account | None) -> None:
        assert self._release is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), HOLD_SECONDS)
        await self._resume(account)

    async def _resume(self, account: Account | None) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._scheduler = AsyncIOScheduler(event_loop=self._loop, timezone=UTC)
        self._scheduler.start()
        token = await asyncio.to_thread(self.credentials.load) if account is not None else None
        if account is not None and token:
            await self._begin(account, token)
        else:
            if account is not None:
                self.status.state = "signed_out"  # the account is known, its token is not
            await self._publish()

    async def _started(self) -> None:
        """Signing in or out needs a started engine: a held start goes on now, and is awaited."""
        if self._release is not None:
            self._release.set()
        if self._starting is not None and not self._starting.done():
            await asyncio.shield(self._starting)

    async def stop(self, final_sync_timeout: float = 3.0) -> None:
        """Stop scheduling, try one last bounded sync, close connections."""
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        session = self._session
        if session is not None:
            with contextlib.suppress(Exception):
                if await asyncio.to_thread(self.store.pending_count):
                    await asyncio.wait_for(self._sync_round(session), final_sync_timeout)
            await self._end(session)
        for handle in (self._retry_handle, self._debounce_handle):
            if handle is not None:
                handle.cancel()
        for task in list(self._tasks):
            task.cancel()

    # -- account ---------------------------------------------------------------------------

    async def connect(self, server_url: str, username: str, password: str, register: bool = False) -> Status:
        await self._started()
        server_url = server_url.rstrip("/")
        http = self._client(server_url)
        try:
            if register:
                r = await http.post("/api/auth/register", json={"username": username, "password": password})
                if r.status_code == 409:
                    raise ConnectError(409, "that username is taken on this server")
                if r.status_code == 422:
                    raise ConnectError(422, _first_error(r) or "the server refused that username or password")
                if r.status_code != 201:
                    raise ConnectError(502, f"registration failed: HTTP {r.status_code}")
            r = await http.post("/api/auth/token", data={"username": username, "password": password})
            if r.status_code in (401, 422):
                raise ConnectError(401, "wrong username or password")
            if r.status_code == 429:
                raise ConnectError(429, "too many failed sign-ins; try again later")
            if r.status_code != 200:
                raise ConnectError(502, f"sign-in failed: HTTP {r.status_code}")
            tokens = r.json()
            me = await http.get("/api/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            if me.status_code != 200:
                raise ConnectError(502, f"sign-in failed: HTTP {me.status_code}")
        except httpx.HTTPError as exc:
            await http.aclose()
            raise ConnectError(502, f"cannot reach {server_url}: {type(exc).__name__}") from None
        except ConnectError:
            await http.aclose()
            raise
        if self._session is not None:
            await self._end(self._session)
        account = Account(server_url, me.json()["username"], me.json()["id"])
        await asyncio.to_thread(self.store.sign_in, account)
        await asyncio.to_thread(self.credentials.save, tokens["refresh_token"])
        log.info("signed in to %s as %s", server_url, account.username)
        await self._begin(account, tokens["refresh_token"], http, tokens)
        return self.status

    async def disconnect(self) -> Status:
        await self._started()
        if self._session is not None:
            await self._end(self._session)
        await asyncio.to_thread(self.credentials.clear)
        await asyncio.to_thread(self.store.sign_out)
        self.status = Status(pending_changes=await asyncio.to_thread(self.store.pending_count))
        await self._publish()
        return self.status

    async def _begin(
        self,
        account: Account,
        refresh_token: str,
        http: httpx.AsyncClient | None = None,
        tokens: dict[str, Any] | None = None,
    ) -> None:
        session = _Session(account, http or self._client(account.server_url), refresh_token)
        if tokens is not None:
            session.access_token = tokens["access_token"]
            session.access_expires = time.monotonic() + float(tokens.get("expires_in", 900))
        self._session = session
        self._failures = 0
        self._retry_at = 0.0
        self.status = Status(state="idle", server_url=account.server_url, username=account.username)
        if self._scheduler is not None:
            self._scheduler.add_job(
                self._scheduled,
                "interval",
                seconds=self.interval,
                id=JOB_ID,
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )
        session.ws_task = self._spawn(self._listen(session))
        self.trigger()

    async def _end(self, session: _Session) -> None:
        if self._scheduler is not None and self._scheduler.get_job(JOB_ID):
            self._scheduler.remove_job(JOB_ID)
        if session.ws_task is not None:
            session.ws_task.cancel()
        self._session = None
        await session.http.aclose()

    def _client(self, server_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=server_url,
            timeout=httpx.Timeout(self.timeout, connect=min(3.0, self.timeout)),
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=60),
        )

    # -- triggers --------------------------------------------------------------------------

    def trigger(self) -> None:
        """Sync as soon as possible (from the event loop's thread)."""
        if self._session is None or self._loop is None:
            return
        self._spawn(self.run(manual=False))

    def _retry(self) -> None:
        # The back-off is over. (uvloop timers may fire a little before `_retry_at`, so the
        # round must not compare the clock again: it would skip, and no timer would be left.)
        self._retry_handle = None
        self._retry_at = 0.0
        self.trigger()

    def request_now(self) -> None:
        """A person asked to sync now: skip any back-off wait."""
        self._retry_at = 0.0
        self.trigger()

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        if self._scheduler is not None and self._scheduler.get_job(JOB_ID):
            self._scheduler.reschedule_job(JOB_ID, trigger="interval", seconds=seconds)

    def notify_local_change(self) -> None:
        """Called from any thread after a local write."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_local_change)

    def _on_local_change(self) -> None:
        assert self._loop is not None
        self.status.pending_changes += 1
        # The badge shows what waits, even while the server is away and no round runs.
        self._spawn(self._publish())
        if self._debounce_handle is not None:
            return  # a coalesced sync is already on its way
        since = self._loop.time() - self._last_local
        if since >= DEBOUNCE:
            self._last_local = self._loop.time()
            self.trigger()
        else:
            self._debounce_handle = self._loop.call_later(DEBOUNCE - since, self._debounced)

    def _debounced(self) -> None:
        assert self._loop is not None
        self._debounce_handle = None
        self._last_local = self._loop.time()
        self.trigger()

    async def _scheduled(self) -> None:
        await self.run(manual=False)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the sync round --------------------------------------------------------------------

    async def run(self, manual: bool = True) -> Status:
        """One sync (more if something asked for one while it ran)."""
        session = self._session
        if session is None:
            return self.status
        if self._lock.locked() and not manual:
            self._again = True
            return self.status
        if not manual and self._loop is not None and self._loop.time() < self._retry_at:
            return self.status  # backing off; the retry timer will call again
        async with self._lock:
            for _ in range(5):
                self._again = False
                await self._guarded_round(session)
                if not self._again or self._session is not session or self.status.state != "idle":
                    break
        return self.status

    async def _guarded_round(self, session: _Session) -> None:
        self.status.state = "syncing"
        self.status.progress = None
        await self._publish()
        try:
            await self._sync_round(session)
        except _Offline as exc:
            self._back_off(str(exc))
        except _SyncFailed as exc:
            self.status.state = "error"
            self.status.last_error = str(exc)
            log.error("sync failed: %s", exc)
        except Exception as exc:  # keep the engine alive whatever happens; say what it was
            self.status.state = "error"
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("sync failed unexpectedly")
        else:
            self._failures = 0
            self._retry_at = 0.0
            self.status.state = "idle"
            self.status.last_error = None
            self.status.last_synced_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.status.progress = None
        self.status.pending_changes = await asyncio.to_thread(self.store.pending_count)
        await self._publish()

    def _back_off(self, reason: str) -> None:
        assert self._loop is not None
        self._failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self._failures - 1)) * random.uniform(0.5, 1.5)
        self._retry_at = self._loop.time() + delay
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        self._retry_handle = self._loop.call_later(delay, self._retry)
        self.status.state = "offline"
        self.status.last_error = reason
        log.info("server unreachable (%s); retrying in %.1f s", reason, delay)

    async def _sync_round(self, session: _Session) -> None:
        started = time.perf_counter()
        # After a mismatch that a full re-sync could not mend, compare every round, so the
        # error stays visible until the two sides really agree (rule 6).
        check = session.rounds % 10 == 0 or session.diverged
        # The server adds its digest to the pull's last page whenever the log moved (this
        # push included), so a round that moved anything costs no extra request to compare.
        digest = "yes" if check else "changed"
        pushed, acknowledging, first = await self._push(session, digest)
        pulled, remote = await self._pull(session, digest, acknowledging, first)
        session.rounds += 1
        if pushed or pulled or check or remote is not None:
            await self._check_digest(session, remote)
        self.status.last_round = {
            "pushed": pushed,
            "pulled": pulled,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        self.history.append(self.status.last_round)

    async def _push(
        self, session: _Session, digest: str = "no"
    ) -> tuple[int, asyncio.Future[None] | None, _FirstPage | None]:
        """Push pending changes in batches, in order. While the server applies one batch, the
        device reads the next and acknowledges the previous one, so neither side waits idle.
        A batch is acknowledged only after the server answered for it; a retried batch is
        applied once (change ids).

        The last batch asks the server for the first page of the pull that follows (`pull`
        in the push, with `digest`): most rounds are then one request. Returns how many were
        pushed, and either the acknowledgement of the last batch, still running (`_pull` waits
        for it before applying anything: pulled text must meet the acknowledged state), or the
        first page with that acknowledgement, to be applied together."""
        node = self.store.node.encode()
        total = 0
        # The round pushes what was pending when it began (what comes later, the next round
        # does), so the batch that reaches `newest` is known to be the last.
        batch, newest, cursor = await asyncio.to_thread(self._push_start)
        answered: tuple[list[Any], httpx.Response] | None = None
        while batch:
            last = batch[-1].seq >= newest
            body = b'{"node":"' + node + b'","changes":[' + b",".join(p.wire for p in batch) + b"]"
            if last:
                ask = {"after": cursor, "limit": PULL_PAGE_DEFAULT, "digest": digest}
                body += b',"pull":' + orjson.dumps(ask)
            sending = asyncio.ensure_future(self._call(session, "POST", "/api/sync/push", content=body + b"}"))
            try:
                if answered is not None:
                    await self._acknowledge(*answered)
                    answered = None
                following = [] if last else await asyncio.to_thread(self._pending_upto, batch[-1].seq, newest)
                answered = (batch, await sending)
            finally:
                if not sending.done():
                    sending.cancel()
                    with contextlib.suppress(BaseException):
                        await sending
            total += len(batch)
            batch = following
        if answered is None:
            return total, None, None
        result = orjson.loads(answered[1].content)
        seqs, resolved = [p.seq for p in answered[0]], result.get("resolved", [])
        if result.get("pull") is not None:
            # Acknowledged together with that page, in one local transaction (`_pull`).
            return total, None, _FirstPage(cursor, result["pull"], seqs, resolved)
        return total, asyncio.ensure_future(asyncio.to_thread(self.store.acknowledge, seqs, resolved)), None

    def _push_start(self) -> tuple[list[Any], int, int]:
        """The first batch, the newest pending change and the cursor, in one thread hop. The
        first batch is small, so the server has work while the device reads the next."""
        newest = self.store.newest_pending()
        return (self.store.pending(FIRST_PUSH_BATCH, 0) if newest else []), newest, self.store.cursor()

    def _pending_upto(self, after: int, newest: int) -> list[Any]:
        return [p for p in self.store.pending(PUSH_BATCH, after) if p.seq <= newest]

    async def _acknowledge(self, batch: list[Any], answer: httpx.Response) -> None:
        result = orjson.loads(answer.content)
        await asyncio.to_thread(self.store.acknowledge, [p.seq for p in batch], result.get("resolved", []))

    async def _pull(
        self,
        session: _Session,
        digest: str = "no",
        acknowledging: asyncio.Future[None] | None = None,
        first: _FirstPage | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """Pull pages until the end of the log; returns how many changes arrived and the
        server's digest if its last page carried one (`digest`: see the pull route).

        While a page is being applied, the next one is already being fetched (the server and
        this device work at the same time); the cursor still moves only with each applied
        page, in its transaction. `acknowledging` (the push's last acknowledgement, still
        running) is finished before the first page is applied: applying treats changes not
        yet acknowledged as pending, and the digest check after the pull reads what it wrote.
        `first`: the first page, which came with the push's answer, applied in one local
        transaction with the push's acknowledgement."""
        received = 0

        async def fetch(after: int) -> dict[str, Any]:
            # Past the first page the log has moved: "changed" would always say yes.
            wanted = "yes" if digest == "changed" and after != start else digest
            r = await self._call(
                session,
                "GET",
                "/api/sync/pull",
                params={
                    "after": after,
                    "limit": PULL_PAGE_DEFAULT,
                    "exclude_node": self.store.node,
                    "digest": wanted,
                },
            )
            return orjson.loads(r.content)

        ahead: asyncio.Task[dict[str, Any]] | None = None
        pending_first: asyncio.Future[dict[str, Any]] | None = None
        try:
            # (The acknowledgement does not move the cursor.)
            if first is not None:
                start = cursor = first.after
                page = first.page
            else:
                start = cursor = await asyncio.to_thread(self.store.cursor)
                pending_first = asyncio.ensure_future(fetch(cursor))
                if acknowledging is not None:
                    await acknowledging
                page, pending_first = await pending_first, None
            while True:
                if page["more"]:
                    ahead = asyncio.ensure_future(fetch(page["next"]))
                if first is not None:
                    await asyncio.to_thread(
                        self.store.acknowledge_and_apply, first.seqs, first.resolved, page["changes"], page["next"]
                    )
                    first = None
                elif page["changes"] or page["next"] != cursor:
                    await asyncio.to_thread(self.store.apply_page, page["changes"], page["next"])
                received += len(page["changes"])
                cursor = page["next"]
                if ahead is None:
                    return received, page.get("digest")
                self.status.progress = {"done": cursor - start, "total": max(page["last_seq"] - start, 1)}
                await self._publish()
                page, ahead = await ahead, None
        finally:
            for unfinished in (pending_first, ahead):
                if unfinished is not None:
                    unfinished.cancel()
                    with contextlib.suppress(BaseException):
                        await unfinished
            if acknowledging is not None and not acknowledging.done():
                # Failing before waiting for it: let it finish (its error, if any, is second
                # to the one already on its way).
                with contextlib.suppress(Exception):
                    await acknowledging

    async def _check_digest(self, session: _Session, remote: dict[str, Any] | None = None) -> None:
        if await self._digests_agree(session, remote):
            session.diverged = False
            return
        if session.diverged:
            raise _SyncFailed("this device and the server still disagree after a full re-sync")
        log.warning("digest mismatch with %s: full re-sync", session.account.server_url)
        self.status.full_resyncs += 1
        await asyncio.to_thread(self.store.reset_cursor)
        _, remote = await self._pull(session, "yes")
        if await self._digests_agree(session, remote):
            return
        queued = await asyncio.to_thread(self.store.requeue_all)
        log.warning("digest still differs after a full pull: re-sent %d records", queued)
        _, acknowledging, first = await self._push(session, "yes")
        _, remote = await self._pull(session, "yes", acknowledging, first)
        if not await self._digests_agree(session, remote):
            session.diverged = True
            raise _SyncFailed("this device and the server still disagree after a full re-sync")

    async def _digests_agree(self, session: _Session, remote: dict[str, Any] | None = None) -> bool:
        """Compare with the server's digest: `remote` if a pull just brought one, else asked
        for now."""
        if remote is None:
            remote = orjson.loads((await self._call(session, "GET", "/api/sync/digest")).content)
        cursor, local, pending = await asyncio.to_thread(self._local_digest)
        if remote.get("last_seq", 0) != cursor:
            return True  # the server moved on meanwhile; compare next round
        if pending:
            return True  # local edits in flight; compare next round
        return (local.count, local.sum_a, local.sum_b) == (remote["count"], remote["sum_a"], remote["sum_b"])

    def _local_digest(self) -> tuple[int, Digest, int]:
        """The cursor, the local digest and the count of pending changes, in one thread hop.

        Pending changes are counted after the digest, not before: a local write can land at
        any moment (the engine does not hold the database), and one that landed before the
        digest was read is still pending now. Counting first let such a write into the local
        digest and turned an ordinary edit into a "mismatch" and a full re-sync."""
        cursor = self.store.cursor()
        local = self.store.digest()
        return cursor, local, self.store.pending_count()

    # -- HTTP ------------------------------------------------------------------------------

    async def _access_token(self, session: _Session, force: bool = False) -> str:
        if not force and _fresh(session):
            assert session.access_token is not None
            return session.access_token
        stale = session.access_token
        async with session.refresh_lock:
            # The WebSocket listener and a sync round both ask for a token when a session
            # starts without one (an app restart). Refresh tokens rotate and a reused one
            # revokes the whole sign-in, so the second caller must wait and take the token
            # the first one got, never send the same refresh token again.
            if session.access_token != stale and _fresh(session):
                assert session.access_token is not None
                return session.access_token
            return await self._refresh(session)

    async def _refresh(self, session: _Session) -> str:
        try:
            r = await session.http.post("/api/auth/refresh", json={"refresh_token": session.refresh_token})
        except httpx.TransportError as exc:
            raise _Offline(type(exc).__name__) from None
        if r.status_code in OFFLINE_STATUSES:
            raise _Offline(f"HTTP {r.status_code}")
        if r.status_code != 200:
            raise _SyncFailed("the server no longer accepts this device's sign-in; sign in again")
        tokens = r.json()
        session.refresh_token = tokens["refresh_token"]
        await asyncio.to_thread(self.credentials.save, session.refresh_token)
        session.access_token = tokens["access_token"]
        session.access_expires = time.monotonic() + float(tokens.get("expires_in", 900))
        return session.access_token

    async def _call(self, session: _Session, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Content-Type": "application/json"} if "content" in kwargs else {}
        for attempt in range(2):
            token = await self._access_token(session, force=attempt > 0)
            try:
                r = await session.http.request(
                    method, path, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
                )
            except httpx.TransportError as exc:
                raise _Offline(type(exc).__name__) from None
            if r.status_code == 401 and attempt == 0:
                continue
            if r.status_code in OFFLINE_STATUSES:
                raise _Offline(f"HTTP {r.status_code}")
            if r.status_code >= 400:
                raise _SyncFailed(f"{method} {path}: HTTP {r.status_code}: {_first_error(r) or r.text[:200]}")
            return r
        raise _SyncFailed("the server refused this device's sign-in; sign in again")

    # -- server notifications --------------------------------------------------------------

    async def _listen(self, session: _Session) -> None:
        """Hold a WebSocket to the server and sync whenever it says something changed."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        url = session.account.server_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
        delay = 1.0
        while self._session is session:
            try:
                token = await self._access_token(session)
                async with connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=5,
                    ping_interval=20,
                    ping_timeout=20,
                    max_size=2**20,
                ) as ws:
                    delay = 1.0
                    self.trigger()  # catch up on anything missed while disconnected
                    async for message in ws:
                        if not self._own_push(message):
                            self.trigger()
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, _Offline, _SyncFailed, TimeoutError):
                pass
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 60.0)

    def _own_push(self, message: str | bytes) -> bool:
        """Whether a server notification only reports this device's own push."""
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
        data = event.get("data") if isinstance(event, dict) else None
        return isinstance(data, dict) and event.get("type") == "sync.changes" and data.get("node") == self.store.node

    async def _publish(self) -> None:
        if self.on_status is not None:
            self.on_status(self.status.as_dict())


def _fresh(session: _Session) -> bool:
    return bool(session.access_token) and time.monotonic() < session.access_expires - REFRESH_MARGIN


def _first_error(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return body["message"]
        if isinstance(body.get("detail"), str):
            return body["detail"]
    return None
