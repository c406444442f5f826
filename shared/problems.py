"""RFC 9457 problem details, and the map of every exception in ``shared/`` to what it becomes.

Domain code raises :class:`Problem`; the HTTP layer (``shared.http.dispatch``) renders it as
``application/problem+json``. ``nifCode`` carries NIF's own error code where NIF defines one, and
``errors`` lists field-level validation failures with their JSON paths.

Every exception class of ``shared/``, by base (``tests/test_error_map.py`` checks this tree against
the code: a new class, a moved one or a changed base must be drawn here). A module named on a line
holds that class and, unless they name their own, its subclasses::

    Exception
    ├── Problem                      shared.problems
    ├── StorageError                 shared.tables_codec
    │   ├── TransientStorageError
    │   │   └── ConflictRetriesExhausted shared.nif.queue.apply
    │   └── Conflict
    ├── NifError                     shared.nif.errors
    │   ├── NifUnavailable
    │   │   └── NifTimeout
    │   ├── NifRejected
    │   └── NifContractError
    ├── SftpError                    shared.sftp
    │   ├── HostKeyRejected
    │   ├── InvalidHostKey           (also ValueError)
    │   ├── SftpAuthError
    │   │   └── SftpSecretMissing
    │   ├── SftpRefused
    │   ├── SftpTransientError
    │   └── SftpDeadlineExceeded
    ├── _CallerFailed                shared.sftp
    ├── RuntimeError
    │   ├── MissingSetting           shared.config
    │   ├── EnqueueFailed            shared.idrott.fanout
    │   └── ExportRunFailed          shared.idrott.worker
    ├── LookupError
    │   └── SecretNotFound           shared.secrets
    └── ValueError
        ├── JsonRejected             shared.jsonsafe
        ├── LenientJSONError         shared.nif.lenient_json
        ├── PoisonMessage            shared.nif.queue.envelope
        ├── InvalidPersonnummer      shared.idrott.personnummer
        ├── RecordTooLarge           shared.idrott.xmlwriter
        ├── UnresolvedParticipant    shared.idrott.xmlwriter
        └── InvalidExportFile        shared.idrott.xsd

Bases: an adapter's family (storage, NIF, SFTP) and :class:`Problem` derive from ``Exception``;
a single class derives from the builtin that says what it is (``ValueError``: bad data,
``LookupError``: not found, ``RuntimeError``: a state of the process); ``_CallerFailed`` is
private and only wraps another exception.

What each becomes. **HTTP**: the answer when it leaves a handler (``shared.http.dispatch``, or
the handler's own mapping where one is named), as status and problem type ``<slug>``.
**Queue**: the NIF queue trigger's outcome for the message: *quarantine* (a ``NifQuarantine`` row,
then the message is completed) or *retry* (the function raises, the host abandons the batch,
Service Bus redelivers it and dead-letters it after ``maxDeliveryCount``); a message that raises
nothing is completed. **Export**: an IdrottOnline export run (timer or ``POST …/export``) ends
``failed`` in the ledger with an ``errorCode``, or skips one record with a code; the timer goes on
with the next club, and fails only when it cannot list the clubs. ``POST …/export`` answers a
failed run with 502 ``export-failed`` carrying the ``errorCode``; ``GET …/export/preview`` answers
409 ``export-would-fail`` where a run would fail. A class not raised on a path has no entry for it.

    Problem                  HTTP: its own status, type and headers. Raised by HTTP code only.
    StorageError             HTTP 500 ``internal``. Queue: retry while journaling or quarantining;
                             quarantine while applying (the service refuses the row).
                             Export: run failed, ``storage-unavailable``.
    TransientStorageError    HTTP 503 ``storage-unavailable`` with ``Retry-After``
                             (``shared.http.STORAGE_RETRY_AFTER_SECONDS``). Queue: retry.
                             Export: run failed, ``storage-unavailable``; the timer fails if it
                             cannot list the clubs.
    ConflictRetriesExhausted   Queue only: retry, as a transient storage error (a row kept
                               changing under concurrent writers).
    Conflict                 HTTP 500 ``internal`` (handlers that expect a race catch it).
                             Queue: retry. Export: run failed, ``storage-unavailable``.
    NifError                 Never raised itself; raised by the NIF client, which only HTTP
                             handlers call. HTTP (``shared.nif.api.problem_from_nif``):
    NifUnavailable             502 ``nif-unavailable`` (also: NIF refused our credentials).
    NifTimeout                 504 ``nif-timeout`` (after a POST: "may have been applied").
    NifRejected                ``nif-rejected`` with ``nifCode``: 404 for 1018/1034, 409 for
                               3001, 422 otherwise; a 404 without a code: 502 ``nif-unavailable``.
    NifContractError           502 ``nif-contract``.
    SftpError                Export: run failed, ``sftp-failed``. Raised by uploads only.
    HostKeyRejected            ``sftp-host-key-rejected``.
    InvalidHostKey             ``sftp-host-key-invalid``; as the club model's ``ValueError``:
                               ``PUT /api/clubs/{clubId}`` 422 ``validation`` at ``sftpHostKey``.
    SftpAuthError              ``sftp-auth-failed``.
    SftpSecretMissing          ``sftp-credentials-missing``.
    SftpRefused                ``sftp-refused``.
    SftpTransientError         retried within the upload (reconnect, backoff), then
                               ``sftp-unreachable``.
    SftpDeadlineExceeded       ``sftp-deadline``.
    _CallerFailed            Never leaves ``shared.sftp.upload_files``: the caller's own exception
                             (from ``on_uploaded``) is re-raised as it was.
    MissingSetting           HTTP 503 ``not-configured``, naming the setting. Queue: retry.
                             Export: run failed, ``internal-error``; the timer fails if it cannot
                             list the clubs.
    EnqueueFailed            Export timer only: raised after every other club was enqueued, so
                             the invocation shows failed; each club is an ``export.enqueue_failed``
                             log line and is rolled again by the next firing.
    ExportRunFailed          Export queue only: the worker raises it for a failed run (already in
                             the ledger and the roll call) so the host retries the message after
                             ``visibilityTimeout``, then moves it to ``<queue>-poison``.
    SecretNotFound           Translated where a secret is read: the NIF client raises
                             :class:`MissingSetting` (503 ``not-configured``), the SFTP adapter
                             :class:`SftpSecretMissing`.
    JsonRejected             HTTP 400 ``malformed-json`` (``ApiRequest.json_body``). Queue: the
                             message is a :class:`PoisonMessage`.
    LenientJSONError         NIF client only: an error body is searched for a code as text; a 2xx
                             body becomes :class:`NifContractError`.
    PoisonMessage            Queue: quarantine.
    InvalidPersonnummer      A field error of the person model: HTTP 422
                             ``idrott-bulk-validation``; a stored record that no longer passes is
                             skipped in an export, ``record-invalid``.
    RecordTooLarge           Export: record skipped, ``record-too-large``; run failed,
                             ``file-limit-too-small`` when not even the header fits. Preview 409.
    UnresolvedParticipant    Export: record skipped, ``participant-not-sendable``. Preview 409.
    InvalidExportFile        Export: the records the XSD refuses on their own are skipped,
                             ``record-invalid``; otherwise run failed, ``export-file-invalid``.
                             Preview 409.

Not ours: ``pydantic.ValidationError`` is HTTP 422 ``validation`` with field paths. Anything else
is HTTP 500 ``internal`` (logged with its stack; the body carries only the ``invocationId``),
quarantine while the queue applies a message (retry before that), and ``internal-error`` in an
export run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from http import HTTPStatus
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://idrettsbro.dev/problems/"


@dataclass(frozen=True)
class FieldError:
    """One invalid field: ``path`` is a JSON path such as ``person.email`` or ``[3].startTime``."""

    path: str
    message: str
    code: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.code is not None:
            out["code"] = self.code
        return out


@dataclass
class Problem(Exception):
    """An error answer. ``type_slug`` becomes ``<PROBLEM_TYPE_BASE><slug>``; it and every field
    after ``detail`` are keyword-only: ``Problem(409, "Conflict", "…", type_slug="export-locked")``."""

    status: int
    title: str
    detail: str | None = None
    _: KW_ONLY
    type_slug: str | None = None
    nif_code: int | None = None
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.type_slug if self.type_slug else "about:blank"

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.nif_code is not None:
            body["nifCode"] = self.nif_code
        if self.errors:
            body["errors"] = [e.to_dict() for e in self.errors]
        body.update(self.extra)
        return body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def bad_request(detail: str, *, slug: str = "bad-request", errors: Iterable[FieldError] = ()) -> Problem:
    return Problem(400, _phrase(400), detail, type_slug=slug, errors=list(errors))


def not_found(detail: str) -> Problem:
    return Problem(404, _phrase(404), detail, type_slug="not-found")


def conflict(detail: str) -> Problem:
    return Problem(409, _phrase(409), detail, type_slug="conflict")


def validation_problem(
    errors: Iterable[FieldError],
    detail: str = "The request is not valid.",
    *,
    nif_code: int | None = None,
    slug: str = "validation",
    extra: dict[str, Any] | None = None,
) -> Problem:
    """422 with field errors; ``nif_code`` when the failure maps to one NIF code."""
    return Problem(
        422,
        "Unprocessable Content",
        detail,
        type_slug=slug,
        nif_code=nif_code,
        errors=list(errors),
        extra=extra or {},
    )


def json_path(loc: Iterable[Any], prefix: str = "") -> str:
    """``("person", "email")`` → ``person.email``; ``(3, "startTime")`` → ``[3].startTime``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


def field_errors_from_pydantic(exc: Any, *, prefix: str = "") -> list[FieldError]:
    """Field errors from a ``pydantic.ValidationError`` (no input values echoed: they may be personal)."""
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [p for p in err.get("loc", ()) if p not in ("body",)]
        msg = err.get("msg", "invalid")
        errors.append(FieldError(json_path(loc, prefix), msg, err.get("type")))
    return errors


def from_pydantic(exc: Any, *, prefix: str = "", detail: str = "The request is not valid.") -> Problem:
    return validation_problem(field_errors_from_pydantic(exc, prefix=prefix), detail)
