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
-- Precision is 0, not NULL, when the domain has no positive decision (as the official evaluator).
CREATE OR REPLACE VIEW decision_metrics AS
WITH c AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, domain,
           count(*) FILTER (WHERE label = 'anomaly' AND decision = 1) AS tp,
           count(*) FILTER (WHERE label = 'normal' AND decision = 1) AS fp,
           count(*) FILTER (WHERE label = 'anomaly' AND decision = 0) AS fn
    FROM scored_clips GROUP BY ALL
)
SELECT *, coalesce(tp / nullif(tp + fp, 0)::DOUBLE, 0.0) AS prec, tp / nullif(tp + fn, 0)::DOUBLE AS recall,
       2 * tp / nullif(2 * tp + fp + fn, 0)::DOUBLE AS f1
FROM c;

-- Every metric of a section from one sort of its distinct scores (what section_metrics and
-- section_metrics_2020 read). Per distinct score: anomalies p, normals n (ns source, nt target),
-- and the counts strictly below it. AUC is the Mann-Whitney statistic with ties counting half,
-- sum_s p_s (n_below_s + n_s / 2) / (P N) (= (R+ - P(P+1)/2) / (P N) with average ranks);
-- pAUC sums the ROC segments of the same ordering up to FPR 0.1 (McClish).
-- Sections are numbered first (sid: a row number per distinct key, exact, unlike a hash of the
-- keys), so the grouping by score and the sorted window work on (integer, score) instead of six
-- text columns: ~25% faster on 1e6 scores (README, benchmarks/scoring.py). The join on the keys
-- loses no rows: every key column is NOT NULL (schema.sql; noise_subset / snr_bin coalesced).
CREATE OR REPLACE VIEW section_curves AS
WITH sec AS (
    SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section, row_number() OVER () AS sid
    FROM (SELECT DISTINCT run_id, noise_subset, snr_bin, dataset, machine_type, section FROM scored_clips)
), grp AS (
    SELECT sid, score,
           count(*) FILTER (WHERE label = 'anomaly') AS p,
           count(*) FILTER (WHERE label = 'normal') AS n,
           count(*) FILTER (WHERE label = 'normal' AND domain = 'source') AS ns,
           count(*) FILTER (WHERE label = 'normal' AND domain = 'target') AS nt,
           count(*) FILTER (WHERE domain IS NULL) AS no_domain,
           count(*) FILTER (WHERE domain = 'source' AND label = 'anomaly' AND decision = 1) AS tp_s,
           count(*) FILTER (WHERE domain = 'source' AND label = 'normal' AND decision = 1) AS fp_s,
           count(*) FILTER (WHERE domain = 'source' AND label = 'anomaly') AS pos_s,
           count(*) FILTER (WHERE domain = 'target' AND label = 'anomaly' AND decision = 1) AS tp_t,
           count(*) FILTER (WHERE domain = 'target' AND label = 'normal' AND decision = 1) AS fp_t,
           count(*) FILTER (WHERE domain = 'target' AND label = 'anomaly') AS pos_t
    FROM scored_clips JOIN sec USING (run_id, noise_subset, snr_bin, dataset, machine_type, section)
    GROUP BY sid, score
), cum AS (
    SELECT *,
           sum(p) OVER w - p AS p_below, sum(n) OVER w - n AS n_below,
           sum(ns) OVER w - ns AS ns_below, sum(nt) OVER w - nt AS nt_below,
           sum(p) OVER s AS pos, sum(n) OVER s AS neg
    FROM grp
    WINDOW s AS (PARTITION BY sid),
           w AS (s ORDER BY score ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), agg AS (
    SELECT sid,
           sum(ns)::BIGINT AS n_source_normal, sum(nt)::BIGINT AS n_target_normal, sum(p)::BIGINT AS n_anomaly,
           sum(n)::BIGINT AS n_normal, sum(no_domain)::BIGINT AS n_no_domain,
           CASE WHEN sum(p) > 0 AND sum(ns) > 0 THEN sum(p * (ns_below + ns / 2.0)) / (sum(p) * sum(ns)) END AS auc_source,
           CASE WHEN sum(p) > 0 AND sum(nt) > 0 THEN sum(p * (nt_below + nt / 2.0)) / (sum(p) * sum(nt)) END AS auc_target,
           CASE WHEN sum(p) > 0 AND sum(n) > 0 THEN sum(p * (n_below + n / 2.0)) / (sum(p) * sum(n)) END AS auc_all,
           CASE WHEN sum(p) > 0 AND sum(n) > 0 THEN mcclish(sum(roc_segment_area(
               (neg - n_below - n) / neg::DOUBLE, (pos - p_below - p) / pos::DOUBLE,
               (neg - n_below) / neg::DOUBLE, (pos - p_below) / pos::DOUBLE, 0.1)), 0.1) END AS pauc,
           sum(tp_s)::BIGINT AS tp_source, sum(fp_s)::BIGINT AS fp_source, sum(pos_s)::BIGINT AS anomaly_source,
           sum(tp_t)::BIGINT AS tp_target, sum(fp_t)::BIGINT AS fp_target, sum(pos_t)::BIGINT AS anomaly_target
    FROM cum GROUP BY sid
)
SELECT sec.run_id, sec.noise_subset, sec.snr_bin, sec.dataset, sec.machine_type, sec.section, agg.* EXCLUDE (sid)
FROM agg JOIN sec USING (sid);

-- DCASE 2021-2025: one row per run and section (sections whose clips all have a domain).
CREATE OR REPLACE VIEW section_metrics AS
SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section,
       n_source_normal, n_target_normal, n_anomaly,
       auc_source, auc_target, pauc,
       coalesce(tp_source / nullif(tp_source + fp_source, 0)::DOUBLE, 0.0) AS precision_source,
       tp_source / nullif(anomaly_source, 0)::DOUBLE AS recall_source,
       2 * tp_source / nullif(tp_source + fp_source + anomaly_source, 0)::DOUBLE AS f1_source,
       coalesce(tp_target / nullif(tp_target + fp_target, 0)::DOUBLE, 0.0) AS precision_target,
       tp_target / nullif(anomaly_target, 0)::DOUBLE AS recall_target,
       2 * tp_target / nullif(tp_target + fp_target + anomaly_target, 0)::DOUBLE AS f1_target
FROM section_curves
WHERE n_no_domain = 0;

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
SELECT run_id, noise_subset, snr_bin, dataset, machine_type, section AS machine_id,
       n_normal, n_anomaly, auc_all AS auc, pauc
FROM section_curves
WHERE n_no_domain = n_normal + n_anomaly;

CREATE OR REPLACE VIEW run_metrics_2020 AS
SELECT run_id, noise_subset, snr_bin, dataset, count(*) AS machine_ids,
       avg(auc) AS mean_auc, avg(pauc) AS mean_pauc, hmean(auc) AS hmean_auc, hmean(pauc) AS hmean_pauc
FROM section_metrics_2020 GROUP BY ALL;

-- `asd monitor` (sql/README.md): incoming recordings per model version, machine type, section and
-- day recorded (UTC). A clip re-scored by a newer version (--rescore) counts once per version.
CREATE OR REPLACE VIEW detection_summary AS
SELECT model_name, model_version, machine_type, section, CAST(recorded_at AS DATE) AS day,
       count(*) AS clips, sum(decision)::BIGINT AS anomalies, avg(decision) AS anomaly_rate,
       quantile_cont(score, 0.1) AS score_p10, quantile_cont(score, 0.5) AS score_p50,
       quantile_cont(score, 0.9) AS score_p90, max(score) AS score_max, max(threshold) AS threshold
FROM detections
GROUP BY model_name, model_version, machine_type, section, CAST(recorded_at AS DATE);

-- Drift: the share of clips above the threshold per day against the share expected of normal clips.
-- The threshold is the threshold_quantile (q) of the section's normal reference scores, so about
-- 1 - q of normal clips lie above it; a whole-distribution shift shows as share_above / expected_share
-- moving away from 1 (z: binomial z-score of the count above) before single clips become alarms.
CREATE OR REPLACE VIEW detection_drift AS
SELECT *, share_above / expected_share AS ratio,
       (above - clips * expected_share) / sqrt(clips * expected_share * (1 - expected_share)) AS z
FROM (SELECT model_name, model_version, machine_type, section, CAST(recorded_at AS DATE) AS day,
             count(*) AS clips, sum(decision)::BIGINT AS above, avg(decision) AS share_above,
             1 - avg(threshold_quantile) AS expected_share
      FROM detections
      GROUP BY model_name, model_version, machine_type, section, CAST(recorded_at AS DATE));
