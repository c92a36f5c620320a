"""``query`` and ``queryAll``: SOQL over the emulator's rows, paged through query locators."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

from emulators import soql
from emulators.sf_errors import ApiError
from emulators.sf_http import Call

if TYPE_CHECKING:
    from emulators.salesforce import SalesforceEmulator

MIN_BATCH, MAX_BATCH = 200, 2000
_BATCH_OPTION = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


@dataclass
class Cursor:
    records: list[dict]
    endpoint: str  # "query" or "queryAll"
    batch: int
    last_access: datetime


class QueryApi:
    def __init__(self, emulator: SalesforceEmulator):
        self.emulator = emulator
        self.cursors: dict[str, Cursor] = {}

    def reset(self) -> None:
        self.cursors.clear()

    def batch_size(self, call: Call) -> int:
        """``Sforce-Query-Options: batchSize=N`` (200..2000), else the org's page size."""
        option = call.request.headers.get("sforce-query-options", "")
        match = _BATCH_OPTION.search(option)
        if not match:
            return self.emulator.config.page_size
        return max(MIN_BATCH, min(MAX_BATCH, int(match.group(1))))

    def run(self, call: Call, endpoint: str) -> JSONResponse:
        text = call.request.query_params.get("q")
        if text is None:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        include_deleted = endpoint == "queryAll"
        emulator = self.emulator
        try:
            result = soql.execute(
                text,
                emulator.soql_tables(include_deleted=include_deleted),
                now=call.now,
                tz=emulator.tz,
            )
        except soql.SoqlError as error:
            raise ApiError(400, error.code, error.message) from None
        if result.count_only:
            return JSONResponse({"totalSize": result.total_size, "done": True, "records": []})
        if result.aggregate is not None:
            record = {"attributes": {"type": "AggregateResult"}, "expr0": result.aggregate}
            return JSONResponse({"totalSize": 1, "done": True, "records": [record]})
        records = [
            emulator.record_json(result.object_name, row, call.version, result.fields)
            for row in result.rows
        ]
        batch = self.batch_size(call)
        return JSONResponse(self._page(records, 0, batch, endpoint, call, locator=None))

    def _page(
        self,
        records: list[dict],
        offset: int,
        batch: int,
        endpoint: str,
        call: Call,
        locator: str | None,
    ) -> dict:
        page = records[offset : offset + batch]
        done = offset + batch >= len(records)
        body: dict = {"totalSize": len(records), "done": done}
        if not done:
            if locator is None:
                locator = "01g" + secrets.token_hex(8)[:15]
                self.cursors[locator] = Cursor(records, endpoint, batch, call.now)
            body["nextRecordsUrl"] = (
                f"/services/data/v{call.version}/{endpoint}/{locator}-{offset + batch}"
            )
        elif locator is not None:
            self.cursors.pop(locator, None)  # the last page closes the cursor
        body["records"] = page
        return body

    def more(self, call: Call, endpoint: str, locator_text: str) -> JSONResponse:
        locator, _, offset_text = locator_text.rpartition("-")
        cursor = self.cursors.get(locator)
        idle = timedelta(seconds=self.emulator.config.query_cursor_idle_seconds)
        if (
            cursor is None
            or not offset_text.isdigit()
            or int(offset_text) >= len(cursor.records)
            or call.now - cursor.last_access > idle
        ):
            self.cursors.pop(locator, None)
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.last_access = call.now
        body = self._page(cursor.records, int(offset_text), cursor.batch, endpoint, call, locator)
        return JSONResponse(body)
