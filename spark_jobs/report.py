"""The evaluation report: one self-contained HTML page (plots embedded as PNG) people can open."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _pr_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], threshold_point: tuple[float, float]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (recall, precision) in curves.items():
        ax.step(recall, precision, where="post", label=name)
    ax.plot([threshold_point[0]], [threshold_point[1]], "ko", label="chosen threshold")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title("Precision-recall on the test period")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return _png(fig)


def _confusion_plot(cm: dict[str, int]) -> str:
    import matplotlib.pyplot as plt

    m = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.imshow(np.log10(m + 1), cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=12, color="black")
    ax.set_xticks([0, 1], ["predicted legit", "predicted fraud"])
    ax.set_yticks([0, 1], ["legit", "fraud"])
    ax.set_title("Confusion matrix (test, at threshold)")
    return _png(fig)


def _importance_plot(importances: dict[str, float], title: str) -> str:
    import matplotlib.pyplot as plt

    items = sorted(importances.items(), key=lambda kv: kv[1])[-20:]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4472c4")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(
    *,
    version: str,
    model_type: str,
    metrics: dict[str, Any],
    splits: dict[str, dict[str, Any]],
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    importances: dict[str, float],
    importance_method: str,
    comparison: list[dict[str, Any]],
    promotion: dict[str, Any] | None,
    validation_docs: str | None,
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    cm = metrics["confusion_matrix"]
    pr = _pr_plot(curves, (metrics["recall"], metrics["precision"]))
    conf = _confusion_plot(cm)
    imp = _importance_plot(importances, f"Feature importance ({importance_method})")
    headline = [
        {"metric": k, "value": metrics[k]}
        for k in (
            "roc_auc",
            "pr_auc",
            "precision",
            "recall",
            "f1",
            "threshold",
            "recall_at_1pct_fpr",
            "recall_at_0_1pct_fpr",
        )
    ]
    split_rows = [{"split": k, **v} for k, v in splits.items()]
    cmp_cols = ["model", "roc_auc", "pr_auc", "precision", "recall", "f1", "recall_at_1pct_fpr", "fit_seconds"]
    promo = f"<pre>{html.escape(json.dumps(promotion, indent=2))}</pre>" if promotion else "<p>not decided</p>"
    docs = (
        f'<p>Data validation: <a href="../../{html.escape(validation_docs)}">Data Docs</a></p>'
        if validation_docs
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fraud model {html.escape(version)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{background:#f0f0f0}}
.grid{{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}}</style></head><body>
<h1>Fraud model <code>{html.escape(version)}</code> ({html.escape(model_type)})</h1>
<p>Judged on the test period, after the training and validation periods. The threshold was chosen on the
validation period ({html.escape(str(metrics.get("threshold_method", "max F1")))}).</p>
<h2>Headline metrics (test period)</h2>{_table(headline, ["metric", "value"])}
<h2>Splits</h2>{_table(split_rows, ["split", "rows", "frauds", "start", "end"])}
<div class="grid"><img src="{pr}" alt="PR curve"><img src="{conf}" alt="confusion matrix"></div>
<h2>Model comparison (same split)</h2>{_table(comparison, cmp_cols)}
<h2>Feature importance</h2><img src="{imp}" alt="feature importances">
<h2>Promotion</h2>{promo}
{docs}
</body></html>
"""
