"""Drift with Spark: the per-feature summaries computed by Spark aggregates (only they reach the driver),
and the training job's check of the champion's training period against the newest data. The statistics
and the report are ``fraud_detection.drift``'s, the same for Spark summaries and numpy ones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fraud_detection.drift import REPORTS, DriftResult, Summary, compare, summary_for_record, write_report


def reference_edges_spark(df, kinds: Mapping[str, str], bins: int, relative_error: float = 0.001) -> dict[str, list]:
    """Quantile bin edges of the continuous features (one approxQuantile pass over the reference)."""
    cont = [n for n, k in kinds.items() if k == "continuous"]
    if not cont:
        return {}
    probs = [i / bins for i in range(1, bins)]
    qs = df.approxQuantile(cont, probs, relative_error)
    return {n: sorted({float(v) for v in q}) for n, q in zip(cont, qs, strict=True)}


def summarize_spark(
    df,
    kinds: Mapping[str, str],
    edges: Mapping[str, list[float]],
    *,
    max_distinct: int = 5000,
    sample_rows: int = 20_000,
    seed: int = 0,
) -> dict[str, Summary]:
    """The same summaries as ``summarize_numpy``, computed by Spark: only aggregates reach the driver.

    Pass 1: one ``agg`` with count / mean / variance of every feature and the approximate distinct
    count of the ordinal ones. Pass 2: one grouped count over (feature, value), where the value of a
    continuous feature is its bin index. Ordinal features above ``max_distinct`` distinct values get a
    bounded sample instead (one extra pass each).
    """
    from pyspark.sql import functions as F

    names = list(kinds)
    aggs = []
    for n in names:
        c = F.col(n).cast("double")
        aggs.append(F.count(c).alias(f"n__{n}"))
        if kinds[n] == "continuous":
            aggs += [F.avg(c).alias(f"mean__{n}"), F.var_samp(c).alias(f"var__{n}")]
        if kinds[n] == "ordinal":
            aggs.append(F.approx_count_distinct(c).alias(f"nd__{n}"))
    row = df.agg(*aggs).first().asDict()

    sampled = {n for n in names if kinds[n] == "ordinal" and (row[f"nd__{n}"] or 0) > max_distinct}
    grouped = [n for n in names if n not in sampled]
    pairs = []
    for n in grouped:
        c = F.col(n).cast("double")
        if kinds[n] == "continuous":
            e = list(edges.get(n, []))
            value = F.lit(0.0)
            for edge in e:
                value = value + F.when(c > F.lit(edge), 1.0).otherwise(0.0)
            value = F.when(c.isNull(), F.lit(None).cast("double")).otherwise(value)
        else:
            value = c
        pairs.append(F.struct(F.lit(n).alias("f"), value.alias("v")))
    counts: dict[str, dict[float, int]] = {n: {} for n in grouped}
    if pairs:
        rows = (
            df.select(F.explode(F.array(*pairs)).alias("p"))
            .where(F.col("p.v").isNotNull())
            .groupBy(F.col("p.f").alias("f"), F.col("p.v").alias("v"))
            .count()
            .collect()
        )
        for r in rows:
            counts[r["f"]][float(r["v"])] = int(r["count"])

    out: dict[str, Summary] = {}
    for n in names:
        kind, total = kinds[n], int(row[f"n__{n}"] or 0)
        if kind == "continuous":
            e = list(edges.get(n, []))
            bins = [0] * (len(e) + 1)
            for v, c in counts[n].items():
                bins[int(v)] += c
            var = row[f"var__{n}"]
            out[n] = Summary(
                kind,
                total,
                mean=None if row[f"mean__{n}"] is None else float(row[f"mean__{n}"]),
                var=None if var is None or (isinstance(var, float) and math.isnan(var)) else float(var),
                edges=e,
                bins=bins,
            )
        elif n in sampled:
            frac = min(1.0, 1.2 * sample_rows / max(total, 1))
            pick = (
                df.select(F.col(n).cast("double").alias("x"))
                .where(F.col("x").isNotNull())
                .sample(False, frac, seed)
                .limit(sample_rows)
                .collect()
            )
            out[n] = Summary(kind, total, sample=[float(r["x"]) for r in pick])
        else:
            items = sorted(counts[n].items())
            out[n] = Summary(kind, total, values=[v for v, _ in items], counts=[c for _, c in items])
    return out


def compare_spark(reference_df, current_df, kinds: Mapping[str, str], settings) -> DriftResult:
    edges = reference_edges_spark(reference_df, kinds, settings.drift_psi_bins)
    kw = {"max_distinct": settings.drift_max_distinct, "sample_rows": settings.drift_sample_rows}
    ref = summarize_spark(reference_df, kinds, edges, seed=settings.random_seed, **kw)
    cur = summarize_spark(current_df, kinds, edges, seed=settings.random_seed + 1, **kw)
    return compare(
        ref, cur, alpha=settings.drift_alpha, min_psi=settings.drift_min_psi, psi_bins=settings.drift_psi_bins
    )


# =================================================================================================
# The training job's check: champion's training period vs the newest data not in it
# =================================================================================================


def drift_for_run(spark, settings, store, feats, run_id: str) -> dict[str, Any]:
    """Drift between the champion's training period and the rows after the champion's data end.

    ``feats`` is the features table. Returns the summary the run record keeps
    (``drift_found``, ``features``, ``report``, and ``skipped`` with the reason when nothing was compared).
    """
    from pyspark.sql import functions as F

    from fraud_detection import artifacts
    from fraud_detection.features import FEATURE_KINDS

    def skipped(why: str) -> dict[str, Any]:
        return {"drift_found": False, "features": [], "report": None, "skipped": why}

    pointer = artifacts.read_latest(store)
    if pointer is None:
        return skipped("no champion yet: nothing to compare the new data with")
    manifest = artifacts.read_manifest(store, pointer.version)
    train = manifest.training_data.get("train")
    if train is None or not train.start or not train.end:
        return skipped(f"champion {pointer.version} records no training period")
    data_end = max(s.end for s in manifest.training_data.values() if s.end)
    ts = F.col("trans_date_trans_time")
    ref = feats.where((ts >= F.lit(train.start).cast("timestamp")) & (ts <= F.lit(train.end).cast("timestamp")))
    cur = feats.where(ts > F.lit(data_end).cast("timestamp"))
    if not cur.limit(1).collect():
        return skipped(f"no rows after the champion's data end ({data_end}): no new period to compare")
    if not ref.limit(1).collect():
        return skipped(f"the champion's training period ({train.start} .. {train.end}) is not in the features table")
    kinds = {n: k for n, k in FEATURE_KINDS.items() if n in feats.columns}
    result = compare_spark(ref, cur, kinds, settings)
    cur_range = cur.agg(F.min(ts).alias("lo"), F.max(ts).alias("hi"), F.count(F.lit(1)).alias("n")).first()
    meta = {
        "kind": "training",
        "run_id": run_id,
        "champion_version": pointer.version,
        "reference": {"what": "champion training period", "start": train.start, "end": train.end},
        "current": {
            "what": "rows after the champion's data end",
            "start": str(cur_range["lo"]),
            "end": str(cur_range["hi"]),
            "rows": int(cur_range["n"]),
        },
    }
    key = write_report(store, f"{REPORTS}/{run_id}", result, meta)
    return summary_for_record(result, key, reference=meta["reference"], current=meta["current"])
