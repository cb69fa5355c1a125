"""The experiments, the served model and its plots, and plotly.js itself.

The model page reads the served version from the models directory
(:mod:`console.model_view`), not from the sidecar: the console never imports
the scorer. plotly.js is served from the plotly wheel (:func:`plotly_js`), so
the charts need no internet and the Content-Security-Policy allows scripts from
the console alone.
"""

from __future__ import annotations

import functools
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from qf_sentinel.console import charts, queries
from qf_sentinel.console.auth import Login
from qf_sentinel.console.model_view import plot_path, served_model
from qf_sentinel.console.site import Console
from qf_sentinel.qf.errors import QFError
from qf_sentinel.qf.experiments import store as experiment_store


class ModelPages:
    """``/experiments``, ``/model`` and ``/model/plots/NAME``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def experiments_page(self, request: Request, login: Login) -> Response:
        def load(conn: psycopg.Connection[Any]) -> list[Any]:
            return [experiment_store.stats(conn, name) for name in queries.experiment_names(conn)]

        stats = await self.console.db(load)
        figures = [(s, charts.lift_chart(s)) for s in stats]
        return self.console.render(request, "experiments.html", {"title": "Experiments", "experiments": figures})

    async def model_page(self, request: Request, login: Login) -> Response:
        console = self.console
        try:
            view = await run_in_threadpool(served_model, console.config.models_dir)
        except QFError as exc:
            return console.render(request, "error.html", {"title": "Model unreadable", "message": str(exc)}, 503)
        context = {"title": "Model", "model": view, "models_dir": console.config.models_dir}
        return console.render(request, "model.html", context)

    async def model_plot(self, request: Request, login: Login) -> Response:
        path = await run_in_threadpool(plot_path, self.console.config.models_dir, request.path_params["name"])
        if path is None:
            raise HTTPException(404, "no such plot in the served version")
        return FileResponse(path, media_type="image/png")


async def plotly_js(request: Request) -> Response:
    return Response(_plotly_js(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


@functools.cache
def _plotly_js() -> bytes:
    """plotly.js as the wheel ships it (4.8 MB, read once, when a page first asks)."""
    from plotly.offline import get_plotlyjs  # noqa: PLC0415

    return str(get_plotlyjs()).encode()
