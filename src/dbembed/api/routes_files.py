"""File-index endpoints: semantic search over the indexed SQLite rows, files, collections and runs.

The file index is shared by all tenants (it indexes files, not people); any valid key
may search it.  Every endpoint calls the app's ``Dbembed`` service, whose connections
come from one pool per process.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dbembed.api.auth import principal, state
from dbembed.errors import InvalidParameter, echo, in_range, named_as

router = APIRouter(prefix="/v1", tags=["files"], dependencies=[Depends(principal)])

SearchMode = Literal["hybrid", "vector", "lexical"]
HIT_FIELDS = ("score", "path", "table", "row_key", "chunk_no", "text")


def _hit(hit: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(hit) and not isinstance(hit, type):
        data = dataclasses.asdict(hit)
    elif isinstance(hit, dict):
        data = dict(hit)
    else:
        data = {f: getattr(hit, f, None) for f in HIT_FIELDS}
    return {k: v for k, v in data.items() if k not in ("vector", "embedding")}


def _page_limit(request: Request, limit: int) -> int:
    return in_range("limit", limit, 1, state(request).settings.max_page_size)


class SearchRequest(BaseModel):
    """``GET /v1/search`` query parameters and ``POST /v1/search`` JSON body; any other name is a 422."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, description="Search text.")
    k: int = Field(10, ge=1, description="How many hits (at most the server's max_k).")
    file: str | None = Field(None, max_length=4096, description="Only this file (path or glob).")
    table: str | None = Field(None, max_length=512, description="Only this SQLite table.")
    mode: SearchMode | None = Field(None, description="hybrid (default), vector or lexical.")
    collection: str | None = Field(None, max_length=512, description="Search this collection (404 if it does not exist).")
    model: str | None = Field(
        None, max_length=512,
        description="Search this model's collection; with collection, it must be that collection's model (409).",
    )  # fmt: skip


def _search(request: Request, p: SearchRequest) -> dict[str, Any]:
    st = state(request)
    k = in_range("k", p.k, 1, st.settings.max_k)
    hits = st.service.search(p.q, k, file=p.file, table=p.table, mode=p.mode, collection=p.collection, model=p.model)
    st.metrics.count("file_searches")
    return {"items": [_hit(h) for h in hits]}


@router.get("/search")
def search_files(request: Request, params: Annotated[SearchRequest, Query()]) -> dict[str, Any]:
    """Search over the file index: by meaning, exact words, or both fused (``mode``), in the server's
    collection or the one named by ``collection`` / ``model``."""
    return _search(request, params)


@router.post("/search")
def search_files_post(request: Request, body: SearchRequest) -> dict[str, Any]:
    """``GET /v1/search`` with the parameters as a JSON body (long queries); a query string is a 422,
    never silently ignored."""
    for name in request.query_params:
        raise InvalidParameter(
            f"query parameter {name}: POST /v1/search takes its parameters in the JSON body "
            f"(got {echo(request.query_params[name])})",
            name,
        )
    with named_as(**{name: f"JSON field {name}" for name in SearchRequest.model_fields}, query="JSON field q"):
        return _search(request, body)


@router.get("/files")
def list_files(
    request: Request,
    status: Annotated[str | None, Query(description="Only files with this status.")] = None,
    glob: Annotated[
        str | None, Query(max_length=4096, description="Only paths matching this glob (bare name: any folder).")
    ] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="Indexed or changed since: ISO 8601 date/time or age (2h, 7d).")
    ] = None,
    sort: Annotated[
        str, Query(description="path, last_indexed, last_change, duration, rows, chunks or size.")
    ] = "path",
    desc: Annotated[bool, Query(description="Descending order.")] = False,
    collection: Annotated[str | None, Query(max_length=512, description="Only this collection.")] = None,
    rejected: Annotated[bool, Query(description="Only files with rejected tables/rows/chunks.")] = False,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=12000)] = None,
) -> dict[str, Any]:
    """Files with status, rows, chunks, rejected tables/rows/chunks, last change seen, last indexed,
    duration and error; keyset-paged (pass ``next_cursor`` back), with counts by status."""
    page = state(request).service.files(
        status=status, glob=glob, since=since, sort=sort, descending=desc, limit=_page_limit(request, limit),
        cursor=cursor, rejected=rejected, collection=collection,
    )  # fmt: skip
    return page.as_dict()


@router.get("/collections")
def list_collections(request: Request) -> dict[str, Any]:
    """Every collection: model, dimensions, files by status, rows, chunks and rejections."""
    return {"items": state(request).service.collections()}


@router.get("/runs")
def list_runs(
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Indexing runs, newest first, with their counters."""
    page = state(request).service.runs_page(_page_limit(request, limit), cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}
