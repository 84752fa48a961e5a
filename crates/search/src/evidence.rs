//! What each stage saw of one (query, song) candidate: the inputs of the
//! calibrated confidence (`sampleid-engine`'s fusion) and the `evidence`
//! field of `sampleid query --json`. A stage that did not see the song (or
//! did not run) leaves its part `null`.

use serde::{Deserialize, Serialize};

/// Every stage's view of one candidate song.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The landmark stage's best hypothesis for the song, verified or not.
    pub landmarks: Option<LandmarkEvidence>,
    /// The neural stage's accepted candidates of the song.
    pub neural: Option<NeuralEvidence>,
    /// The chroma alignment of the clip with the song.
    pub chroma: Option<ChromaEvidence>,
    /// The song's nearest stored chroma shingle to the clip's, when the
    /// song is among the nearest songs.
    pub shingles: Option<ShingleEvidence>,
}

/// The library's chroma shingles' view of a song.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShingleEvidence {
    /// Squared distance of the nearest shingle (reduced CENS; 0 is identical).
    pub distance: f64,
    /// `distance` / the median over the nearest songs (below 1: stands out).
    pub relative: f64,
    /// 0 for the nearest song, 1 for the next …
    pub rank: usize,
}

/// A landmark hypothesis after verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandmarkEvidence {
    /// "pairs" or "quads": which landmarks proposed it; "guided": another
    /// stage's hypothesis (offset, time ratio) verified with the song's
    /// landmarks, the frequency scale searched.
    pub method: String,
    /// Verification score: matched share of the mapped reference peaks
    /// beyond chance (Cohen's kappa).
    pub kappa: f64,
    /// Reference peaks matched by a query peak.
    pub matched: usize,
    /// Reference peaks mapped into the query.
    pub mapped: usize,
    /// Pair votes or quad hits of the hypothesis.
    pub votes: usize,
    /// Whether it passed the landmark stage's own acceptance (kappa and
    /// matched peaks at least `[landmarks.search]`'s minimums).
    pub verified: bool,
    /// Where the matched material starts in the query and the song (s).
    pub query_start: f64,
    pub reference_start: f64,
    /// Query duration / reference duration.
    pub time_ratio: f64,
    /// Semitones from the song to the query.
    pub pitch_shift: f64,
    /// Share of the mapped peaks whose energy the query lacks (quiet where
    /// the song is loud): near 0 for the song under noise, reverb or other
    /// music, high for another recording that shares some of its notes.
    /// `null` when it could not be estimated.
    #[serde(default)]
    pub absent: Option<f64>,
}

/// The neural stage's view of a song.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuralEvidence {
    /// Sum of the re-ranker scores of the accepted candidates on the located line.
    pub score: f64,
    /// The same over every accepted candidate of the song.
    pub total: f64,
    /// Accepted candidates of the song.
    pub accepted: usize,
    /// Query segments (the clip's length in segments).
    pub query_segments: usize,
    /// 0 for the song with the highest score, 1 for the next …
    pub rank: usize,
    /// `score` / the sum of every song's `score` in this query.
    pub share: f64,
    /// Where the located line starts in the query and the song (s).
    pub query_start: f64,
    pub reference_start: f64,
    /// Query duration / reference duration, when the line is clear.
    pub time_ratio: Option<f64>,
    /// Whether the stage looked at the song only where the landmarks placed
    /// it (`[query] neural_guided`): its ANN search accepted none of the
    /// song's segments. Such evidence is weighed apart from the ANN's.
    #[serde(default)]
    pub guided: bool,
}

/// The chroma (CENS) subsequence alignment of the clip with the song.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChromaEvidence {
    /// Alignment cost per query frame (cosine distance).
    pub cost: f64,
    /// `cost` / the median of the matching curve (below 1: stands out).
    pub relative_cost: f64,
    /// Semitones from the song to the query, when one shift is clearly best.
    pub pitch_shift: Option<f64>,
}

impl Evidence {
    /// The stages that found the song: a verified landmark hypothesis
    /// ("pairs", "quads", or "guided" when another stage proposed it) and
    /// the neural stage when it accepted candidates, "chroma" when the song
    /// has the nearest chroma shingle.
    pub fn stages(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if let Some(l) = self.landmarks.as_ref().filter(|l| l.verified) {
            out.push(match l.method.as_str() {
                "quads" => "quads",
                "guided" => "guided",
                _ => "pairs",
            });
        }
        if self.neural.as_ref().is_some_and(|n| n.accepted > 0) {
            out.push("neural");
        }
        if self.shingles.as_ref().is_some_and(|s| s.rank == 0) {
            out.push("chroma");
        }
        out
    }
}
