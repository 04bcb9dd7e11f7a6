//! Hostile guest: writes past its mutable storage quota (4 KiB in its manifest).

fn main() {
    let quota = applibs::storage::quota();
    println!("quota {quota} bytes");
    let chunk = [0x5au8; 1024];
    let mut offset = 0u64;
    loop {
        match applibs::storage::write(offset, &chunk) {
            Ok(()) => offset += chunk.len() as u64,
            Err(error) => {
                println!("write at {offset}: {error}");
                break;
            }
        }
    }
    match applibs::storage::write(u64::MAX - 10, b"overflow") {
        Ok(()) => println!("write at u64::MAX-10: ALLOWED"),
        Err(error) => println!("write at u64::MAX-10: {error}"),
    }
    match applibs::storage::truncate(1 << 40) {
        Ok(()) => println!("truncate 1 TiB: ALLOWED"),
        Err(error) => println!("truncate 1 TiB: {error}"),
    }
    println!("size {:?}", applibs::storage::size());
}
