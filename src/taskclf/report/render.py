"""The report's render step: :class:`ReportData` in, one self-contained HTML page out.

Escaping, because every string here may come from disk (bundle names,
metadata, history notes) and may hold markup:

- HTML text and attributes go through :func:`html.escape`.
- Chart data travels as JSON in a ``<script type="application/json">``
  block, with ``<``, ``>`` and ``&`` written as ``\\u003c``-style escapes
  so no string can close the block (``</script>``) or open a comment.
- Plotly renders labels, hover text and titles as a small HTML subset
  (``<b>``, ``<br>``, ``<a>``); strings for it are entity-escaped first
  (:func:`_plot_text`), so a name like ``<b>x</b>`` shows as written.

plotly.js is inlined from the ``plotly`` package (the ``report`` extra):
no CDN, the file opens offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from taskclf.model_registry.errors import ReportExtraMissingError
from taskclf.report.data import HistoryRow, MatrixView, ReportData

WEBGL_POINT_THRESHOLD = 1_000
"""Above this many points the time chart draws with WebGL (``scattergl``) instead of SVG."""
_TITLE_CHARS = 80
_SCHEMA_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_SCHEMA_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star-square")


def plotly_js() -> str:
    """plotly.js from the installed ``plotly`` package.

    Raises:
        ReportExtraMissingError: plotly is not installed.
    """
    try:
        from plotly.offline import get_plotlyjs
    except ModuleNotFoundError as exc:
        raise ReportExtraMissingError() from exc
    script = str(get_plotlyjs())
    # Inlined verbatim: a closing tag inside it would end the <script> element early.
    if "</script" in script.lower():  # pragma: no cover - a plotly release would have to add one
        raise RuntimeError("plotly.js contains '</script' and cannot be inlined safely")
    return script


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element, whatever its strings hold."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Only strings can contain these characters, where the \\u escapes mean the same.
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _plot_text(value: object, limit: int | None = None) -> str:
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None) -> str:
    return "--" if value is None else f"{value:.4f}"


def render_report(data: ReportData) -> str:
    """The whole report as one HTML string (scripts and styles inlined).

    Raises:
        ReportExtraMissingError: plotly is not installed.
    """
    script = plotly_js()
    figures = _figures(data)
    body = "\n".join(
        [
            _overview_html(data),
            _time_html(data, figures),
            _ranking_html(data),
            _matrices_html(data, figures),
            _history_html(data),
            _aliases_html(data),
        ]
    )
    payload = script_json({"figures": figures})
    return _PAGE.format(
        title=_esc(f"taskclf registry report: {data.overview.models_dir}"),
        style=_STYLE,
        body=body,
        payload=payload,
        plotly=script,
        script=_SCRIPT,
    )


def _figures(data: ReportData) -> list[dict[str, Any]]:
    figures = []
    if data.points or data.production:
        figures.append(_time_figure(data))
    for index, view in enumerate(data.matrices):
        figures.append(_matrix_figure(view, f"chart-matrix-{index}"))
    if len(data.matrices) == 2:
        left, right = data.matrices
        if left.label_names == right.label_names:
            figures.append(_difference_figure(left, right))
        figures.append(_scores_figure(left, right))
    return figures


def _time_figure(data: ReportData) -> dict[str, Any]:
    kind = "scattergl" if len(data.points) > WEBGL_POINT_THRESHOLD else "scatter"
    versions = sorted({p.schema_version for p in data.points})
    traces: list[dict[str, Any]] = []
    for eligible in (True, False):
        for number, version in enumerate(versions):
            points = [
                p for p in data.points if p.eligible is eligible and p.schema_version == version
            ]
            if not points:
                continue
            colour = _SCHEMA_COLOURS[number % len(_SCHEMA_COLOURS)]
            symbol = _SCHEMA_SYMBOLS[number % len(_SCHEMA_SYMBOLS)]
            status = "eligible" if eligible else "ineligible"
            traces.append(
                {
                    "type": kind,
                    "mode": "markers",
                    "name": _plot_text(f"{status} · schema {version}", _TITLE_CHARS),
                    "x": [p.created_at for p in points],
                    "y": [p.macro_f1 for p in points],
                    "text": [_plot_text(p.model_id, _TITLE_CHARS) for p in points],
                    "hovertemplate": "%{text}<br>macro F1 %{y:.4f}<br>created %{x} UTC"
                    f"<extra>{_plot_text(status)} · {_plot_text(version, 20)}</extra>",
                    "marker": {
                        # Open symbols are stroked in the marker colour.
                        "color": colour,
                        "symbol": symbol if eligible else f"{symbol}-open",
                        "size": 8 if eligible else 7,
                        "line": {"color": colour, "width": 1.5},
                        "opacity": 0.85 if eligible else 0.6,
                    },
                }
            )
    active = [p for p in data.points if p.active]
    if active:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "active",
                "x": [p.created_at for p in active],
                "y": [p.macro_f1 for p in active],
                "text": ["active"] * len(active),
                "textposition": "top center",
                "hovertext": [_plot_text(p.model_id, _TITLE_CHARS) for p in active],
                "hovertemplate": "%{hovertext}<br>macro F1 %{y:.4f}<extra>active</extra>",
                "marker": {"symbol": "star", "size": 18, "color": "#d62728"},
            }
        )
    steps = [s for s in data.production if s.macro_f1 is not None]
    if steps:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "in production",
                "line": {"shape": "hv", "color": "#d62728", "width": 2},
                "marker": {"size": 6, "color": "#d62728"},
                "x": [s.at for s in steps],
                "y": [s.macro_f1 for s in steps],
                "hovertext": [
                    _plot_text(
                        f"{s.at} UTC: {s.from_model_id or 'nothing'} → {s.model_id}"[:200]
                        + f" ({s.reason or 'no reason recorded'})"[:120]
                    )
                    for s in steps
                ],
                "hovertemplate": "%{hovertext}<br>macro F1 %{y:.4f}<extra>in production</extra>",
            }
        )
    return {
        "id": "chart-time",
        "data": traces,
        "layout": {
            "height": 460,
            "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
            "xaxis": {"title": {"text": "created_at / switched at (UTC)"}, "type": "date"},
            "yaxis": {"title": {"text": "macro F1"}},
            "legend": {"orientation": "h", "y": -0.18},
            "hovermode": "closest",
        },
    }


def _matrix_figure(view: MatrixView, element_id: str) -> dict[str, Any]:
    labels = [_plot_text(label, 30) for label in view.label_names]
    return {
        "id": element_id,
        "data": [
            {
                "type": "heatmap",
                "z": view.normalised,
                "x": labels,
                "y": labels,
                "text": view.counts,
                "zmin": 0,
                "zmax": 1,
                "colorscale": "Blues",
                "reversescale": True,
                "texttemplate": "%{z:.2f}",
                "hovertemplate": "true %{y}<br>predicted %{x}<br>%{z:.1%} of the row"
                "<br>%{text} samples<extra></extra>",
                "colorbar": {"title": {"text": "share of row"}},
            }
        ],
        "layout": {
            "title": {
                "text": f"{_plot_text(view.role)}: {_plot_text(view.model_id, 60)}"
                f"<br><sub>macro F1 {view.macro_f1:.4f} · weighted F1 {view.weighted_f1:.4f}</sub>"
            },
            "height": 480,
            "margin": {"l": 110, "r": 10, "t": 80, "b": 100},
            "xaxis": {"title": {"text": "predicted"}, "tickangle": -40, "automargin": True},
            "yaxis": {"title": {"text": "true"}, "autorange": "reversed", "automargin": True},
        },
    }


def _difference_figure(left: MatrixView, right: MatrixView) -> dict[str, Any]:
    labels = [_plot_text(label, 30) for label in left.label_names]
    change = [
        [b - a for a, b in zip(row_a, row_b, strict=True)]
        for row_a, row_b in zip(left.normalised, right.normalised, strict=True)
    ]
    # More of a row on the diagonal is better, more off it is worse: flip the
    # off-diagonal sign so that one colour means "right is better" everywhere.
    better = [[v if i == j else -v for j, v in enumerate(row)] for i, row in enumerate(change)]
    bound = max((abs(v) for row in change for v in row), default=0.0) or 1.0
    return {
        "id": "chart-matrix-diff",
        "data": [
            {
                "type": "heatmap",
                "z": better,
                # Per-cell text: heatmap texttemplates cannot format customdata.
                "text": [[f"{v:+.2f}" for v in row] for row in change],
                "x": labels,
                "y": labels,
                "zmin": -bound,
                "zmax": bound,
                "colorscale": "RdBu",
                "reversescale": True,
                "texttemplate": "%{text}",
                "hovertemplate": "true %{y}<br>predicted %{x}<br>share of row: right - left "
                "%{text}<extra></extra>",
                "colorbar": {"title": {"text": "right better"}},
            }
        ],
        "layout": {
            "title": {
                "text": "change from left to right (share of row)<br><sub>blue: the right "
                "bundle is better there, red: worse</sub>"
            },
            "height": 480,
            "margin": {"l": 110, "r": 10, "t": 80, "b": 100},
            "xaxis": {"title": {"text": "predicted"}, "tickangle": -40, "automargin": True},
            "yaxis": {"title": {"text": "true"}, "autorange": "reversed", "automargin": True},
        },
    }


def _scores_figure(left: MatrixView, right: MatrixView) -> dict[str, Any]:
    labels = list(left.label_names) + [x for x in right.label_names if x not in left.label_names]
    traces = []
    metrics = ("precision", "recall", "f1")
    for row, metric in enumerate(metrics, start=1):
        for view, colour in ((left, "#1f77b4"), (right, "#ff7f0e")):
            by_label = {score.label: getattr(score, metric) for score in view.scores}
            traces.append(
                {
                    "type": "bar",
                    "name": _plot_text(f"{view.role}: {view.model_id}", 60),
                    "legendgroup": _plot_text(view.model_id, 60),
                    "showlegend": row == 1,
                    "x": [_plot_text(label, 30) for label in labels],
                    "y": [by_label.get(label) for label in labels],
                    "marker": {"color": colour},
                    "xaxis": f"x{row if row > 1 else ''}",
                    "yaxis": f"y{row if row > 1 else ''}",
                    "hovertemplate": f"%{{x}}<br>{metric} %{{y:.3f}}<extra></extra>",
                }
            )
    layout: dict[str, Any] = {
        "height": 620,
        "barmode": "group",
        "margin": {"l": 60, "r": 10, "t": 30, "b": 90},
        "legend": {"orientation": "h", "y": 1.08},
    }
    domains = ((0.7, 1.0), (0.36, 0.64), (0.0, 0.3))
    for row, (metric, domain) in enumerate(zip(metrics, domains, strict=True), start=1):
        suffix = str(row) if row > 1 else ""
        layout[f"yaxis{suffix}"] = {
            "domain": list(domain),
            "range": [0, 1],
            "title": {"text": metric},
            "anchor": f"x{suffix}",
        }
        layout[f"xaxis{suffix}"] = {
            "anchor": f"y{suffix}",
            "showticklabels": row == len(metrics),
            "tickangle": -40,
        }
    return {"id": "chart-scores", "data": traces, "layout": layout}


def _notes_html(*notes: str | None) -> str:
    return "".join(f'<p class="note">{_esc(note)}</p>' for note in notes if note)


def _overview_html(data: ReportData) -> str:
    o = data.overview
    if o.active_model_id is None:
        active = '<span class="bad">none</span>'
    else:
        active = f'<span class="mono">{_esc(o.active_model_id)}</span>'
    health = (
        '<span class="good">healthy</span>'
        if o.pointer_healthy
        else '<span class="bad">problems found</span>'
    )
    findings = "".join(f"<li>{_esc(f)}</li>" for f in o.pointer_findings)
    excluded = "".join(
        f"<li><span class=mono>{_esc(reason)}</span>: {count}</li>"
        for reason, count in o.excluded.items()
    )
    missing = "".join(f"<li>{_esc(m)}</li>" for m in data.missing)
    registry = "healthy" if o.registry_healthy else "unhealthy (see `taskclf model verify`)"
    return f"""
