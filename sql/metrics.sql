-- Analyst-facing views and macros: the DCASE Task 2 metrics (methods.md section 6) in SQL.
-- Ties count half: each distinct score is one ROC segment, so tied positives and negatives
-- form a diagonal step, exactly as scikit-learn's roc_auc_score.

-- Test clips with a known label, joined to their scores. A noisy test clip (noisy_clips)
-- carries its clean clip's labels plus its noise subset and SNR bin; clean clips are
-- noise_subset = snr_bin = 'clean'. Every metric below is per (noise_subset, snr_bin).
CREATE OR REPLACE VIEW scored_clips AS
SELECT s.run_id, s.clip_id, c.dataset, c.scheme, c.machine_type, c.section, c.domain, c.label,
       c.relative_path, s.score, s.decision,
       coalesce(n.subset, 'clean') AS noise_subset, coalesce(n.snr_bin, 'clean') AS snr_bin,
       n.snr_db, n.noise_class, c.clip_id AS source_clip_id
FROM scores s
LEFT JOIN noisy_clips n ON n.noisy_clip_id = s.clip_id
JOIN clips c ON c.clip_id = coalesce(n.clip_id, s.clip_id)
WHERE c.split = 'test' AND c.label IN ('normal', 'anomaly');

-- Evaluation subsets of a section: 'source' = source normals + all anomalies, 'target' =
-- target normals + all anomalies, 'all' = every clip (pAUC, and DCASE 2020's AUC).
CREATE OR REPLACE VIEW eval_subsets AS
SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, score, label = 'anomaly' AS is_pos,
       unnest(CASE WHEN label = 'anomaly' THEN ['source', 'target', 'all']
                   WHEN domain = 'source' THEN ['source', 'all']
                   WHEN domain = 'target' THEN ['target', 'all']
                   ELSE ['all'] END) AS subset
FROM scored_clips;

-- Area of one ROC segment (f0, t0) -> (f1, t1) left of FPR = max_fpr (linear interpolation at the cut).
CREATE OR REPLACE MACRO roc_segment_area(f0, t0, f1, t1, max_fpr) AS
    CASE WHEN f1 <= max_fpr THEN (f1 - f0) * (t0 + t1) / 2
         WHEN f0 < max_fpr THEN (max_fpr - f0) * (2 * t0 + (t1 - t0) * (max_fpr - f0) / (f1 - f0)) / 2
         ELSE 0 END;

-- McClish-standardised partial AUC, as scikit-learn's roc_auc_score(max_fpr=p).
CREATE OR REPLACE MACRO mcclish(partial_area, max_fpr) AS
    0.5 * (1 + (partial_area - max_fpr * max_fpr / 2) / (max_fpr - max_fpr * max_fpr / 2));

-- Harmonic mean of the non-NULL values (0 when one of them is 0, as scipy.stats.hmean).
CREATE OR REPLACE MACRO hmean(x) AS CASE WHEN bool_or(x = 0) THEN 0.0 ELSE count(x) / sum(1.0 / x) END;

-- One row per distinct score in a subset: the ROC segment it adds.
CREATE OR REPLACE VIEW roc_segments AS
WITH pts AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, subset, score,
           count(*) FILTER (WHERE is_pos) AS p, count(*) FILTER (WHERE NOT is_pos) AS n
    FROM eval_subsets GROUP BY ALL
), cum AS (
    SELECT *,
        sum(p) OVER w AS tp, sum(n) OVER w AS fp,
        sum(p) OVER g AS n_pos, sum(n) OVER g AS n_neg
    FROM pts
    WINDOW w AS (PARTITION BY run_id, noise_subset, snr_bin, dataset, machine_type, section, subset ORDER BY score DESC
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
           g AS (PARTITION BY run_id, noise_subset, snr_bin, dataset, machine_type, section, subset)
)
SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, subset, score, n_pos, n_neg,
       (fp - n) / nullif(n_neg, 0)::DOUBLE AS fpr0, (tp - p) / nullif(n_pos, 0)::DOUBLE AS tpr0,
       fp / nullif(n_neg, 0)::DOUBLE AS fpr1, tp / nullif(n_pos, 0)::DOUBLE AS tpr1
FROM cum;

-- AUC and pAUC (max FPR 0.1) per section and subset; NULL when a class is missing.
CREATE OR REPLACE VIEW subset_auc AS
SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, subset,
       any_value(n_pos) AS n_pos, any_value(n_neg) AS n_neg,
       CASE WHEN any_value(n_pos) > 0 AND any_value(n_neg) > 0
            THEN sum(roc_segment_area(fpr0, tpr0, fpr1, tpr1, 1.0)) END AS auc,
       CASE WHEN any_value(n_pos) > 0 AND any_value(n_neg) > 0
            THEN mcclish(sum(roc_segment_area(fpr0, tpr0, fpr1, tpr1, 0.1)), 0.1) END AS pauc
FROM roc_segments GROUP BY ALL;

-- Precision / recall / F1 of the decisions per section and domain (that domain's clips).
CREATE OR REPLACE VIEW decision_metrics AS
WITH c AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, domain,
           count(*) FILTER (WHERE label = 'anomaly' AND decision = 1) AS tp,
           count(*) FILTER (WHERE label = 'normal' AND decision = 1) AS fp,
           count(*) FILTER (WHERE label = 'anomaly' AND decision = 0) AS fn
    FROM scored_clips GROUP BY ALL
)
SELECT *, tp / nullif(tp + fp, 0)::DOUBLE AS prec, tp / nullif(tp + fn, 0)::DOUBLE AS recall,
       2 * tp / nullif(2 * tp + fp + fn, 0)::DOUBLE AS f1
FROM c;

-- DCASE 2021-2025: one row per run and section (sections whose clips all have a domain).
-- Each building block is evaluated once and pivoted, not joined once per column.
CREATE OR REPLACE VIEW section_metrics AS
WITH counts AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section,
           count(*) FILTER (WHERE label = 'normal' AND domain = 'source') AS n_source_normal,
           count(*) FILTER (WHERE label = 'normal' AND domain = 'target') AS n_target_normal,
           count(*) FILTER (WHERE label = 'anomaly') AS n_anomaly,
           count(*) FILTER (WHERE domain IS NULL) AS n_no_domain
    FROM scored_clips GROUP BY ALL
), aucs AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section,
           max(auc) FILTER (WHERE subset = 'source') AS auc_source,
           max(auc) FILTER (WHERE subset = 'target') AS auc_target,
           max(pauc) FILTER (WHERE subset = 'all') AS pauc
    FROM subset_auc GROUP BY ALL
), decisions AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section,
           max(prec) FILTER (WHERE domain = 'source') AS precision_source,
           max(recall) FILTER (WHERE domain = 'source') AS recall_source,
           max(f1) FILTER (WHERE domain = 'source') AS f1_source,
           max(prec) FILTER (WHERE domain = 'target') AS precision_target,
           max(recall) FILTER (WHERE domain = 'target') AS recall_target,
           max(f1) FILTER (WHERE domain = 'target') AS f1_target
    FROM decision_metrics GROUP BY ALL
)
SELECT k.run_id, k.noise_subset, k.snr_bin, k.dataset, k.machine_type, k.section,
       k.n_source_normal, k.n_target_normal, k.n_anomaly,
       a.auc_source, a.auc_target, a.pauc,
       d.precision_source, d.recall_source, d.f1_source,
       d.precision_target, d.recall_target, d.f1_target
