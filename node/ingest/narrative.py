"""FHIR narrative (``Narrative.div``) against txt-1 and txt-2, and the XHTML data type's root rule.

txt-1: only the basic HTML formatting elements and attributes (HTML 4.0 chapters 7-11 and 15, ``<a>``, images,
inline ``style``): no script, forms, frames, objects or event handler attributes. txt-2: some non-whitespace
content. The narrative is shown to clinicians and patients by every viewer of the record, so an input that could
run script there is refused at ingest rather than trusted to each viewer's sanitiser.

The check is a tokenizer, not a full XML parse: it only has to decide which elements and attributes appear, and
anything it cannot tokenize (``<!DOCTYPE``, processing instructions, CDATA, a stray ``<``) is refused.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Space-separated word lists, as the FHIR narrative rules print them.
_ELEMENTS = frozenset(
    (  # noqa: SIM905
        "a abbr acronym address b bdo big blockquote br caption cite code col colgroup dd del dfn div dl dt em "
        "h1 h2 h3 h4 h5 h6 hr i img ins kbd li ol p pre q s samp small span strong sub sup table tbody td tfoot th "
        "thead tr tt u ul var"
    ).split()
)
_ATTRIBUTES = frozenset(
    (  # noqa: SIM905
        "abbr accesskey align alt axis bgcolor border cellhalign cellpadding cellspacing cellvalign char charoff "
        "charset cite class colspan compact coords dir frame headers height href hreflang hspace id lang longdesc "
        "name nowrap rel rev rowspan rules scope shape span src start style summary tabindex title type valign "
        "value vspace width xmlns xml:lang"
    ).split()
)
_XHTML_NS = "http://www.w3.org/1999/xhtml"
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:_-]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'))?)*)\s*(/?)>")
_ATTR = re.compile(r"([^\s=/>]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# Scheme of a URL in href/src: script-bearing schemes are refused (an <a href="javascript:..."> runs on click).
_UNSAFE_URL = re.compile(r"^\s*(javascript|vbscript|data\s*:\s*text/html)", re.IGNORECASE)
_UNSAFE_STYLE = re.compile(r"expression\s*\(|url\s*\(\s*['\"]?\s*javascript:|behavior\s*:", re.IGNORECASE)


@lru_cache(maxsize=2048)
def narrative_problem(div: str) -> str | None:
    """Why ``div`` is not acceptable narrative (a message without its content), or None. Cached: senders repeat
    the same generated narrative across many resources."""
    text = _COMMENT.sub("", div).strip()
    if not text.startswith("<div"):
        return "narrative must be a single <div> element"
    depth = 0
    content = False
    position = 0
    root_seen = False
    for match in _TAG.finditer(text):
        between = text[position : match.start()]
        if "<" in between:
            return "narrative holds markup that is not an element (doctype, CDATA, processing instruction, '<')"
        if "&" in _ENTITY.sub("", between):
            return "narrative holds a bare '&' (not an XML entity)"
        if between.strip():
            content = True
        position = match.end()
        closing, name, attributes, self_closing = match.groups()
        lower = name.lower()
        if lower not in _ELEMENTS:
            return f"narrative element <{lower}> is not allowed (txt-1)"
        if closing:
            depth -= 1
            if depth < 0:
                return "narrative closes an element it did not open"
            continue
        if depth == 0:
            if root_seen:
                return "narrative must be a single <div> element"
            root_seen = True
            if lower != "div":
                return "narrative must be a single <div> element"
        for attr in _ATTR.finditer(attributes):
            attr_name = attr.group(1).lower()
            value = attr.group(2) if attr.group(2) is not None else attr.group(3) or ""
            if attr_name.startswith("on"):
                return f"narrative attribute {attr_name} (an event handler) is not allowed (txt-1)"
            if attr_name not in _ATTRIBUTES:
                return f"narrative attribute {attr_name} is not allowed (txt-1)"
            if attr_name in ("href", "src", "longdesc", "cite") and _UNSAFE_URL.match(value):
                return f"narrative {attr_name} uses a script URL (txt-1)"
            if attr_name == "style" and _UNSAFE_STYLE.search(value):
                return "narrative style holds a script expression (txt-1)"
            if attr_name == "xmlns" and depth == 0 and value != _XHTML_NS:
                return "narrative <div> must be in the XHTML namespace"
        if (
            depth == 0
            and 'xmlns="' + _XHTML_NS + '"' not in attributes
            and "xmlns='" + _XHTML_NS + "'" not in attributes
        ):
            return 'narrative <div> must declare xmlns="http://www.w3.org/1999/xhtml"'
        if lower == "img":
            content = True
        if not self_closing:
            depth += 1  # XHTML: <br> must be written <br/>, or it is left open and fails the check at the end
    rest = text[position:]
    if rest.strip() or depth != 0:
        return "narrative is not well-formed (an element is left open or text follows the <div>)"
    if not content:
        return "narrative has no content (txt-2)"
    return None
