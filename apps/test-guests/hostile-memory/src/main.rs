//! Hostile guest: allocates (and touches) memory until the device's limit stops it.

fn main() {
    println!("allocating");
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(vec![0xa5; 64 * 1024]);
        if held.len().is_multiple_of(4) {
            println!("holding {} KiB", held.len() * 64);
        }
        std::hint::black_box(&held);
    }
}
