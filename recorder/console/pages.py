"""HTML of the console's pages: the templates in templates/ filled with escaped values (string.Template;
every value goes through html.escape, so recording ids, names and tags are text, never markup)."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from string import Template

from recorder.api.auth import Principal

NAV = (
    ("recordings", "/console/recordings", "Recordings"),
    ("live", "/console/live", "Live"),
    ("audit", "/console/audit", "Audit log"),
)


@cache
def template(name: str) -> Template:
    return Template(resources.files("recorder.console").joinpath("templates", name).read_text("utf-8"))


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def json_block(value: object) -> str:
    """JSON safe inside <script type="application/json"> (no '</script>' or '<!--' can appear)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(
    title: str,
    current: str,
    body: str,
    script: str | None,
    principal: Principal | None,
    csrf: str = "",
    allowed: dict[str, bool] | None = None,
    data: dict[str, object] | None = None,
) -> str:
    """A whole page: `body` is already HTML (from `fill`); `allowed` says which actions the role may do."""
    allowed = allowed or {}
    nav = "".join(
        f'<li><a href="{href}"{" aria-current=page" if key == current else ""}>{label}</a></li>'
        for key, href, label in NAV
        if allowed.get(key)
    )
    config = {"csrf": csrf, "can": allowed, **(data or {})}
    if principal is not None:
        config |= {"name": principal.name, "role": principal.role.value}
        who = template("who.html").substitute(
            name=escape(principal.name), role=escape(principal.role.value), csrf=escape(csrf)
        )
    else:
        who = ""
    return template("base.html").substitute(
        title=escape(title),
        nav=nav,
        who=who,
        body=body,
        config=json_block(config),
        script=f'<script type="module" src="/console/static/{escape(script)}"></script>' if script else "",
    )


def fill(name: str, **values: object) -> str:
    return template(name).substitute({k: escape(v) for k, v in values.items()})
