//! The one error type of the core. Every failure that user data can cause is a variant here;
//! the Python binding maps each variant to one exception class, once.

use std::path::PathBuf;

/// What went wrong in a rank file, with enough context to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankFileProblem {
    /// The file has no tokens at all.
    Empty,
    /// A line is not `<base64> <rank>`.
    Malformed,
    /// The token field is not valid base64.
    BadBase64,
    /// The rank field is not a non-negative integer that fits in `u32`.
    BadRank,
    /// The same token bytes appear on two lines.
    DuplicateToken { first_line: usize },
    /// The same rank appears on two lines.
    DuplicateRank { first_line: usize },
    /// The ranks are not exactly `0..n`.
    RankGap { missing: u32 },
    /// One of the 256 single-byte tokens is missing, so some text could not be encoded.
    MissingByte { byte: u8 },
    /// A token has zero bytes.
    EmptyToken,
    /// The gzip stream is corrupt.
    BadGzip(String),
}

impl std::fmt::Display for RankFileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "the file holds no tokens"),
            Self::Malformed => write!(f, "expected `<base64 token> <rank>`"),
            Self::BadBase64 => write!(f, "the token is not valid base64"),
            Self::BadRank => write!(f, "the rank is not an integer in 0..=4294967294"),
            Self::DuplicateToken { first_line } => {
                write!(f, "duplicate token (first seen on line {first_line})")
            }
            Self::DuplicateRank { first_line } => {
                write!(f, "duplicate rank (first seen on line {first_line})")
            }
            Self::RankGap { missing } => write!(f, "ranks must be 0..n without gaps; rank {missing} is missing"),
            Self::MissingByte { byte } => {
                write!(f, "the single-byte token 0x{byte:02x} is missing, so some text could not be encoded")
            }
            Self::EmptyToken => write!(f, "a token has no bytes"),
            Self::BadGzip(e) => write!(f, "corrupt gzip data: {e}"),
        }
    }
}

/// Every error the core can return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A rank file is malformed. `line` is 1-based; 0 means the file as a whole.
    #[error("{}{}: {problem}", source_name, if *line > 0 { format!(", line {line}") } else { String::new() })]
    RankFile { source_name: String, line: usize, problem: RankFileProblem },
    /// A vocabulary given in memory is inconsistent (colliding ids, wrong declared size, ...).
    #[error("invalid vocabulary: {0}")]
    Vocab(String),
    /// The split pattern does not compile.
    #[error("invalid split pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    /// The split pattern ran into the regex engine's backtracking limit on this text.
    #[error("the split pattern exceeded the regex backtracking limit searching from byte {offset}: {message}")]
    PatternLimit { offset: usize, message: String },
    /// The text contains a special token that the caller did not allow.
    #[error(
        "Encountered text corresponding to disallowed special token {token:?} at character {char_offset}.\n\
         If you want this text to be encoded as a special token, pass it to `allowed_special`, e.g. \
         `allowed_special={{{token:?}, ...}}`.\n\
         If you want this text to be encoded as normal text, disable the check for this token by passing \
         `disallowed_special=(enc.special_tokens_set - {{{token:?}}})`.\n\
         To disable this check for all special tokens, pass `disallowed_special=()`."
    )]
    DisallowedSpecial { token: String, char_offset: usize },
    /// A byte of the text has no token (only possible with a vocabulary that lacks single bytes).
    #[error("cannot encode byte 0x{byte:02x} at byte offset {offset}: the vocabulary has no token for it")]
    Unencodable { byte: u8, offset: usize },
    /// A token id does not exist in this vocabulary.
    #[error("the {model} model cannot cover the piece {piece:?} and the file names no unknown token for it")]
    Uncoverable { model: &'static str, piece: String },

    /// One unit of the text (a pre-tokenized piece, or the whole normalized text of a
    /// SentencePiece model) is longer than the positions of its merge can index (`u32`).
    /// Refused rather than indexed modulo 2^32, which would give wrong ids.
    #[error(
        "{what} of {len} bytes at byte offset {offset} is longer than the {limit} bytes ferrotok encodes as one unit"
    )]
    TooLong { what: &'static str, len: usize, offset: usize, limit: usize },

    #[error("truncation: {0}")]
    Truncation(String),

    #[error("invalid token id {0} for decoding")]
    InvalidToken(u64),
    /// A string or byte sequence is not a single token.
    #[error("{0:?} is not a single token of this encoding")]
    NotAToken(String),
    /// No built-in encoding has this name.
    #[error("unknown encoding {name:?}; the built-in encodings are: {known}")]
    UnknownEncoding { name: String, known: String },
    /// Invalid UTF-8 where text was required.
    #[error("invalid UTF-8 {0}")]
    Utf8(String),
    /// A `tokenizer.json` is malformed; `path` says where in the JSON.
    #[error("{source_name}: {path}: {problem}")]
    TokenizerJson { source_name: String, path: String, problem: String },
    /// A `tokenizer.json` needs a component (or an option of one) that ferrotok does not
    /// implement yet. Loading fails rather than giving different ids.
    #[error("{source_name}: {component} is not supported yet")]
    Unsupported { source_name: String, component: String },
    /// A SentencePiece `.model` file is malformed; `offset` is the byte where the problem is
    /// (0 when it concerns the whole file).
    #[error("{source_name}: byte {offset}: {problem}")]
    SentencePieceModel { source_name: String, offset: usize, problem: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
