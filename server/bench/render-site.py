#!/usr/bin/env python3
"""Renders templates/nginx.conf.tera for the benchmark, as telem-deploy would for a plain HTTP
site without the legacy web UI and without --ui-auth (the default install).

Understands the Tera subset the template uses: {{ a.b }} variables, {% if [not] x %},
{% else %}, {% endif %} with whitespace control ({%- ... %}), {# #} never appears. Anything
else is an error, so a template change the benchmark cannot follow fails loudly instead of
benchmarking another site.

Usage: render-site.py TEMPLATE KEY=VALUE... (VALUE true/false for booleans; dotted keys)
"""
import re
import sys

TAG = re.compile(r"(\{\{-?\s*[^}]*?\s*-?\}\}|\{%-?\s*.*?\s*-?%\})", re.S)


def render(src, ctx):
    out = []
    stack = []  # (active_before, condition_value, in_else)
    active = True
    pos = 0
    strip_next = False
    for m in TAG.finditer(src):
        text = src[pos:m.start()]
        tag = m.group(1)
        if strip_next:
            text = text.lstrip()
        if tag[2] == "-":
            text = text.rstrip()
        if active:
            out.append(text)
        pos = m.end()
        strip_next = tag[-3] == "-"
        inner = tag[2:-2].strip("-").strip()
        if tag.startswith("{{"):
            if active:
                if inner not in ctx:
                    raise SystemExit(f"render-site: no value for {{{{ {inner} }}}}")
                out.append(str(ctx[inner]))
            continue
        words = inner.split()
        if words[0] == "if":
            neg = words[1] == "not"
            name = words[2] if neg else words[1]
            if len(words) != (3 if neg else 2) or name not in ctx:
                raise SystemExit(f"render-site: cannot evaluate {{% {inner} %}}")
            value = ctx[name] in (True, "true")
            value = not value if neg else value
            stack.append((active, value))
            active = active and value
        elif words == ["else"]:
            before, value = stack[-1]
            active = before and not value
        elif words == ["endif"]:
            active, _ = stack.pop()
        else:
            raise SystemExit(f"render-site: unsupported tag {{% {inner} %}}")
    text = src[pos:]
    out.append(text.lstrip() if strip_next else text)
    if stack:
        raise SystemExit("render-site: unclosed if")
    return "".join(out)


def main():
    template = sys.argv[1]
    ctx = {}
    for arg in sys.argv[2:]:
        key, _, value = arg.partition("=")
        ctx[key] = {"true": True, "false": False}.get(value, value)
    with open(template, encoding="utf-8") as f:
        sys.stdout.write(render(f.read(), ctx))


main()
