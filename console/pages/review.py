"""The review queue and a reviewer's verdict on a flagged donor.

The queue is read per status (pending, reviewed, all) and paged. A verdict is
the console's one write: the form is checked here (a reviewer login, its CSRF
token, a chain this console shows), parsed and recorded by
:mod:`console.review`, whose conflicts and refusals become a page saying that
nothing was recorded.
"""

from __future__ import annotations

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from qf_sentinel.console import params, queries
from qf_sentinel.console.auth import CSRF_FIELD, Login, csrf_valid
from qf_sentinel.console.chains import chain_label
from qf_sentinel.console.review import ReviewConflict, ReviewError, parse_verdict, record_verdict
from qf_sentinel.console.site import Console

log = structlog.get_logger()


class ReviewPages:
    """``/review``: the queue (GET) and a verdict (POST)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def review_page(self, request: Request, login: Login) -> Response:
        console = self.console
        status = request.query_params.get("status", "pending")
        if status not in params.STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(params.STATUSES)}")
        chains, shown, picked = await console.shown_chains(request)
        offset = params.page_offset(request.query_params.get("offset"))
        rows = await console.db(queries.review_queue, shown, status, offset)
        counts = await console.db(queries.queue_counts, shown)
        chain_q = f"&chain={picked}" if picked is not None else ""
        return console.render(request, "review.html", {
            "title": "Review queue", "queue": rows, "status": status, "counts": counts, "offset": offset,
            "page_size": queries.PAGE_SIZE, "chains": chains, "picked": picked, "chain_q": chain_q,
        })  # fmt: skip

    async def review_submit(self, request: Request, login: Login) -> Response:
        console = self.console
        form = await request.form()
        back = params.safe_next(str(form.get("back", "")), "/review")
        if not login.may_review:
            message = f"{login.name} may read but not review: reviewing needs a reviewer token. Nothing was recorded."
            return console.render(request, "error.html", {"title": "Read-only login", "message": message}, 403)
        if not csrf_valid(request.session, form.get(CSRF_FIELD)):
            message = ("The form's security token is missing or wrong (an expired session or a forged form). "
                       "Nothing was recorded; reload the page and try again.")  # fmt: skip
            context = {"title": "Form refused", "message": message, "back": back}
            return console.render(request, "error.html", context, 400)
        try:
            verdict = parse_verdict(form)
            chain_id = verdict.chain_id if verdict.chain_id is not None else await console.chain()
            if chain_id not in await console.chains():
                raise ReviewError(f"chain {chain_id} is not shown by this console: nothing recorded")
            review_id = await console.db(record_verdict, chain_id, verdict, login.name)
        except ReviewConflict as exc:
            context = {"title": "Already reviewed", "message": str(exc), "back": back}
            return console.render(request, "error.html", context, 409)
        except ReviewError as exc:
            context = {"title": "Verdict refused", "message": str(exc), "back": back}
            return console.render(request, "error.html", context, 400)
        log.info("console_verdict", reviewer=login.name, chain_id=chain_id, donor="0x" + verdict.donor.hex(),
                 verdict=verdict.verdict, review_id=review_id, supersedes=verdict.expected)  # fmt: skip
        request.session["flash"] = (f"Recorded: 0x{verdict.donor.hex()} is {verdict.verdict} on chain "
                                    f"{chain_label(chain_id)} (review {review_id}).")  # fmt: skip
        return RedirectResponse(back, status_code=303)
