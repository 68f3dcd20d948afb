"""Reading rendered crosssell widgets in tests: which products each widget shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Widget:
    """One ``data-crosssell`` root and the recommended items inside it."""

    name: str
    attrs: dict[str, str]
    items: list[dict[str, str]] = field(default_factory=list)
    checkboxes: list[dict[str, str]] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [int(i["data-product-id"]) for i in self.items]


class _Parser(HTMLParser):
    VOID = {"input", "img", "br", "hr", "meta", "link", "source"}

    def __init__(self) -> None:
        super().__init__()
        self.widgets: list[Widget] = []
        self.stack: list[tuple[str, Widget | None]] = []

    def _current(self) -> Widget | None:
        for _, w in reversed(self.stack):
            if w is not None:
                return w
        return None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        root = None
        if "data-crosssell" in a:
            root = Widget(a["data-crosssell"], a)
            self.widgets.append(root)
        current = root or self._current()
        if current is not None and root is None:
            if "data-product-id" in a:
                current.items.append(a)
            if tag == "form":
                current.forms.append(a)
            if tag == "input":
                current.inputs.append(a)
                if a.get("type") == "checkbox":
                    current.checkboxes.append(a)
        if tag not in self.VOID:
            self.stack.append((tag, root))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        current = self._current()
        if current is not None and data.strip():
            current.text.append(data.strip())


def widgets(html: str) -> dict[str, Widget]:
    """The widgets of a page by name (``"frequently-bought-together"``...)."""
    parser = _Parser()
    parser.feed(html)
    return {w.name: w for w in parser.widgets}
