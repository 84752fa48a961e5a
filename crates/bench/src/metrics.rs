//! Retrieval metrics over one query's ranked answers.
//!
//! A ranking is a list of (reference id, score) as a system returned it. The
//! same reference listed twice counts once (its best score). Ties are broken
//! against the system: among equal scores, irrelevant references rank first.

use std::collections::HashSet;

/// One reference in a ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub reference: String,
    pub score: f64,
}

/// Orders the answers by score (descending), keeps each reference's best
/// score, and puts irrelevant references before relevant ones with the same
/// score (pessimistic ties). Returns one flag per rank: relevant or not.
pub fn relevance_by_rank(answers: &[Ranked], relevant: &HashSet<String>) -> Vec<bool> {
    let mut best: Vec<Ranked> = Vec::new();
    for a in answers {
        match best.iter_mut().find(|b| b.reference == a.reference) {
            Some(b) => b.score = b.score.max(a.score),
            None => best.push(a.clone()),
        }
    }
    best.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| relevant.contains(&a.reference).cmp(&relevant.contains(&b.reference)))
    });
    best.iter().map(|b| relevant.contains(&b.reference)).collect()
}

/// 1 if a relevant reference is among the first `k`, else 0.
pub fn hit_at(ranks: &[bool], k: usize) -> f64 {
    if ranks.iter().take(k).any(|&r| r) { 1.0 } else { 0.0 }
}

/// AP@20 as NeuralSampleID computes it (spec §5.4): the mean of the
/// precisions at each relevant reference within the first 20 ranks, divided by
/// the number of relevant references *found* there (not by all relevant ones);
/// 0 when none is found.
pub fn ap20_paper(ranks: &[bool]) -> f64 {
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, &r) in ranks.iter().take(20).enumerate() {
        if r {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    if found == 0 { 0.0 } else { sum / found as f64 }
}

/// Standard average precision: the sum of the precisions at each relevant
/// reference retrieved (at any rank), divided by the number of relevant
/// references. 0 when there is none to find.
pub fn average_precision(ranks: &[bool], n_relevant: usize) -> f64 {
    if n_relevant == 0 {
        return 0.0;
    }
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, &r) in ranks.iter().enumerate() {
        if r {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    sum / n_relevant as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(items: &[(&str, f64)]) -> Vec<Ranked> {
        items
            .iter()
            .map(|(r, s)| Ranked {
                reference: r.to_string(),
                score: *s,
            })
            .collect()
    }

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_relevant_at_rank_three() {
        let r = relevance_by_rank(&ranking(&[("a", 3.0), ("b", 2.0), ("c", 1.0)]), &set(&["c"]));
        assert_eq!(r, vec![false, false, true]);
        assert_eq!(hit_at(&r, 1), 0.0);
        assert_eq!(hit_at(&r, 3), 1.0);
        assert!((ap20_paper(&r) - 1.0 / 3.0).abs() < 1e-12);
        assert!((average_precision(&r, 1) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn ties_are_broken_against_the_system() {
        // The relevant "b" ties with "a" at the top: it counts as rank 2.
        let r = relevance_by_rank(&ranking(&[("b", 5.0), ("a", 5.0)]), &set(&["b"]));
        assert_eq!(r, vec![false, true]);
        assert_eq!(hit_at(&r, 1), 0.0);
        assert_eq!(ap20_paper(&r), 0.5);
    }

    #[test]
    fn duplicates_count_once_with_their_best_score() {
        let r = relevance_by_rank(&ranking(&[("a", 1.0), ("b", 2.0), ("a", 3.0)]), &set(&["a"]));
        assert_eq!(r, vec![true, false]);
    }

    #[test]
    fn nothing_relevant_retrieved() {
        let r = relevance_by_rank(&ranking(&[("x", 1.0)]), &set(&["a"]));
        assert_eq!(hit_at(&r, 10), 0.0);
        assert_eq!(ap20_paper(&r), 0.0);
        assert_eq!(average_precision(&r, 1), 0.0);
        // An empty answer (the system rejected everything).
        assert_eq!(ap20_paper(&[]), 0.0);
        assert_eq!(average_precision(&[], 0), 0.0);
    }

    #[test]
    fn several_relevant_songs_separate_the_two_aps() {
        // Relevant a, c, e; the system finds a (rank 1) and c (rank 3), never e.
        let r = relevance_by_rank(
            &ranking(&[("a", 9.0), ("b", 8.0), ("c", 7.0), ("d", 6.0)]),
            &set(&["a", "c", "e"]),
        );
        assert_eq!(r, vec![true, false, true, false]);
        // Paper: (1/1 + 2/3) / 2 found = 0.8333…
        assert!((ap20_paper(&r) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // Standard: (1/1 + 2/3) / 3 relevant = 0.5555…
        assert!((average_precision(&r, 3) - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn paper_ap_ignores_ranks_past_twenty() {
        let mut r = vec![false; 25];
        r[22] = true;
        assert_eq!(ap20_paper(&r), 0.0);
        assert!((average_precision(&r, 1) - 1.0 / 23.0).abs() < 1e-12);
    }
}