FROM counts k
LEFT JOIN aucs a USING (run_id, noise_subset, snr_bin, dataset, machine_type, section)
LEFT JOIN decisions d USING (run_id, noise_subset, snr_bin, dataset, machine_type, section)
WHERE k.n_no_domain = 0;

-- Official score per run and dataset: harmonic mean over all AUC_source, AUC_target and pAUC
-- values of all machine types and sections; plus the harmonic and arithmetic means of each.
CREATE OR REPLACE VIEW run_metrics AS
WITH parts AS (  -- one scan of section_metrics, three rows per section
    SELECT run_id, noise_subset, snr_bin, dataset, unnest(['auc_source', 'auc_target', 'pauc']) AS part,
           unnest([auc_source, auc_target, pauc]) AS v
    FROM section_metrics
)
SELECT p.run_id, p.noise_subset, p.snr_bin, p.dataset, any_value(r.encoder) AS encoder, any_value(r.normalization) AS normalization,
       any_value(r.transductive) AS transductive,
       count(*) FILTER (WHERE part = 'pauc') AS sections,
       hmean(v) AS official_score,
       hmean(CASE WHEN part = 'auc_source' THEN v END) AS hmean_auc_source,
       hmean(CASE WHEN part = 'auc_target' THEN v END) AS hmean_auc_target,
       hmean(CASE WHEN part = 'pauc' THEN v END) AS hmean_pauc,
       avg(CASE WHEN part = 'auc_source' THEN v END) AS mean_auc_source,
       avg(CASE WHEN part = 'auc_target' THEN v END) AS mean_auc_target,
       avg(CASE WHEN part = 'pauc' THEN v END) AS mean_pauc,
       count(*) FILTER (WHERE v IS NULL) AS undefined_parts
FROM parts p JOIN runs r USING (run_id)
GROUP BY p.run_id, p.noise_subset, p.snr_bin, p.dataset;

-- DCASE 2020 (and MIMII): per machine id, no domains; AUC and pAUC over all test clips.
CREATE OR REPLACE VIEW section_metrics_2020 AS
SELECT a.run_id, a.noise_subset, a.snr_bin, a.dataset, a.machine_type, a.section AS machine_id,
       a.n_neg AS n_normal, a.n_pos AS n_anomaly, a.auc, a.pauc
FROM subset_auc a
WHERE a.subset = 'all' AND (a.run_id, a.noise_subset, a.snr_bin, a.dataset, a.machine_type, a.section) IN (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section FROM scored_clips GROUP BY ALL HAVING bool_and(domain IS NULL));

CREATE OR REPLACE VIEW run_metrics_2020 AS
SELECT run_id, noise_subset, snr_bin, dataset, count(*) AS machine_ids,
       avg(auc) AS mean_auc, avg(pauc) AS mean_pauc, hmean(auc) AS hmean_auc, hmean(pauc) AS hmean_pauc
FROM section_metrics_2020 GROUP BY ALL;
