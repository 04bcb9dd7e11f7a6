//! Parses arbitrary bytes as a guardian register map (with grants, as the CLI and the app do);
//! whatever parses must poll and encode without panicking: every point's registers decode, and
//! every writable point's bounds encode.
#![no_main]

use ferro_registermap::codec::{decode_registers, encode};
use ferro_registermap::{Grants, Poller, RegisterMap, Value, Writable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let grants = Grants {
        hosts: vec!["10.0.0.2".to_owned()],
        uarts: vec!["ISU0".to_owned()],
    };
    let Ok(map) = RegisterMap::parse(data, Some(&grants)) else {
        return;
    };
    for point in &map.points {
        let _ = decode_registers(point, &[0xFFFF, 0x7FFF]);
        if let Some(Writable::Bounds { min, max }) = point.writable {
            assert!(encode(point, Value::Float(min)).is_ok(), "min must encode");
            assert!(encode(point, Value::Float(max)).is_ok(), "max must encode");
        }
    }
    let mut poller = Poller::new(map, 0);
    for read in poller.due(0) {
        assert!(read.count >= 1);
    }
});
