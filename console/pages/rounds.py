"""The rounds: the list, one pool's matching (standard, CoCM, risk-adjusted) and a named round across chains.

A pool is ``/chains/C/rounds/N``; ``/rounds/N`` is the same page on the
console's only chain, and with several chains a page naming those that hold
pool N (pool ids repeat across chains, so one is never picked). A named round
(``qf rounds add``) groups pools of several chains and is matched in USD. Each
page has its CSV, read from the same :class:`console.comparison.ComparisonCache`
as the page, so the download is what the page shows.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from qf_sentinel.console import charts, params, queries
from qf_sentinel.console.auth import Login
from qf_sentinel.console.chains import chain_label
from qf_sentinel.console.comparison import Comparison, to_csv
from qf_sentinel.console.site import Console
from qf_sentinel.qf.errors import AmbiguousChain
from qf_sentinel.qf.matching.rounds import ROUND_NAME


class RoundPages:
    """``/``, ``/rounds/N``, ``/chains/C/rounds/N``, ``/named/NAME`` and their ``matching.csv``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def rounds_page(self, request: Request, login: Login) -> Response:
        console = self.console
        chains = await console.chains()
        rows = await console.db(queries.rounds, chains)
        status = await console.db(queries.indexer_status, chains)
        named = await console.db(queries.named_rounds, chains)
        context = {"title": "Rounds", "chains": chains, "rounds": rows, "status": status, "named": named}
        return console.render(request, "rounds.html", context)

    async def _round(self, request: Request) -> tuple[int, int, dict[str, Any]] | Response:
        """The pool a page is about: ``/chains/C/rounds/N``, or ``/rounds/N`` on the console's only chain
        (with several, a page naming the chains that hold pool N)."""
        console = self.console
        pool_id = params.int_param(request.path_params["pool_id"], "pool")
        if "chain_id" in request.path_params:
            chain_id = params.int_param(request.path_params["chain_id"], "chain")
            if chain_id not in await console.chains():
                raise HTTPException(404, f"chain {chain_id} is not shown by this console")
        else:
            try:
                chain_id = await console.chain()
            except AmbiguousChain as exc:
                return await self._which_chain(request, exc.chains, pool_id)
        header = await console.db(queries.round_header, chain_id, pool_id)
        if header is None:
            raise HTTPException(404, f"pool {pool_id} is not indexed on chain {chain_id}")
        return chain_id, pool_id, header

    async def _which_chain(self, request: Request, chains: list[int], pool_id: int) -> Response:
        """``/rounds/N`` with several chains: pool ids repeat across chains, so name them and never pick one."""
        holding = await self.console.db(queries.pool_chains, chains, pool_id)
        listed = ", ".join(chain_label(c) for c in chains)
        if not holding:
            raise HTTPException(404, f"pool {pool_id} is not indexed on any of the chains ({listed})")
        suffix = request.url.path.removeprefix(f"/rounds/{request.path_params['pool_id']}")
        query = f"?{request.url.query}" if request.url.query else ""
        links = [(f"/chains/{c}/rounds/{pool_id}{suffix}{query}", f"pool {pool_id} on chain {chain_label(c)}")
                 for c in holding]  # fmt: skip
        message = (f"{len(chains)} chains are indexed ({listed}); pool {pool_id} is on "
                   f"{', '.join(chain_label(c) for c in holding)}. Choose the chain (or set QF_CHAIN_ID).")  # fmt: skip
        return self.console.render(request, "error.html", {"title": "Which chain?", "message": message,
                                                           "links": links}, 300)  # fmt: skip

    async def _matched(self, request: Request) -> tuple[int, int, dict[str, Any], bool, Comparison] | Response:
        """The page's pool (see ``_round``) and its matching, in USD when ``?usd=`` asks."""
        found = await self._round(request)
        if isinstance(found, Response):
            return found
        chain_id, pool_id, header = found
        usd = params.usd_flag(request.query_params.get("usd"))
        comparison = await self.console.db(self.console.cache.get, chain_id, pool_id, usd)
        return chain_id, pool_id, header, usd, comparison

    async def round_page(self, request: Request, login: Login) -> Response:
        console = self.console
        found = await self._matched(request)
        if isinstance(found, Response):
            return found
        chain_id, pool_id, header, _, comparison = found
        tokens = await console.db(queries.pool_tokens, chain_id, pool_id)
        chart = charts.gains_chart(comparison) if comparison.projects else None
        context = {"title": f"Pool {pool_id}", "chain_id": chain_id, "round": header, "comparison": comparison,
                   "chart": chart, "tokens": tokens, "base": f"/chains/{chain_id}/rounds/{pool_id}"}  # fmt: skip
        return console.render(request, "round.html", context)

    async def round_csv(self, request: Request, login: Login) -> Response:
        found = await self._matched(request)
        if isinstance(found, Response):
            return found
        _, pool_id, _, usd, comparison = found
        disposition = f'attachment; filename="pool-{pool_id}-matching{"-usd" if usd else ""}.csv"'
        return PlainTextResponse(to_csv(comparison), media_type="text/csv",
                                 headers={"Content-Disposition": disposition})  # fmt: skip

    async def _named(self, request: Request) -> tuple[str, list[dict[str, Any]]]:
        """The named round a page is about and its pools; 404 unless every pool is on a chain shown here."""
        console = self.console
        name = request.path_params["name"]
        if not ROUND_NAME.fullmatch(name):
            raise HTTPException(404, "a round name is 1-64 letters, digits, dots, dashes or underscores")
        pools = await console.db(queries.named_round_pools, name)
        if not pools:
            raise HTTPException(404, f"no round named {name} (`qf rounds add {name} --pool CHAIN:POOL`)")
        chains = await console.chains()
        outside = sorted({int(p["chain_id"]) for p in pools} - set(chains))
        if outside:
            listed = ", ".join(map(str, outside))
            raise HTTPException(404, f"round {name} has pools on chain {listed}, which this console does not show "
                                     f"(QF_CHAIN_ID={console.config.chain_id})")  # fmt: skip
        return name, pools

    async def named_round_page(self, request: Request, login: Login) -> Response:
        console = self.console
        name, pools = await self._named(request)
        refs = [(int(p["chain_id"]), int(p["pool_id"])) for p in pools]
        comparison = await console.db(console.cache.get_round, name, refs)
        chart = charts.gains_chart(comparison) if comparison.projects else None
        context = {"title": f"Round {name}", "name": name, "pools": pools, "comparison": comparison,
                   "chart": chart, "chain_count": len({c for c, _ in refs})}  # fmt: skip
        return console.render(request, "named_round.html", context)

    async def named_round_csv(self, request: Request, login: Login) -> Response:
        console = self.console
        name, pools = await self._named(request)
        refs = [(int(p["chain_id"]), int(p["pool_id"])) for p in pools]
        comparison = await console.db(console.cache.get_round, name, refs)
        disposition = f'attachment; filename="round-{name}-matching-usd.csv"'
        return PlainTextResponse(to_csv(comparison), media_type="text/csv",
                                 headers={"Content-Disposition": disposition})  # fmt: skip