<section id="overview">
<h1>Model registry report</h1>
<dl class="overview">
<dt>Registry</dt><dd class="mono">{_esc(o.models_dir)}</dd>
<dt>Generated at</dt><dd>{_esc(o.generated_at)}</dd>
<dt>Active bundle</dt><dd id="active-bundle">{active}</dd>
<dt>Pointer</dt><dd id="pointer-health">{health}{f"<ul>{findings}</ul>" if findings else ""}</dd>
<dt>Registry health</dt><dd>{_esc(registry)}</dd>
<dt>Bundles</dt><dd id="counts">{o.bundles} scanned · {o.valid} valid · {o.eligible} eligible
 · {o.bundles - o.eligible} excluded</dd>
<dt>Excluded by reason</dt><dd>{f"<ul>{excluded}</ul>" if excluded else "none"}</dd>
</dl>
{f'<div class="missing"><strong>Not shown</strong><ul>{missing}</ul></div>' if missing else ""}
</section>"""


def _chart_div(element_id: str, figures: Sequence[dict[str, Any]]) -> str:
    if any(figure["id"] == element_id for figure in figures):
        return f'<div class="chart" id="{element_id}"></div>'
    return ""


def _time_html(data: ReportData, figures: Sequence[dict[str, Any]]) -> str:
    chart = _chart_div("chart-time", figures)
    empty = "" if chart else '<p class="note">No bundle has both metrics and a created_at.</p>'
    return f"""
