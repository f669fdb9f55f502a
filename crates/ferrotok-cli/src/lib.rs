//! The `ferrotok` command. One module per subcommand; `run_from` is the whole program, so
//! the Python entry point and the Rust binary behave identically.

mod count;
mod decode;
mod encode;
mod encodings;
mod io;
mod tokenize;

pub use tokenize::Bar as ProgressBar;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exact, fast tokenizers for language models.
#[derive(Parser, Debug)]
#[command(name = "ferrotok", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encode text to token ids (or show the tokens).
    Encode(encode::Args),
    /// Decode token ids back to text.
    Decode(decode::Args),
    /// Count tokens per file and in total (files are counted in parallel).
    Count(count::Args),
    /// List the built-in encodings.
    Encodings(encodings::Args),
    /// Tokenize a corpus into training-ready files (bin, megatron, npy, parquet); resumable.
    Tokenize(Box<tokenize::Args>),
}

/// What to do with special-token text such as `<|endoftext|>`. The command's default is
/// `ordinary`: files are text, and text must not be able to smuggle in control tokens.
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub enum Special {
    /// Fail with an error that names the token and its position (tiktoken's `encode` default).
    Error,
    /// Encode it as the special token's id.
    Allow,
    /// Encode it as ordinary text.
    #[default]
    Ordinary,
}

impl Special {
    fn policy(self) -> (ferrotok::Allowed, ferrotok::Disallowed) {
        match self {
            Self::Error => (ferrotok::Allowed::None, ferrotok::Disallowed::AllNotAllowed),
            Self::Allow => (ferrotok::Allowed::All, ferrotok::Disallowed::AllNotAllowed),
            Self::Ordinary => (ferrotok::Allowed::None, ferrotok::Disallowed::Some(Vec::new())),
        }
    }
}

/// An error the command reports on stderr before exiting with status 1.
#[derive(Debug)]
pub enum CliError {
    /// The reader of our output went away (`| head`): stop quietly, successfully.
    BrokenPipe,
    Message(String),
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Self::BrokenPipe
        } else {
            Self::Message(e.to_string())
        }
    }
}

impl From<ferrotok::Error> for CliError {
    fn from(e: ferrotok::Error) -> Self {
        Self::Message(e.to_string())
    }
}

/// An error about one input document, phrased for the command line.
pub(crate) fn doc_error(input: &str, e: ferrotok::Error) -> CliError {
    match e {
        ferrotok::Error::DisallowedSpecial { token, char_offset } => CliError::Message(format!(
            "{input}: special token {token:?} at character {char_offset}; pass `--special allow` to encode it \
             as a special token or `--special ordinary` to encode it as plain text"
        )),
        e => CliError::Message(format!("{input}: {e}")),
    }
}

/// Runs the command with `args` (without the program name); returns the exit status.
pub fn run_from(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(std::iter::once("ferrotok".to_owned()).chain(args)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let result = match cli.command {
        Command::Encode(a) => encode::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Count(a) => count::run(a),
        Command::Encodings(a) => encodings::run(a),
        Command::Tokenize(a) => tokenize::run(*a),
    };
    match result {
        Ok(()) | Err(CliError::BrokenPipe) => 0,
        Err(CliError::Message(m)) => {
            eprintln!("ferrotok: error: {m}");
            1
        }
    }
}

/// `run_from` over the process arguments, for the Rust binary.
pub fn main() -> ExitCode {
    let code = run_from(std::env::args().skip(1).collect());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
