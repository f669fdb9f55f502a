//! Snapshot tests of every subcommand's output and exit status.

use std::process::Command;

use insta_cmd::{assert_cmd_snapshot, get_cargo_bin};

fn ferrotok() -> Command {
    let mut c = Command::new(get_cargo_bin("ferrotok"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/cli"));
    c.env("FERROTOK_NUM_THREADS", "2");
    c
}

#[test]
fn encode_ids() {
    assert_cmd_snapshot!(ferrotok().args(["encode", "-e", "cl100k_base", "hello.txt"]));
}

#[test]
fn encode_tokens() {
    assert_cmd_snapshot!(ferrotok().args(["encode", "-e", "o200k_base", "--format", "tokens", "hello.txt"]));
}

#[test]
fn encode_json_from_stdin() {
    assert_cmd_snapshot!(ferrotok().args(["encode", "--json", "-e", "gpt2"]).pass_stdin("tab\there"));
}

#[test]
fn encode_special_tokens_are_ordinary_text_by_default() {
    assert_cmd_snapshot!(ferrotok().args(["encode", "-e", "cl100k_base", "special.txt"]));
}

#[test]
fn encode_special_error_names_token_and_position() {
    assert_cmd_snapshot!(ferrotok().args(["encode", "-e", "cl100k_base", "--special", "error", "special.txt"]));
}

#[test]
fn encode_special_allow_and_ordinary() {
    assert_cmd_snapshot!(ferrotok().args(["encode", "-e", "cl100k_base", "--special", "allow", "special.txt"]));
    assert_cmd_snapshot!(ferrotok().args(["encode", "-e", "cl100k_base", "--special", "ordinary", "special.txt"]));
}

#[test]
fn decode_round_trip() {
    assert_cmd_snapshot!(ferrotok().args(["decode", "-e", "cl100k_base"]).pass_stdin("9906, 11, 1917 0"));
    assert_cmd_snapshot!(ferrotok().args(["decode", "-e", "cl100k_base"]).pass_stdin("[9906,11]"));
}

#[test]
fn decode_rejects_bad_ids() {
    assert_cmd_snapshot!(ferrotok().args(["decode", "-e", "cl100k_base"]).pass_stdin("1 two 3"));
    assert_cmd_snapshot!(ferrotok().args(["decode", "-e", "cl100k_base"]).pass_stdin("999999"));
}

#[test]
fn count_files_and_total() {
    assert_cmd_snapshot!(ferrotok().args([
        "count",
        "-e",
        "cl100k_base",
        "--special",
        "ordinary",
        "hello.txt",
        "special.txt"
    ]));
    assert_cmd_snapshot!(ferrotok().args(["count", "-e", "cl100k_base", "--json", "hello.txt"]));
}

#[test]
fn encodings_list() {
    assert_cmd_snapshot!(ferrotok().args(["encodings"]));
}

#[test]
fn errors_go_to_stderr_with_a_status() {
    assert_cmd_snapshot!(ferrotok().args(["count", "missing.txt"]));
    assert_cmd_snapshot!(ferrotok().args(["count", "-e", "nope", "hello.txt"]));
    assert_cmd_snapshot!(ferrotok().args(["encode"]).pass_stdin(&b"bad \xff utf8"[..]));
    assert_cmd_snapshot!(ferrotok().args(["frobnicate"]));
}

#[test]
fn help() {
    assert_cmd_snapshot!(ferrotok().args(["--help"]));
    assert_cmd_snapshot!(ferrotok().args(["count", "--help"]));
}

#[test]
fn broken_pipe_exits_cleanly() {
    // A reader that closes after the first line, like `| head -1`.
    let mut child = ferrotok()
        .args(["encode", "--format", "tokens", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all("word ".repeat(200_000).as_bytes()).unwrap();
    }
    {
        use std::io::Read as _;
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        stdout.read_exact(&mut first).unwrap();
        // Dropping stdout closes the pipe.
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn tokenize_help_and_refusals() {
    assert_cmd_snapshot!(ferrotok().args(["tokenize", "--help"]));
    assert_cmd_snapshot!(ferrotok().args(["tokenize", "missing.txt", "-t", "cl100k_base", "-o", "/nonexistent/out"]));
    assert_cmd_snapshot!(ferrotok().args(["tokenize", "hello.txt", "-t", "vocab.txt", "-o", "/nonexistent/out"]));
    assert_cmd_snapshot!(ferrotok().args([
        "tokenize",
        "hello.txt",
        "-t",
        "cl100k_base",
        "-o",
        "/nonexistent/out",
        "--shard",
        "3/2"
    ]));
    assert_cmd_snapshot!(ferrotok().args([
        "tokenize",
        "hello.txt",
        "-t",
        "cl100k_base",
        "-o",
        "/nonexistent/out",
        "-f",
        "npy",
        "--header",
        "llmc"
    ]));
}