<section id="quality">
<h2>Quality over time</h2>
<p>Every bundle's macro F1 by <code>created_at</code>: filled markers are eligible, open
markers ineligible, colour and shape tell schema versions apart, the star is the active bundle.
The red step line is what was in production when (from the pointer history; hover a step
for the switch and its reason).</p>
{_notes_html(data.points_note)}{chart}{empty}
</section>"""


_RANKING_COLUMNS = (
    ("#", "num"),
    ("model_id", "text"),
    ("created_at", "text"),
    ("schema", "text"),
    ("macro F1", "num"),
    ("weighted F1", "num"),
    ("min precision", "num"),
    ("eligible", "text"),
    ("exclusion reason", "text"),
)


_RANKING_CELL_CLASSES = ("", "id", "date", "schema", "", "", "", "", "")


def _ranking_html(data: ReportData) -> str:
    head = "".join(
        f'<th data-type="{kind}" tabindex="0" title="sort">{_esc(name)}</th>'
        for name, kind in _RANKING_COLUMNS
    )
    body = []
    for entry in data.ranking:
        row = entry.row
        schema = f"{entry.schema_version or '--'} · {row.schema_hash or '--'}"
        marker = ' <span class="badge">active</span>' if row.active else ""
        cells = [
            (str(entry.rank), str(entry.rank)),
            (f'<span class="mono">{_esc(row.model_id)}</span>{marker}', row.model_id),
            (_esc(row.created_at or "--"), row.created_at or ""),
            (_esc(schema), schema),
            (_num(row.macro_f1), _sort_num(row.macro_f1)),
            (_num(row.weighted_f1), _sort_num(row.weighted_f1)),
            (_num(row.min_prec), _sort_num(row.min_prec)),
            ("yes" if row.eligible else '<span class="bad">no</span>', str(row.eligible)),
            (_esc(row.notes or ""), row.notes or ""),
        ]
        tds = "".join(
            f'<td class="{css}" data-value="{_esc(value)}">{shown}</td>'
            for (shown, value), css in zip(cells, _RANKING_CELL_CLASSES, strict=True)
        )
        css = ' class="active-row"' if row.active else ""
        body.append(f"<tr{css}>{tds}</tr>")
    if not body:
        table = '<p class="note">No bundles to rank.</p>'
    else:
        table = f"""<p><label>Filter <input id="ranking-filter" type="search"
 placeholder="model id, schema, reason..."></label> <span id="ranking-count"></span></p>
