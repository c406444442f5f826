"""What a caller sees of a failed run or a skipped record: a stable code and a plain sentence.

:data:`ERROR_CODES` is the one table (docs/idrottonline.md, "Error codes", shows it word for
word). Never a host, port, user name or secret name in a sentence: those are in ``errorDetail`` of
the admin views (``…/exports/full``, ``POST …/export``) and in the logs, redacted of personal data
(:func:`redact`). A run's code comes from its exception (:func:`error_code`), a ledger row
written before codes existed gets one from its text (:func:`legacy_code`), and a skipped record
its code and a short detail from why the writer or the XSD refused it (:func:`skip_code`,
:func:`skip_detail`).
"""

from __future__ import annotations

from shared.idrott.xmlwriter import RecordTooLarge, UnresolvedParticipant

__all__ = ["ERROR_CODES", "error_code", "legacy_code", "redact", "skip_code", "skip_detail"]

#: What a function-key caller sees of a failed run or a skipped record: a stable code and a plain
#: sentence (docs/idrottonline.md, "Error codes"). Never a host, port, user name or secret name:
#: those are in ``errorDetail`` of the admin views (``…/exports/full``, ``POST …/export``) and in
#: the logs.
ERROR_CODES: dict[str, str] = {
    # a run failed
    "sftp-auth-failed": "The SFTP server refused our credentials; check the club's SFTP settings.",
    "sftp-credentials-missing": "The SFTP password or key for this club could not be read; "
    "check the club's SFTP settings.",
    "sftp-host-key-rejected": "The SFTP server presented a host key other than the one pinned for this club; "
    "verify the key with RF before changing the club's SFTP settings.",
    "sftp-host-key-invalid": "The SFTP host key pinned for this club is not valid; fix the club's SFTP settings.",
    "sftp-unreachable": "The SFTP server could not be reached or the connection dropped; the next run sends again.",
    "sftp-deadline": "The upload did not finish in time; the next run sends again.",
    "sftp-refused": "The SFTP server refused to store a file (permissions or folder); check the upload folder with RF.",
    "sftp-failed": "The SFTP transfer failed; the next run sends again.",
    "export-file-invalid": "A generated file did not pass the IdrottOnline schema, so nothing was sent.",
    "file-limit-too-small": "The configured maximum file size leaves no room for any record.",
    "storage-unavailable": "Our storage could not be reached; the next run tries again.",
    "run-abandoned": "The run stopped without recording its end (the worker was stopped); a later run "
    "closed it and sends again what was not confirmed.",
    "internal-error": "The export failed for an unexpected reason; an administrator can see the details.",
    # one record was skipped (the run goes on; the record stays pending)
    "record-too-large": "The record, with everything it needs in the same file (an activity with its "
    "participants), does not fit in one import file, so it is not sent; it stays pending.",
    "record-invalid": "The record cannot be written as a valid IdrottOnline record, so it is not sent; "
    "it stays pending until it is corrected.",
    "participant-not-sendable": "A participant of the activity cannot be sent (see that person's entry), "
    "so the activity is not sent either; it stays pending.",
}

#: Exception class name (anywhere in the MRO, most specific first) → run error code.
_CODE_BY_CLASS: dict[str, str] = {
    "SftpSecretMissing": "sftp-credentials-missing",
    "SftpAuthError": "sftp-auth-failed",
    "HostKeyRejected": "sftp-host-key-rejected",
    "InvalidHostKey": "sftp-host-key-invalid",
    "SftpDeadlineExceeded": "sftp-deadline",
    "SftpTransientError": "sftp-unreachable",
    "SftpRefused": "sftp-refused",
    "SftpError": "sftp-failed",
    "InvalidExportFile": "export-file-invalid",
    "RecordTooLarge": "file-limit-too-small",
    "StorageError": "storage-unavailable",
}


def error_code(exc: BaseException) -> str:
    """The :data:`ERROR_CODES` code of a run that failed with ``exc``."""
    for cls in type(exc).__mro__:
        code = _CODE_BY_CLASS.get(cls.__name__)
        if code is not None:
            return code
    return "internal-error"


def legacy_code(detail: str) -> str:
    """The code of a ledger row written before codes existed (its error reads ``"<Class>: …"``)."""
    name = detail.split(":", 1)[0].strip()
    if name == "SftpAuthError" and ("secret not found" in detail or "no SFTP password" in detail):
        return "sftp-credentials-missing"
    if name == "SftpError" and "refused the operation" in detail:
        return "sftp-refused"
    return _CODE_BY_CLASS.get(name, "internal-error")


def skip_code(exc: Exception) -> str:
    """The code of a record the run skips because of ``exc``."""
    if isinstance(exc, RecordTooLarge):
        return "record-too-large"
    if isinstance(exc, UnresolvedParticipant):
        return "participant-not-sendable"
    return "record-invalid"


def skip_detail(exc: Exception) -> str:
    """A short, redacted reason about the record's own data (shown with the skipped record)."""
    if isinstance(exc, UnresolvedParticipant):
        text = f"participant {exc.person_id!r} cannot be sent"
    elif callable(getattr(exc, "errors", None)) and hasattr(exc, "error_count"):  # pydantic
        parts = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
            for e in exc.errors(include_input=False, include_url=False)[:3]  # type: ignore[attr-defined]
        ]
        text = "the stored record no longer passes validation: " + "; ".join(parts)
    else:
        text = str(exc)
    return redact(text)[:300]


def redact(text: str) -> str:
    """``text`` without personal data or secrets (``shared.logs``), at most 2 000 characters."""
    from shared.logs import redact as redact_log

    return redact_log(text)[:2000]
