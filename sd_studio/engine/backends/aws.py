"""What Bedrock and SageMaker share: boto3 clients from the standard AWS chain, retries with backoff, errors as sentences.

Credentials are never ours to hold: boto3 finds them (environment, ~/.aws, SSO, an instance role) and
they never enter a message, a record or a log. botocore's own retries are off so that one policy,
`Retry`, decides, with a sleep the tests replace.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sd_studio.engine.backends.base import BackendError, EventJob, clean_text
from sd_studio.engine.request import Progress

TRANSIENT = frozenset({
    "ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException", "ServiceUnavailable",
    "InternalServerException", "InternalFailure", "ModelNotReadyException",
})
"""AWS error codes worth another try after a pause; the rest are answered at once."""


@dataclass(frozen=True)
class Retry:
    """How often and how long to try again when AWS says "later": exponential backoff with jitter."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the attempt-th failure (0-based): base x 2^attempt, capped, times 0.5-1.0."""
        return min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + 0.5 * self.jitter())


DEFAULT_RETRY = Retry()


def make_client(service: str, region: str = "", profile: str = "", **options):
    """A boto3 client for `service` from the standard credential chain; BackendError for a missing region or profile.

    `options` reach boto3's client() (tests pass endpoint_url to 127.0.0.1 so nothing can reach AWS).
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound:
        raise BackendError(f"There is no AWS profile {clean_text(profile, 60)!r} in ~/.aws/config.") from None
    if not session.region_name:
        raise BackendError("Choose an AWS region (Settings > Engines, --region, or AWS_REGION), such as us-west-2.")
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=300,
                    user_agent_extra="sd-studio")
    try:
        return session.client(service, config=config, **options)
    except BotoCoreError as exc:
        raise BackendError(f"Cannot set up the AWS {service} client ({clean_text(type(exc).__name__, 40)}).") from None


class LazyClient:
    """A boto3 client made on first use (so a missing region is reported when a job starts), or the one given."""

    def __init__(self, service: str, region: str = "", profile: str = "", client=None, **options) -> None:
        self._service, self._region, self._profile, self._options = service, region, profile, options
        self._client = client
        self._lock = threading.Lock()

    def get(self):
        """The client."""
        with self._lock:
            if self._client is None:
                self._client = make_client(self._service, self._region, self._profile, **self._options)
            return self._client


def region_of(client) -> str:
    """The region a client calls."""
    return getattr(getattr(client, "meta", None), "region_name", "") or ""


def call(invoke: Callable[[], dict], *, service: str, subject: str, retry: Retry,
         cancelled: Callable[[], bool] = lambda: False,
         waiting: Callable[[float, str], None] = lambda seconds, code: None) -> dict:
    """invoke(), tried again after transient errors; a failure becomes one BackendError sentence.

    `service` ("Amazon Bedrock") and `subject` (the model or endpoint) name things in messages;
    `waiting(seconds, code)` hears of each pause; `cancelled()` ends the pauses early.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
        SSOError,
        TokenRetrievalError,
    )

    for attempt in range(retry.attempts):
        try:
            return invoke()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in TRANSIENT or attempt + 1 >= retry.attempts:
                raise client_error(exc, service, subject, attempt + 1) from None
            pause = retry.delay(attempt)
            waiting(pause, code)
            _sleep(pause, retry.sleep, cancelled)
        except (NoCredentialsError, PartialCredentialsError):
            raise BackendError(f"No AWS credentials were found for {service}: run `aws configure` (or `aws sso "
                               "login`), or set AWS_PROFILE.") from None
        except (SSOError, TokenRetrievalError):
            raise BackendError(f"The AWS SSO session for {service} has expired; run `aws sso login`.") from None
        except NoRegionError:
            raise BackendError(f"Choose an AWS region for {service} (Settings > Engines, --region or AWS_REGION).") \
                from None
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError):
            raise BackendError(f"Cannot reach {service} (no connection to AWS); check the network and try again.",
                               retryable=True) from None
        except ReadTimeoutError:
            raise BackendError(f"{service} did not answer for {subject} in time; try again.", retryable=True) \
                from None
        if cancelled():
            from sd_studio.errors import Cancelled

            raise Cancelled("Generation cancelled; nothing was changed.")
    raise BackendError(f"{service} kept failing for {subject}.", retryable=True)  # attempts < 1


def client_error(exc, service: str, subject: str, attempts: int = 1) -> BackendError:
    """The sentence for an AWS ClientError (the service's own message cleaned and shortened; no request ids)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = clean_text(error.get("Message") or exc.response.get("OriginalMessage") or "", 240)
    detail = f": {message}" if message else ""
    if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
                "InvalidSignatureException", "AccessDenied"):
        return BackendError(f"{service} refused access to {subject}{detail}. Check that your AWS identity may "
                            f"invoke it and that model access is granted in that region.")
    if code in ("ThrottlingException", "TooManyRequestsException"):
        return BackendError(f"{service} is throttling requests for {subject} (tried {attempts} times); wait a "
                            "minute and try again.", retryable=True)
    if code == "ServiceQuotaExceededException":
        return BackendError(f"The request for {subject} exceeds your {service} quota{detail}.", retryable=True)
    if code in ("ResourceNotFoundException", "ValidationError") and "not found" in message.casefold():
        return BackendError(f"{service} has no {subject} in this region{detail}.")
    if code in ("ValidationException", "ValidationError"):
        return BackendError(f"{service} rejected the request for {subject}{detail}.")
    if code == "ModelTimeoutException":
        return BackendError(f"{subject} took too long on {service}; try again.", retryable=True)
    if code in ("ModelErrorException", "ModelError"):
        return BackendError(f"{subject} failed on {service}{detail}.", retryable=True)
    if code in TRANSIENT:
        return BackendError(f"{service} is unavailable for {subject} (tried {attempts} times); try again later.",
                            retryable=True)
    return BackendError(f"{service} failed for {subject} ({clean_text(code, 60) or 'no error code'}){detail}.")


def _sleep(seconds: float, sleep: Callable[[float], None], cancelled: Callable[[], bool]) -> None:
    """Sleep in slices so that a cancel is noticed within a tenth of a second."""
    left = seconds
    while left > 0 and not cancelled():
        step = min(left, 0.1)
        sleep(step)
        left -= step


def per_seed_job(seeds: tuple[int, ...], one: Callable[[int, EventJob], np.ndarray], label: str,
                 note: str = "") -> EventJob:
    """A job that calls `one(seed, job)` for each seed in turn on a worker thread, reporting before each call.

    A cancel stops it between calls (an AWS call under way cannot be recalled; its answer is dropped).
    """
    events = EventJob()
    count = len(seeds)

    def work() -> None:
        try:
            images = []
            for index, seed in enumerate(seeds):
                if events.cancel_requested:
                    return
                events.report(Progress("waiting", index, count,
                                       message=f"{label}: image {index + 1} of {count}{note}"))
                images.append(one(seed, events))
            events.report(Progress("waiting", count, count, message=label))
            events.finish(images)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the waiting thread
            events.fail(exc)

    threading.Thread(target=work, name=f"sd-studio {label}", daemon=True).start()
    return events
