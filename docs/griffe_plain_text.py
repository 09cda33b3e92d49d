"""A griffe extension for the API pages: the docstrings are plain text with
``code`` spans, not HTML, so a placeholder such as "<pad>" or
"<slot>.<param>" outside a code span is shown as written instead of being
taken for an HTML tag (and vanishing), and a product such as ids[b*S : (b+1)*S]
keeps its asterisks instead of turning into emphasis."""

import re

import griffe

CODE = re.compile(r"(``.*?``|`[^`\n]*`)", re.S)
TAG = re.compile(r"<(/?[A-Za-z_][^<>\n]*)>")
PRODUCT = re.compile(r"(?<=[^\s*])\*(?=[^\s*])")  # an asterisk between two non-blanks: a product


def plain(text: str) -> str:
    """``text`` with every <...> outside code spans written as &lt;...&gt;, and
    every asterisk between two non-blanks escaped."""
    parts = CODE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = PRODUCT.sub(r"\\*", TAG.sub(r"&lt;\1&gt;", parts[i]))
    return "".join(parts)


class PlainTextDocstrings(griffe.Extension):
    """Escapes HTML-like placeholders in every docstring griffe loads."""

    def on_object(self, *, obj, **kwargs) -> None:  # griffe calls it for each object loaded
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
