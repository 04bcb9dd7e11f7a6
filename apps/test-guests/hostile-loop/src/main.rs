//! Hostile guest: computes forever without yielding. The device must stop it (CPU limit)
//! while other apps keep running.

fn main() {
    println!("spinning");
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}
