//! A breakdown of where encoding time goes, for profiling (perf, callgrind):
//! `cargo run --release -p ferrotok-bench --bin profile -- ENCODING FILE [REPEAT]`
//! prints MB/s for pre-tokenization alone (hand-written, then the fancy-regex reference),
//! for encode_ordinary, and for count; `passes` as the fourth argument prints the first pass
//! over the text beside the best warm one; `batch` times 64 KB documents as one batch on one
//! and on two threads. ENCODING may also be a `tokenizer.json` or SentencePiece `.model` path
//! (first and warm passes of the whole pipeline).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(path)) = (args.get(1), args.get(2)) else {
        return Err(
            "usage: profile ENCODING FILE [REPEAT] [split|regex|dfa|encode|count|batch|passes [WARMUP_FILE]]".into()
        );
    };
    let repeat: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let only = args.get(4).map(String::as_str);
    let text = std::fs::read_to_string(path)?;
    if name.ends_with(".json") || name.ends_with(".model") {
        return hf_passes(name, &text, repeat);
    }
    let enc = ferrotok::registry::get(name)?;
    let pre = ferrotok::pretokenize::PreTokenizer::new(enc.pat_str())?;
    let reference = ferrotok::pretokenize::PreTokenizer::regex(enc.pat_str())?;
    // The lazy DFA that user patterns run on (for a built-in pattern, forced).
    let dfa = ferrotok::pretokenize::PreTokenizer::automaton(enc.pat_str());
    let mb = text.len() as f64 * repeat as f64 / 1e6;
    let run = |label: &str, f: &dyn Fn() -> ferrotok::Result<usize>| -> ferrotok::Result<()> {
        if only.is_some_and(|o| o != label) {
            return Ok(());
        }
        let t0 = Instant::now();
        let mut n = 0;
        for _ in 0..repeat {
            n += f()?;
        }
        println!("{label:<8} {:8.1} MB/s  ({n} items)", mb / t0.elapsed().as_secs_f64());
        Ok(())
    };
    run("split", &|| count_pieces(&pre, &text))?;
    run("regex", &|| count_pieces(&reference, &text))?;
    if let Some(dfa) = &dfa {
        run("dfa", &|| count_pieces(dfa, &text))?;
    }
    run("encode", &|| Ok(enc.encode_ordinary(&text)?.len()))?;
    run("count", &|| enc.count(&text, &ferrotok::Allowed::None, &ferrotok::Disallowed::Some(vec![])))?;
    if only == Some("passes") {
        // The first pass over text this process has not seen (after warming up on the file
        // given as the fifth argument, if any), then the best warm pass.
        if let Some(warm) = args.get(5) {
            std::hint::black_box(enc.encode_ordinary(&std::fs::read_to_string(warm)?)?);
        }
        let mut times = Vec::new();
        for _ in 0..repeat.max(2) {
            let t0 = Instant::now();
            std::hint::black_box(enc.encode_ordinary(&text)?);
            times.push(t0.elapsed().as_secs_f64());
        }
        let best = times[1..].iter().copied().fold(f64::INFINITY, f64::min);
        let one = text.len() as f64 / 1e6;
        println!("passes   first {:6.1} MB/s  warm {:6.1} MB/s", one / times[0], one / best);
    }
    if only == Some("batch") {
        // Documents of about 64 KB (cut at line ends), encoded as one batch on 1 and on 2
        // threads, warm: the best of REPEAT batches each, alternating.
        let mut docs = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(65536);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            let cut = rest[cut..].find('\n').map_or(rest.len(), |i| cut + i + 1);
            docs.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        let mut best = [f64::INFINITY; 2];
        for _ in 0..repeat.max(2) {
            for (k, threads) in [1, 2].into_iter().enumerate() {
                let t0 = Instant::now();
                let outs = ferrotok::parallel::map(&docs, threads, |d| enc.encode_ordinary(d));
                best[k] = best[k].min(t0.elapsed().as_secs_f64());
                std::hint::black_box(outs);
            }
        }
        let one = text.len() as f64 / 1e6;
        println!(
            "batch    1 thread {:6.1} MB/s  2 threads {:6.1} MB/s  ({} docs)",
            one / best[0],
            one / best[1],
            docs.len()
        );
    }
    Ok(())
}

/// A `tokenizer.json` file instead of an encoding name: the first pass over the text beside
/// the best warm one, `encode_plain` without special tokens.
fn hf_passes(path: &str, text: &str, repeat: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tok = if path.ends_with(".model") {
        ferrotok::hf::HfTokenizer::from_sentencepiece(&std::fs::read(path)?, path, false, false)?
    } else {
        ferrotok::hf::HfTokenizer::from_json(&std::fs::read_to_string(path)?, path)?
    };
    let mut times = Vec::new();
    for _ in 0..repeat.max(2) {
        let t0 = Instant::now();
        std::hint::black_box(tok.encode_plain(text, false)?);
        times.push(t0.elapsed().as_secs_f64());
    }
    let best = times[1..].iter().copied().fold(f64::INFINITY, f64::min);
    let one = text.len() as f64 / 1e6;
    println!("passes   first {:6.1} MB/s  warm {:6.1} MB/s", one / times[0], one / best);
    Ok(())
}

/// Splits without keeping the pieces, so that only the splitter is timed.
fn count_pieces(pre: &ferrotok::pretokenize::PreTokenizer, text: &str) -> ferrotok::Result<usize> {
    let mut n = 0;
    pre.split(text, |_, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}