<div class="scroll"><table id="ranking" class="sortable">
<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>"""
    return f"""
<section id="ranking-section">
<h2>Ranking</h2>
<p>Bundles by macro F1 (nulls last), as <code>taskclf train list</code> ranks them; click a
header to sort, type to filter.</p>
{_notes_html(data.ranking_note)}{table}
</section>"""


def _sort_num(value: float | None) -> str:
    return "" if value is None else repr(value)


def _matrices_html(data: ReportData, figures: Sequence[dict[str, Any]]) -> str:
    charts = "".join(_chart_div(f"chart-matrix-{i}", figures) for i in range(len(data.matrices)))
    diff = _chart_div("chart-matrix-diff", figures)
    scores = _chart_div("chart-scores", figures)
    empty = "" if charts else '<p class="note">No bundle with metrics to show.</p>'
    return f"""
<section id="matrices">
<h2>Confusion matrices</h2>
<p>Rows are true labels, columns predictions, each row divided by its count (hover for the
counts). Left: {_esc(data.matrices[0].role if data.matrices else "--")}; right:
{_esc(data.matrices[1].role if len(data.matrices) > 1 else "--")}.</p>
{_notes_html(data.matrices_note)}<div class="pair">{charts}</div>{empty}
{f'<div class="pair">{diff}<div></div></div>' if diff else ""}
{f"<h3>Per-class precision, recall and F1</h3>{scores}" if scores else ""}
</section>"""


def _history_table(history: Sequence[HistoryRow], table_id: str) -> str:
    """A pointer's changes, newest first, with who made each and why."""
    rows = "".join(
        f"<tr><td>{_esc(h.at)}</td><td class=mono>{_esc(h.from_model_id or '--')}</td>"
        f"<td class=mono>{_esc(h.to_model_id)}{' (pinned)' if h.pinned else ''}</td>"
        f"<td>{_num(h.macro_f1)}</td><td>{_esc(h.reason or '--')}</td>"
        f"<td>{_esc(h.actor or '--')}</td><td>{_esc(h.message or '--')}</td></tr>"
        for h in reversed(history)
    )
    return (
        f'<div class="scroll"><table id="{_esc(table_id)}"><thead><tr><th>when</th>'
        "<th>from</th><th>to</th><th>macro F1</th><th>reason</th><th>who</th><th>why</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
        if rows
        else '<p class="note">The pointer history is empty.</p>'
    )


