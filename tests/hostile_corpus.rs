//! The fuzz corpora as regression tests: every committed input of
//! `fuzz/corpus/<target>/` goes through the same entry point as its fuzz
//! target (`mediator::hostile`), without fuzzing instrumentation, and must
//! not panic. A crash the fuzzer once found stays fixed once its input is in
//! the corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `f` on every corpus file of `target`; fails naming each input that
/// panicked.
fn run_corpus(target: &str, f: impl Fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "the {target} corpus is empty");
    let mut panicked = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "{} of {} {target} inputs panicked: {panicked:?}",
        panicked.len(),
        files.len()
    );
}

#[test]
fn sip_message_corpus_does_not_panic() {
    run_corpus("sip_message", mediator::hostile::sip_message);
}

#[test]
fn sdp_offer_answer_corpus_does_not_panic() {
    run_corpus("sdp_offer_answer", |data| {
        if let Ok(text) = std::str::from_utf8(data) {
            mediator::hostile::sdp_offer_answer(text);
        }
    });
}

/// The torture messages of RFC 4475 (sip-tests/torture/messages, in the
/// RFC's notation) parse without panicking too, whatever shape they have.
#[test]
fn torture_message_files_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-tests/torture/messages");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("messages dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "sip") {
            let text = std::fs::read_to_string(&path).expect("read message");
            mediator::hostile::sip_message(text.replace('\n', "\r\n").as_bytes());
            n += 1;
        }
    }
    assert!(n >= 49, "expected the 49 messages of RFC 4475, found {n}");
}
