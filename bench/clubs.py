"""The Swedish club the benchmarks register (``PUT /api/clubs/{clubId}``'s body), numbered."""

from __future__ import annotations

import uuid
from typing import Any


def swedish_club(
    c: int, *, sftp_port: int, sftp_username: str, host_key: str, secret: str, remote_dir: str | None = None
) -> dict[str, Any]:
    """Club ``c``: enabled, its own RF number and GUID, an SFTP account on 127.0.0.1."""
    body: dict[str, Any] = {
        "name": f"IK {c}",
        "country": "SE",
        "enabled": True,
        "rfForeningsnummer": str(10000 + c),
        "organisationNumber": "802000-0009",
        "rfGuid": str(uuid.UUID(int=c + 1)),
        "sftpHost": "127.0.0.1",
        "sftpPort": sftp_port,
        "sftpUsername": sftp_username,
        "sftpHostKey": host_key,
        "sftpPasswordSecret": secret,
    }
    if remote_dir is not None:
        body["sftpRemoteDir"] = remote_dir
    return body
