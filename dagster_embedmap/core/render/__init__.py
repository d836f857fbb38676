"""Pictures of a data map: a small PNG preview and a standalone, interactive HTML map.

Both take the frame of placed points (``x``, ``y``, ``topic_id``, ``topic_label`` and, for the HTML
map, ``id``, ``text``, ``partition``, any extra metadata columns and optional topic levels
``topic_{L}_id`` / ``topic_{L}_label``) and colour points by topic with the same qualitative
palette; points without a topic (``topic_id == -1``) are light grey and drawn underneath the rest.

- :func:`render_preview_png` draws a static scatter with Pillow (in matplotlib's DejaVu Sans, read
  from its package data without importing it) in the HTML map's colours, labelled by its rules at the
  overview (region titles and the next level's labels, placed without overlap);
  :func:`draw_preview` gives its bytes and the labels it drew.
- :func:`png_markdown` turns that PNG into an inline markdown image for Dagster UI metadata.
- :func:`render_html_map` writes ONE self-contained HTML file (inline CSS/JS/data, no network
  requests; its HTML, CSS and JavaScript are the files in ``static/``, shipped as package data) with
  a canvas scatter that pans, zooms, labels topics, shows a tooltip on hover, and has a legend (the topic tree, or the current colour-by's values) that highlights what is
  clicked, a colour-by choice (topic, broad topic, partition, each extra column) and a search box
  (by words, or by meaning with the data of :func:`semantic_payload`: a static token table of the
  map's model and every record's vector in a small shared space, ranked in the browser).

Modules: ``png`` (the preview), ``html`` (the page's data and its assembly), ``semantic`` (the data
for search by meaning), ``shared`` (palette, input checks), ``static/`` (``map.html``, ``map.css``,
``map.js``, ``semantic.js``: the page itself).

Record texts, ids, metadata (names and values), partition names and topic labels are untrusted.
In the HTML file they only travel inside a JSON ``<script type="application/json">`` block with
``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\uXXXX``, and the page's JS puts them into
the document only through ``textContent`` or canvas ``fillText`` (never ``innerHTML``). The title
is ``html.escape``-d where it appears.

Both writers are atomic (temporary file in the target folder, then ``os.replace``) and create the
target's parent folders. Rows whose ``x`` or ``y`` is null or not finite are left out.
"""

from .html import render_html_map
from .png import draw_preview, png_markdown, render_preview_png
from .semantic import semantic_payload

__all__ = ["render_preview_png", "draw_preview", "png_markdown", "render_html_map", "semantic_payload"]