def _aliases_html(data: ReportData) -> str:
    """Every alias (issue 14): where it points, whether pinned, and its own timeline."""
    others = [alias for alias in data.aliases if alias.name != "active"]
    if not others:
        return ""
    summary = "".join(
        f"<tr><td class=mono>{_esc(a.name)}</td><td class=mono>{_esc(a.model_id or '--')}</td>"
        f"<td>{'yes' if a.pinned else 'no'}</td><td>{_esc(a.last_moved_at or '--')}</td>"
        f"<td>{_esc(a.problem or 'ok')}</td></tr>"
        for a in data.aliases
    )
    timelines = "".join(
        f"<h3>Alias <code>{_esc(a.name)}</code></h3>"
        f"{_history_table(a.history, f'history-alias-{a.name}')}"
        for a in others
    )
    return f"""
<section id="aliases-section">
<h2>Aliases</h2>
<p>Every named pointer: where it points now, whether it is pinned (promotion and self-heal
never move a pinned alias), and when it last moved; then each alias's own history, newest
first (the <code>active</code> alias's is the pointer history above).</p>
<div class="scroll"><table id="aliases"><thead><tr><th>alias</th><th>bundle</th><th>pinned</th>
<th>last moved</th><th>status</th></tr></thead><tbody>{summary}</tbody></table></div>
{timelines}
</section>"""


def _history_html(data: ReportData) -> str:
    table = _history_table(data.history, "history")
    return f"""
<section id="history-section">
<h2>Pointer history</h2>
<p>Every switch of <code>active.json</code>, newest first.</p>
{table}
</section>"""


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;
padding:0 24px 48px;color:#1d1d1f}
h1{margin-top:24px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
.mono,code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
dl.overview{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}
dl.overview dt{font-weight:600}dl.overview dd{margin:0;overflow-wrap:anywhere}
dl.overview ul{margin:2px 0;padding-left:18px}
.good{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.note{color:#57606a;font-style:italic}
.missing{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
.missing ul{margin:4px 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.chart{min-height:300px}
.scroll{max-height:560px;overflow:auto;border:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top;
overflow-wrap:anywhere;max-width:420px}
th{position:sticky;top:0;background:#f6f8fa;cursor:pointer;user-select:none;white-space:nowrap}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
tr.active-row{background:#fff1f0}
td.id{min-width:26ch}td.date{min-width:24ch}td.schema{min-width:17ch}
.badge{background:#d62728;color:#fff;border-radius:8px;padding:0 6px;font-size:11px}
"""

_SCRIPT = """
(function () {
  "use strict";
  var payload = JSON.parse(document.getElementById("report-data").textContent);
  var config = {responsive: true, displaylogo: false};
  var drawn = payload.figures.map(function (figure) {
    return Plotly.newPlot(figure.id, figure.data, figure.layout, config);
  });
  Promise.all(drawn).then(function () {
    // Milliseconds since navigation start: what bench/report.py reports as render time.
    document.body.setAttribute("data-plots-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-plots-drawn", String(drawn.length));
  });

  var table = document.getElementById("ranking");
  if (!table) { return; }
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  var filter = document.getElementById("ranking-filter");
  var count = document.getElementById("ranking-count");
  function cellValue(row, index, numeric) {
    var text = row.cells[index].getAttribute("data-value");
    if (!numeric) { return text.toLowerCase(); }
    return text === "" ? null : parseFloat(text);
  }
  function sortBy(index) {
    var header = headers[index];
    var numeric = header.getAttribute("data-type") === "num";
    var descending = !header.classList.contains("desc");
    for (var i = 0; i < headers.length; i++) { headers[i].classList.remove("asc", "desc"); }
    header.classList.add(descending ? "desc" : "asc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(headers, function (header, index) {
    header.addEventListener("click", function () { sortBy(index); });
    header.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { sortBy(index); }
    });
  });
  function applyFilter() {
    var query = filter.value.toLowerCase();
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var match = row.textContent.toLowerCase().indexOf(query) !== -1;
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    count.textContent = shown + " of " + body.rows.length + " rows";
  }
  filter.addEventListener("input", applyFilter);
  applyFilter();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
<script type="application/json" id="report-data">{payload}</script>
<script>{plotly}</script>
<script>{script}</script>
</body>
</html>
"""
