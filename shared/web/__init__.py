"""Mechanics of the server-rendered pages requesters see (no business rules here).

- `i18n`: the zh-CN/en string catalogue and how a page picks its language
  (the signed link's locale, overridden by the `?lang=` switcher);
- `render`: Jinja2 pages on the shared base layout, Babel dates in the requester's
  time zone, and the security headers every page carries;
- `csrf`: the double-submit cookie that every form needs;
- `forms`: reading `application/x-www-form-urlencoded` bodies;
- `links`: the signed "check your ticket" link (intake verifies it, notifier mails it).

Each service serves the pages over the data it owns (`services/<svc>/pages.py`).
"""
