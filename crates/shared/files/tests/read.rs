//! `read_bounded`: a file of exactly `max` bytes is read whole, one byte more is refused, a
//! missing file is an I/O error.

use ferro_files::{BoundedReadError, read_bounded};

#[test]
fn reads_up_to_the_limit_and_refuses_past_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    for (len, max, fits) in [
        (0usize, 0u64, true),
        (4, 4, true),
        (5, 4, false),
        (4, 10, true),
    ] {
        std::fs::write(&path, vec![b'x'; len]).expect("write");
        match read_bounded(&path, max) {
            Ok(bytes) => assert!(fits && bytes.len() == len, "len {len} max {max}"),
            Err(BoundedReadError::TooLarge { max: m }) => {
                assert!(!fits && m == max, "len {len} max {max}");
                assert_eq!(
                    BoundedReadError::TooLarge { max: m }.to_string(),
                    format!("larger than {max} bytes")
                );
            }
            Err(e) => panic!("len {len} max {max}: {e}"),
        }
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    match read_bounded(&dir.path().join("absent"), 10) {
        Err(BoundedReadError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
}
