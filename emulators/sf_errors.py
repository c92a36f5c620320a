"""Salesforce's error shapes: the REST error array, per-record DML errors, OAuth errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import JSONResponse


@dataclass(frozen=True)
class DmlError:
    """One record-level error; rendered with ``errorCode`` at top level, ``statusCode`` in
    collection results, as Salesforce does."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def as_top_level(self) -> dict:
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def as_record_error(self) -> dict:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


@dataclass
class ApiError(Exception):
    """Raised by a handler; becomes ``[{"message", "errorCode"(, "fields")}]`` with ``status``."""

    status: int
    code: str
    message: str
    fields: list[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> list[dict]:
        entry: dict = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    @classmethod
    def from_dml(cls, error: DmlError, status: int = 400) -> ApiError:
        return cls(status, error.code, error.message, list(error.fields))

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


@dataclass
class OAuthError(Exception):
    """Raised by the OAuth endpoints; becomes ``{"error", "error_description"}``."""

    status: int
    error: str
    description: str

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
        )

    def __str__(self) -> str:
        return f"{self.status} {self.error}: {self.description}"


NOT_FOUND_MESSAGE = "The requested resource does not exist"


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def invalid_session() -> ApiError:
    return ApiError(
        401,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
        headers={"WWW-Authenticate": 'Token realm="Salesforce"'},
    )
