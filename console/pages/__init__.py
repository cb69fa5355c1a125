"""The console's pages, by area; :func:`console.app.create_app` maps the URLs to them.

- :mod:`~console.pages.login`: the login form, logging in and out (the only pages open without a login);
- :mod:`~console.pages.rounds`: the rounds, a pool's matching and a named round's, on a page and as CSV;
- :mod:`~console.pages.donors`: the flagged donors and one donor's evidence on every chain shown;
- :mod:`~console.pages.review`: the review queue and a reviewer's verdict;
- :mod:`~console.pages.model`: the experiments, the served model and its plots, and plotly.js.

Each area is a class holding the :class:`console.site.Console` it reads
through; its methods are the pages (wrapped by :meth:`~console.site.Console.page`
where a login is needed). Pages render; the queries are in
:mod:`console.queries`, the parameter checks in :mod:`console.params`.
"""
